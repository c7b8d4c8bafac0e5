"""The request form: choices from the synced catalog, the estimate beside them, and the rules of
`approvals.spec` (the ones submission checks again) with each message next to its field."""

from dataclasses import replace
from datetime import date
from decimal import Decimal
from functools import cached_property
from typing import Any

from django import forms
from django.http import QueryDict
from django.utils import timezone

from approvals.access import departments_for_author
from approvals.models import (
    MAX_CAPACITY,
    MAX_TOKENS_MILLIONS,
    DeploymentRequest,
    cap_label,
)
from approvals.offers import CATALOG_NOT_SYNCED, OFFER_FIELDS, OfferChoices, offer_choices
from approvals.spec import (
    TEXT_LIMITS,
    WHOLE_REQUEST,
    Assessment,
    FieldErrors,
    RequestSpec,
    bounded_int,
    eligible_targets,
    request_assessment,
    request_spec_errors,
)
from org.models import Department, User
from provisioning.catalog import region_label
from provisioning.models import AccessGrant, DataClassification, LandingZone, ModelDeployment

Kind = DeploymentRequest.Kind
# What the estimate beside the choices is worked out from while the person types.
DRAFT_FIELDS = (
    "data_classification",
    "region",
    "model_name",
    "model_version",
    "sku",
    "capacity",
    "tpm_cap",
    "input_tokens_per_month",
    "output_tokens_per_month",
    "spillover_twin",
)
EXPECTED_USE_HELP = (
    "What the department expects to use in a month, in millions of tokens; it prices the estimate."
)


def posted_value(value: Any) -> str:
    """A typed value as a browser posts it: a ticked box is "on", an empty or unticked one is
    not sent at all ("")."""
    if value is True:
        return "on"
    if value in (None, False, ""):
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


