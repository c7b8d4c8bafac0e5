"""Service principals in Django admin: a platform admin registers a workload identity (its
object id, the `oid` in its tokens) for a department, with the deployments it may call and its
limits. Every registration, change and removal is audited.

Imported by GatewayConfig.ready(), beside gateway/admin.py (the API keys), so the two stay apart.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.services import audit_record
from gateway.models import ServicePrincipal
from org.models import Department, User
from provisioning.models import ModelDeployment

AUDITED_FIELDS = [
    "name",
    "department",
    "object_id",
    "application_id",
    "enabled",
    "deployments",
    "requests_per_minute",
    "tokens_per_minute",
]


def usable_by_department(department_id: int) -> QuerySet[ModelDeployment]:
    """Deployments the department may call: its dedicated ones and the shared ones granted to it."""
    return ModelDeployment.objects.live().of_departments([department_id])


class ServicePrincipalForm(forms.ModelForm[ServicePrincipal]):
    class Meta:
        model = ServicePrincipal
        fields = AUDITED_FIELDS

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        department, deployments = cleaned.get("department"), cleaned.get("deployments")
        if department is not None and deployments is not None:
            usable = set(usable_by_department(department.pk).values_list("pk", flat=True))
            foreign = [deployment.display_name for deployment in deployments if deployment.pk not in usable]
            if foreign:
                self.add_error(
                    "deployments",
                    f"{department.name} may not use {', '.join(sorted(foreign))}: choose its own "
                    "deployments or shared ones granted to it.",
                )
        return cleaned


def snapshot(values: dict[str, Any]) -> dict[str, Any]:
    """What the audit trail keeps of a registration: plain values, deployments by gateway name."""
    shown: dict[str, Any] = {}
    for name in AUDITED_FIELDS:
        value = values.get(name)
        if name == "deployments":
            shown[name] = sorted(deployment.gateway_name for deployment in value or [])
        elif name == "department":
            shown[name] = value.slug if value is not None else None
        else:
            shown[name] = None if value is None else value if isinstance(value, bool | int) else str(value)
    return shown


def stored_values(principal: ServicePrincipal) -> dict[str, Any]:
    return {
        **{name: getattr(principal, name) for name in AUDITED_FIELDS if name != "deployments"},
        "deployments": list(principal.deployments.all()),
    }


@admin.register(ServicePrincipal)
class ServicePrincipalAdmin(admin.ModelAdmin[ServicePrincipal]):
    form = ServicePrincipalForm
    list_display = ["name", "department", "object_id", "enabled", "last_used_at"]
    list_filter = ["enabled", "department"]
    search_fields = ["name", "object_id", "application_id", "department__name"]
    list_select_related = ["department"]
    filter_horizontal = ["deployments"]
    readonly_fields = ["registered_by", "created_at", "last_used_at"]
    fieldsets = [
        (
            None,
            {
                "fields": ["name", "department", "object_id", "application_id", "enabled"],
                "description": "A workload identity's Entra ID tokens call the gateway as this department. "
                "The object id is the service principal's (Enterprise applications, or the managed "
                "identity's), not the app registration's.",
            },
        ),
        ("What it may call", {"fields": ["deployments", "requests_per_minute", "tokens_per_minute"]}),
        ("History", {"fields": ["registered_by", "created_at", "last_used_at"]}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: ServicePrincipal | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        # A registration has a history once it exists.
        return (
            fieldsets if obj is not None else [fieldset for fieldset in fieldsets if fieldset[0] != "History"]
        )

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "deployments":
            kwargs["queryset"] = ModelDeployment.objects.live().order_by("display_name")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: ServicePrincipal, form: Any, change: bool) -> None:
        if not change:
            obj.registered_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The deployments are saved here, after the principal itself: the audit event follows them.
        # Admin saves in one transaction, so the change and its trace commit together.
        super().save_related(request, form, formsets, change)
        principal: ServicePrincipal = form.instance
        after = snapshot(stored_values(principal))
        if not change:
            audit_record(
                actor=_actor(request),
                verb="service_principal.registered",
                target=principal,
                department=principal.department,
                after=after,
            )
            return
        # The form's initial values are the stored ones; its department is an id there.
        department = Department.objects.filter(pk=form.initial["department"]).first()
        before = snapshot({**form.initial, "department": department})
        changed = [name for name in AUDITED_FIELDS if before[name] != after[name]]
        if changed:
            audit_record(
                actor=_actor(request),
                verb=_change_verb(before, after, changed),
                target=principal,
                department=principal.department,
                before={name: before[name] for name in changed},
                after={name: after[name] for name in changed},
            )

    def delete_model(self, request: HttpRequest, obj: ServicePrincipal) -> None:
        audit_record(
            actor=_actor(request),
            verb="service_principal.removed",
            target=obj,
            department=obj.department,
            before=snapshot(stored_values(obj)),
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ServicePrincipal]) -> None:
        for principal in queryset:
            self.delete_model(request, principal)


def _change_verb(before: dict[str, Any], after: dict[str, Any], changed: list[str]) -> str:
    if changed == ["enabled"]:
        return "service_principal.enabled" if after["enabled"] else "service_principal.disabled"
    return "service_principal.changed"


def _actor(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None
