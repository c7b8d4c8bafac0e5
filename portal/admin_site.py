"""The Django admin site, with every admin on it refusing hostile input with a message.

Django's admin answers some input with a 500 rather than a form error: an id that is not a
number (or does not fit the column: SQLite raises OverflowError past 64 bits) in an autocomplete
field's initial or posted value, or in a many-to-many field; an empty `_to_field`; a
date-hierarchy year past the calendar; JSON with NaN or a number too long to convert. The site
mixes the fixes below into every ModelAdmin registered on it, Switchyard's as well as Django's
(groups) and allauth's, and into their inlines, so no admin needs to remember them.
"""

import math
from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.options import IncorrectLookupParameters, InlineModelAdmin
from django.contrib.admin.views.main import ChangeList
from django.contrib.admin.widgets import AutocompleteMixin, AutocompleteSelect, AutocompleteSelectMultiple
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.forms.formsets import INITIAL_FORM_COUNT, TOTAL_FORM_COUNT, BaseFormSet, ManagementForm
from django.http import HttpRequest
from django.utils.functional import cached_property

from base import compat


def fits(field: models.Field[Any, Any], value: object) -> bool:
    """Whether `value` can be looked up in `field`: it converts, and it fits the column."""
    if "\x00" in str(value):
        return False  # PostgreSQL refuses text with NUL in any query
    try:
        field.run_validators(field.to_python(value))
    except ValidationError:
        return False
    return True


def _key_field(remote_field: Any) -> models.Field[Any, Any]:
    model: type[models.Model] = remote_field.model
    name = getattr(remote_field, "field_name", None)
    field = model._meta.get_field(name) if name else model._meta.pk
    assert isinstance(field, models.Field)
    return field


class FittingChoices(AutocompleteMixin):
    """Shows the chosen object only when the value can be looked up: a form that refused "abc"
    shows its error instead of failing while it draws the field."""

    def optgroups(
        self, name: str, value: Sequence[str], attr: dict[str, Any] | None = None
    ) -> list[tuple[str | None, list[dict[str, Any]], int | None]]:
        key = _key_field(compat.autocomplete_model_field(self).remote_field)
        return super().optgroups(
            name, [item for item in value if item in ("", None) or fits(key, item)], attr
        )


class CheckedAutocompleteSelect(FittingChoices, AutocompleteSelect):
    pass


class CheckedAutocompleteSelectMultiple(FittingChoices, AutocompleteSelectMultiple):
    pass


class CheckedModelMultipleChoiceField(forms.ModelMultipleChoiceField[Any]):
    """Refuses a value that cannot be an id before it reaches the `__in` query."""

    def clean(self, value: Any) -> Any:
        if isinstance(value, list | tuple) and self.queryset is not None:
            model = self.queryset.model
            key = model._meta.get_field(self.to_field_name) if self.to_field_name else model._meta.pk
            assert isinstance(key, models.Field)
            for item in value:
                if not fits(key, item):
                    raise ValidationError(
                        self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": item}
                    )
        return super().clean(value)


def _finite(data: Any) -> bool:
    if isinstance(data, float):
        return math.isfinite(data)
    if isinstance(data, dict):
        return all(_finite(item) for item in data.values())
    if isinstance(data, list):
        return all(_finite(item) for item in data)
    return True


class StrictJSONField(forms.JSONField):
    """JSON as JSON defines it: NaN and Infinity (which Python's parser takes and databases do
    not store) and numbers too long to convert are invalid JSON like any other."""

    def to_python(self, value: Any) -> Any:
        try:
            converted = super().to_python(value)
        except ValueError:  # Python refuses to convert a number of more than 4,300 digits
            converted = math.nan
        if not _finite(converted):
            raise ValidationError(self.error_messages["invalid"], code="invalid", params={"value": value})
        return converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except ValueError:  # shown again as typed, next to its error
            return compat.invalid_json_input(data)