class DeploymentRequestForm(forms.Form):
    department = forms.ModelChoiceField(
        queryset=Department.objects.none(), to_field_name="slug", empty_label=None
    )
    target = forms.ModelChoiceField(queryset=ModelDeployment.objects.none(), empty_label="Choose…")
    display_name = forms.CharField(
        label="Name in the chat",
        max_length=TEXT_LIMITS["display_name"],
        help_text="What employees see, e.g. “Marketing copy assistant”.",
    )
    purpose = forms.CharField(
        label="Purpose and use case",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=TEXT_LIMITS["purpose"],
        help_text="What the department will do with it; approvers read this first.",
    )
    system_prompt = forms.CharField(
        required=False,
        max_length=TEXT_LIMITS["system_prompt"],
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="The flavor: instructions applied to every chat with this assistant.",
    )
    data_classification = forms.ChoiceField(
        choices=DataClassification.choices,
        initial=DataClassification.INTERNAL,
        help_text="The most sensitive data people will paste into it. "
        "Restricted data needs a second approval.",
    )
    private_network = forms.BooleanField(
        required=False,
        label="Private network only",
        help_text="A private endpoint with public network access disabled.",
    )
    expires_on = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. Switchyard warns 14 days ahead and asks to decommission it on that day.",
    )
    spillover_twin = forms.BooleanField(
        required=False,
        label="Add a pay-as-you-go spillover twin",
        help_text="Calls that find the provisioned throughput full (429) go on to a small pay-as-you-go "
        "deployment of the same model in the same region and data zone; it costs only those calls.",
    )
    # Plain text fields with a select: the catalog checks below explain a choice that does not
    # fit ("gpt-4o is not offered in East US 2") better than "Select a valid choice" would.
    region = forms.CharField(max_length=TEXT_LIMITS["region"], widget=forms.Select)
    model_name = forms.CharField(label="Model", max_length=TEXT_LIMITS["model_name"], widget=forms.Select)
    model_version = forms.CharField(
        label="Version", max_length=TEXT_LIMITS["model_version"], widget=forms.Select
    )
    sku = forms.CharField(label="SKU", max_length=TEXT_LIMITS["sku"], widget=forms.Select)
    capacity = forms.IntegerField(
        min_value=1, max_value=MAX_CAPACITY, widget=forms.NumberInput(attrs={"inputmode": "numeric"})
    )
    tpm_cap = forms.IntegerField(
        label="TPM cap (thousands)",
        required=False,
        min_value=1,
        max_value=MAX_CAPACITY,
        help_text="Optional: the most tokens per minute your department may use of it.",
    )
    input_tokens_per_month = forms.DecimalField(
        label="Input tokens a month (millions)",
        min_value=Decimal(0),
        max_value=MAX_TOKENS_MILLIONS,
        max_digits=12,
        decimal_places=3,
        initial=Decimal(0),
        required=False,
        help_text=EXPECTED_USE_HELP,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
    )
    output_tokens_per_month = forms.DecimalField(
        label="Output tokens a month (millions)",
        min_value=Decimal(0),
        max_value=MAX_TOKENS_MILLIONS,
        max_digits=12,
        decimal_places=3,
        initial=Decimal(0),
        required=False,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
    )

    FIELDS_BY_KIND = {
        Kind.NEW_DEPLOYMENT: [
            "department", "display_name", "purpose", "system_prompt", "data_classification",
            "private_network", "expires_on", "region", "model_name", "model_version", "sku", "capacity",
            "spillover_twin", "input_tokens_per_month", "output_tokens_per_month",
        ],
        Kind.SHARED_ACCESS: [
            "department", "target", "purpose", "data_classification", "tpm_cap",
            "input_tokens_per_month", "output_tokens_per_month",
        ],
        Kind.CAPACITY_CHANGE: [
            "department", "target", "capacity", "spillover_twin", "purpose",
            "input_tokens_per_month", "output_tokens_per_month",
        ],
        Kind.DECOMMISSION: ["department", "target", "purpose"],
    }  # fmt: skip
    # The choices that depend on each other: a change to one re-renders the rest live.
    SPEC_FIELDS = ("region", "model_name", "model_version", "sku", "capacity", "target")

    def __init__(
        self,
        data: Any = None,
        *,
        kind: str,
        user: User,
        instance: DeploymentRequest | None = None,
        today: date | None = None,
        preview: bool = False,
    ) -> None:
        initial = self._initial_from(instance) if instance else {}
        if preview and data is not None:
            data = data.copy()  # choices that no longer fit the region or model move to the first that does
        super().__init__(data, initial=initial)
        self.preview = preview
        self.kind, self.user, self.instance = kind, user, instance
        self.today = today or timezone.localdate()
        for name in list(self.fields):
            if name not in self.FIELDS_BY_KIND[Kind(kind)]:
                del self.fields[name]
        self._set_departments([instance.department] if instance is not None else departments_for_author(user))
        if "target" in self.fields:
            self._set_targets()
        if kind == Kind.CAPACITY_CHANGE:
            self.fields["capacity"].label = "New capacity"
        if kind == Kind.DECOMMISSION:
            self.fields["purpose"].label = "Why it can go"
            self.fields["purpose"].help_text = "Approvers check nobody still relies on it."
        if kind == Kind.NEW_DEPLOYMENT:
            self._set_catalog_choices()

    @classmethod
    def resubmission(cls, instance: DeploymentRequest, *, user: User) -> "DeploymentRequestForm":
        """The request's saved values as if typed in again, so the checks mark each field that
        no longer fits."""
        return cls(cls.data_of(instance), kind=instance.kind, user=user, instance=instance)

    @classmethod
    def data_of(cls, instance: DeploymentRequest) -> QueryDict:
        """The request's saved values as the form posts them (a mutable copy)."""
        data = QueryDict(mutable=True)
        for name, value in cls._initial_from(instance).items():
            if posted := posted_value(value):
                data[name] = posted
        return data

    # Choices ---------------------------------------------------------------------------------

    @staticmethod
    def _initial_from(instance: DeploymentRequest) -> dict[str, Any]:
        values: dict[str, Any] = {
            name: getattr(instance, name) for name in RequestSpec.field_names() if name != "target"
        }
        values["department"] = instance.department.slug
        values["target"] = instance.target_id
        return values

    def _set_departments(self, departments: list[Department]) -> None:
        """The departments the author may ask for (the one of a request being edited), and the
        one chosen so far."""
        self.fields["department"].queryset = Department.objects.filter(  # type: ignore[attr-defined]
            pk__in=[department.pk for department in departments]
        )
        self.single_department = len(departments) == 1
        if self.single_department:
            self.fields["department"].initial = departments[0].slug
        slug = self.data.get("department") if self.is_bound else self.initial.get("department")
        if slug is None and departments:
            slug = departments[0].slug
        self.chosen_department = next(
            (department for department in departments if department.slug == slug), None
        )

    def value(self, name: str) -> Any:
        """What the field holds now: typed in (bound) or from the request being edited."""
        if name not in self.fields:
            return None
        if not self.is_bound:
            # Not the bound field: it caches its initial value at first use, before the
            # dependent choices below are settled.
            return self.initial.get(name, self.fields[name].initial)
        return self[name].value()

    def _set_targets(self) -> None:
        targets = eligible_targets(kind=self.kind, department=self.chosen_department)
        if self.instance is not None and self.instance.target_id is not None:
            # The deployment a saved request is about stays choosable, so that a check can say
            # why it no longer fits rather than "Select a valid choice".
            targets = targets | ModelDeployment.objects.filter(pk=self.instance.target_id)
        self._granted: dict[int, int | None] = {}
        if self.kind == Kind.SHARED_ACCESS and self.chosen_department is not None:
            self._granted = dict(
                AccessGrant.objects.filter(department=self.chosen_department).values_list(
                    "deployment_id", "tpm_cap"
                )
            )
        field = self.fields["target"]
        field.queryset = targets.distinct()  # type: ignore[attr-defined]
        field.label = {
            Kind.SHARED_ACCESS: "Shared service",
            Kind.CAPACITY_CHANGE: "Deployment to resize",
            Kind.DECOMMISSION: "Deployment to decommission",
        }[Kind(self.kind)]
        field.label_from_instance = self._target_label  # type: ignore[attr-defined]

    def _target_label(self, deployment: ModelDeployment) -> str:
        label = f"{deployment.display_name} · {deployment.model_name} · {deployment.capacity_label}"
        if deployment.pk in self._granted:
            label += f" (in use, cap {cap_label(self._granted[deployment.pk])})"
        return label

    @property
    def landing_zone(self) -> LandingZone | None:
        return LandingZone.for_department(self.chosen_department) if self.chosen_department else None

    def _set_catalog_choices(self) -> None:
        wanted = {name: self.value(name) for name in OFFER_FIELDS}
        as_submitted = self.is_bound and not self.preview
        self.offer_choices = choices = offer_choices(
            zone=self.landing_zone, wanted=wanted, as_submitted=as_submitted
        )
        for name, chosen in choices.chosen.items():
            if as_submitted or chosen == wanted[name]:
                continue
            # A choice that moved to what is on offer shows as moved.
            if self.is_bound:
                # The preview works on a copy of the submitted data (see __init__).
                self.data[name] = chosen  # type: ignore[index]
            else:
                self.initial[name] = chosen
        labels = dict(ModelDeployment.Sku.choices)
        self._set_choices("region", [(r, region_label(r)) for r in choices.regions], "")
        self._set_choices("model_name", [(m, m) for m in choices.models], "No model offered here")
        self._set_choices("model_version", [(v, v) for v in choices.versions], "—")
        self._set_choices("sku", [(s, labels.get(s, s)) for s in choices.skus], "—")
        self._set_capacity_bounds(choices)

    def _set_capacity_bounds(self, choices: OfferChoices) -> None:
        capacity = self.fields["capacity"]
        capacity.label = "Capacity (PTU)" if choices.provisioned else "Capacity (K TPM)"
        capacity.help_text = (
            "Provisioned throughput units, billed by the hour whether used or not."
            if choices.provisioned
            else "Thousands of tokens per minute; the deployment's rate limit."
        )
        entry = choices.entry
        if entry is not None:
            capacity.widget.attrs.update(
                min=entry.capacity_minimum, step=entry.capacity_step or 1, max=entry.capacity_maximum or ""
            )
        if not self.is_bound and choices.suggested_capacity:
            self.initial.setdefault("capacity", choices.suggested_capacity)

    @property
    def catalog_missing(self) -> bool:
        return self.kind == Kind.NEW_DEPLOYMENT and self.offer_choices.catalog_missing

    def _set_choices(self, name: str, choices: list[tuple[str, str]], empty: str) -> None:
        """The select's options; a submitted value that does not fit stays selected, marked, so
        the person sees what they chose next to the message that explains it."""
        chosen = self.offer_choices.chosen[name]
        if chosen and chosen not in {value for value, _ in choices}:
            choices = [(chosen, f"{chosen} (not available)"), *choices]
        self.fields[name].widget.choices = choices or [("", empty)]

    # What the choices mean -------------------------------------------------------------------

    # Cached: the submitted data is settled once __init__ is done, and the checks, the view and
    # the template all ask (each asking would repeat the catalog, quota and budget queries).
    @cached_property
    def draft_spec(self) -> RequestSpec:
        """The request as chosen so far, whether or not it is valid yet: values that cannot be
        read (or lie beyond every limit) count as not chosen, so the estimate stays sensible."""
        values = {name: self.value(name) for name in DRAFT_FIELDS}
        return RequestSpec.draft(values, target=self._target_value()).following_target(self.kind)

    def _target_value(self) -> ModelDeployment | None:
        if "target" not in self.fields:
            return None
        pk = bounded_int(self.value("target"), highest=None)
        if pk is None:
            return None
        target: ModelDeployment | None = self.fields["target"].queryset.filter(pk=pk).first()  # type: ignore[attr-defined]
        return target

    @cached_property
    def assessment(self) -> Assessment:
        return request_assessment(
            kind=self.kind, department=self.chosen_department, spec=self.draft_spec, today=self.today
        )

    @property
    def uses_tokens(self) -> bool:
        """Token SKUs are priced by expected use; provisioned ones by the hour."""
        return self.draft_spec.uses_tokens

    # Validation ------------------------------------------------------------------------------

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in ("input_tokens_per_month", "output_tokens_per_month"):
            if name in self.fields and cleaned.get(name) is None and name not in self.errors:
                cleaned[name] = Decimal(0)
        if self.catalog_missing:
            raise forms.ValidationError(CATALOG_NOT_SYNCED)
        if self.chosen_department is not None:
            self.add_rule_errors(
                request_spec_errors(
                    kind=self.kind, department=self.chosen_department, spec=self.spec(), today=self.today
                )
            )
        return cleaned

    def add_rule_errors(self, errors: FieldErrors) -> None:
        """The rules' messages next to their fields; a field that already has a message (it could
        not be read, say) keeps that one."""
        for name, messages in errors.items():
            field: str | None = name
            if name == WHOLE_REQUEST:
                field = None
            elif name not in self.fields:
                field = "target" if "target" in self.fields else None
            if field is not None and field in self.errors:
                continue
            for message in messages:
                self.add_error(field, message)

    def spec(self) -> RequestSpec:
        """The cleaned values, typed, as the services take them. What this kind of form does not
        ask (a decommission's data classification, say) stays as the request being edited has it."""
        base = RequestSpec.of(self.instance) if self.instance is not None else RequestSpec()
        cleaned = self.cleaned_data
        return replace(base, **{name: cleaned[name] for name in RequestSpec.field_names() if name in cleaned})

    def preview_errors(self) -> dict[str, list[str]]:
        """Errors worth showing while the person is still choosing: not "this field is required"."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {
            name: [str(error) for error in errors]
            for name, errors in self.errors.items()
            if name
            in (
                *self.SPEC_FIELDS,
                "input_tokens_per_month",
                "output_tokens_per_month",
                "spillover_twin",
                "__all__",
            )
            and self.value(name if name != "__all__" else "region") not in (None, "")
            and not any(error == forms.Field.default_error_messages["required"] for error in errors)
        }


class DataSetChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return (
            f"{obj.name} · {obj.department.name} · {obj.get_data_classification_display().lower()} "
            f"· owner {obj.owner.display_name}"
        )


class GroundingAskForm(forms.Form):
    """A lead asks for an assistant to answer from a data set; its owner decides."""

    data_set = DataSetChoiceField(
        queryset=None,
        empty_label="Choose a data set…",
        label="Data set",
        help_text="Your department's data sets; a shared assistant may use any department's.",
    )
    purpose = forms.CharField(
        label="Why this assistant needs it",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=4000,
        help_text="The data set's owner reads this when they decide.",
    )

    def __init__(self, data: Any = None, *, data_sets: Any) -> None:
        super().__init__(data)
        self.fields["data_set"].queryset = data_sets  # type: ignore[attr-defined]