class CheckedChangeList(ChangeList):
    """A filter value past what Python's dates or SQLite's integers hold is an invalid filter
    (the admin says so and shows the list unfiltered), like any other."""

    def get_filters(self, request: HttpRequest) -> Any:
        if any("\x00" in value for value in compat.changelist_filter_values(self)):
            raise IncorrectLookupParameters("PostgreSQL refuses text with NUL in any query.")
        try:
            return super().get_filters(request)
        except OverflowError as error:  # a date-hierarchy year past 9999
            raise IncorrectLookupParameters(error) from error

    def get_results(self, request: HttpRequest) -> None:
        try:
            super().get_results(request)
        except OverflowError as error:  # SQLite: an integer past 64 bits in a lookup
            raise IncorrectLookupParameters(error) from error


class CountedFormSet(BaseFormSet[Any]):
    """A formset whose management form counts fewer than no forms, or more than the formset
    ever takes, is a tampered one, as Django calls a missing count. Django would read the rows
    of a negative count as new ones and save copies, and build (and draw) its 2,000 forms at
    most for a huge count before refusing them, seconds of work for one request."""

    @cached_property
    def management_form(self) -> ManagementForm:
        form: ManagementForm = super().management_form
        if self.is_bound and form.is_valid():
            counts: dict[str, Any] = form.cleaned_data
            sent = [counts[TOTAL_FORM_COUNT], counts[INITIAL_FORM_COUNT]]
            if min(sent) < 0 or max(sent) > self.absolute_max:
                form.add_error(None, "Form counts out of range.")
                counts.update({TOTAL_FORM_COUNT: 0, INITIAL_FORM_COUNT: 0})
        return form


class CheckedFields(admin.options.BaseModelAdmin[Any]):
    """For admins and inlines alike: the form fields above instead of Django's."""

    def formfield_for_dbfield(
        self, db_field: models.Field[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        if isinstance(db_field, models.JSONField):
            kwargs.setdefault("form_class", StrictJSONField)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField[Any] | None:
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):
            kwargs["widget"] = CheckedAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(
        self, db_field: models.ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.ModelMultipleChoiceField[Any] | None:
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):
            kwargs["widget"] = CheckedAutocompleteSelectMultiple(
                db_field, self.admin_site, using=kwargs.get("using")
            )
        kwargs.setdefault("form_class", CheckedModelMultipleChoiceField)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class CheckedModelAdmin(CheckedFields, admin.ModelAdmin[Any]):
    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> models.Model | None:
        # `?_to_field=` (empty) names no field; Django would look for a field named "".
        return super().get_object(request, object_id, from_field or None)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # No text holds NUL (PostgreSQL refuses it in a query): the autocomplete's search term
        # is not checked by a form as the list's is.
        if "\x00" in search_term:
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        changelist: type[ChangeList] = checked(super().get_changelist(request, **kwargs), CheckedChangeList)
        return changelist

    def get_inlines(
        self, request: HttpRequest, obj: models.Model | None
    ) -> list[type[InlineModelAdmin[Any, Any]]]:
        return [checked(inline, CheckedInline) for inline in super().get_inlines(request, obj)]


class CheckedInline(CheckedFields, InlineModelAdmin[Any, Any]):
    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        # A new class per request (Django builds one each time), so not kept in `checked`.
        return type(formset.__name__, (CountedFormSet, formset), {"__module__": formset.__module__})


_checked: dict[tuple[type, type], type] = {}


def checked(cls: type[Any], mixin: type[Any]) -> Any:
    """`cls` with `mixin` in front (the same class each time it is asked for)."""
    if issubclass(cls, mixin):
        return cls
    if (cls, mixin) not in _checked:
        _checked[cls, mixin] = type(cls.__name__, (mixin, cls), {"__module__": cls.__module__})
    return _checked[cls, mixin]


class SwitchyardAdminSite(admin.AdminSite):
    def register(
        self,
        model_or_iterable: Any,
        admin_class: type[admin.ModelAdmin[Any]] | None = None,
        **options: Any,
    ) -> None:
        super().register(
            model_or_iterable, checked(admin_class or admin.ModelAdmin, CheckedModelAdmin), **options
        )


class SwitchyardAdminConfig(AdminConfig):
    default_site = "portal.admin_site.SwitchyardAdminSite"
