"""Django admin for the Azure estate.

What Azure reports (ARM ids, endpoints, drift, the catalog and quota) and what the provisioning
engine owns (states, model, SKU, capacity, the operation log) is read-only here: those change
through requests and the engine, so the database never claims something Azure does not have.
"""

from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest

from audit.services import audit_record
from org.models import User
from provisioning.catalog import catalog_sync
from provisioning.leftovers import LeftoverRemovalRefused, leftover_remove
from provisioning.models import (
    AccessGrant,
    CatalogEntry,
    LandingZone,
    LeftoverResource,
    ModelDeployment,
    OpenAIAccount,
    Price,
    ProvisioningOperation,
    Quota,
    SearchService,
)
from provisioning.search import search_service_retry


class ReadOnlyAdminMixin:
    """For rows that only Azure or the provisioning engine write: admins look, never edit."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LandingZone)
class LandingZoneAdmin(admin.ModelAdmin[LandingZone]):
    list_display = ["name", "owner_department", "subscription_id", "resource_group", "regions"]
    list_filter = ["owner_department"]
    search_fields = ["name", "slug", "subscription_id", "resource_group"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["owner_department"]
    list_select_related = ["owner_department"]
    actions = ["sync_from_azure"]

    @admin.display(description="Allowed regions")
    def regions(self, landing_zone: LandingZone) -> str:
        return ", ".join(landing_zone.allowed_regions)

    @admin.action(description="Sync catalog and quota from Azure", permissions=["change"])
    def sync_from_azure(self, request: HttpRequest, queryset: QuerySet[LandingZone]) -> None:
        for landing_zone in queryset:
            result = catalog_sync(landing_zone=landing_zone, actor=request.user)  # type: ignore[arg-type]
            level = messages.WARNING if result.failures else messages.SUCCESS
            self.message_user(request, f"{landing_zone}: {result.summary()}", level)


class OpenAIAccountDeploymentInline(admin.TabularInline[ModelDeployment, OpenAIAccount]):
    model = ModelDeployment
    extra = 0
    can_delete = False
    show_change_link = True
    fields = readonly_fields = (
        "display_name",
        "name",
        "model_name",
        "model_version",
        "sku",
        "capacity",
        "state",
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OpenAIAccount)
class OpenAIAccountAdmin(admin.ModelAdmin[OpenAIAccount]):
    list_display = [
        "name",
        "landing_zone",
        "region",
        "network_mode",
        "state",
        "local_auth_disabled",
        "content_logging_disabled",
        "has_drift",
    ]
    list_filter = [
        "state",
        "region",
        "network_mode",
        "content_logging_disabled",
        "landing_zone__owner_department",
        "landing_zone",
    ]
    search_fields = ["name", "custom_subdomain", "arm_id", "endpoint"]
    list_select_related = ["landing_zone"]
    inlines = [OpenAIAccountDeploymentInline]
    # Every field is Azure's or the engine's (deterministic names, state, what Azure reports).
    readonly_fields = [
        "landing_zone",
        "region",
        "network_mode",
        "name",
        "custom_subdomain",
        "arm_id",
        "endpoint",
        "local_auth_disabled",
        "content_logging_disabled",
        "state",
        "drift",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the provisioning engine creates accounts

    def has_delete_permission(self, request: HttpRequest, obj: OpenAIAccount | None = None) -> bool:
        return False  # a decommission request deletes (and purges) them on Azure

    @admin.display(description="Drift", boolean=True)
    def has_drift(self, account: OpenAIAccount) -> bool:
        return bool(account.drift)


class ProvisioningOperationInline(admin.TabularInline[ProvisioningOperation, ModelDeployment]):
    model = ProvisioningOperation
    extra = 0
    can_delete = False
    fields = readonly_fields = ("step", "status", "attempt", "error", "started_at", "finished_at")
    ordering = ["started_at", "pk"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _values(obj: Model, fields: list[str]) -> dict[str, Any]:
    return {field: getattr(obj, field) for field in fields}


def _stored(obj: Model) -> Any:
    return type(obj)._default_manager.filter(pk=obj.pk).first() if obj.pk else None


# A grant's terms, as its audit events show them.
GRANT_FIELDS = ["deployment_id", "department_id", "tpm_cap", "monthly_budget_cap"]


def _grant_change_record(*, actor: User, before: AccessGrant | None, after: AccessGrant | None) -> None:
    """Audit an admin's grant given, its caps changed, or taken away; admin saves run in one
    transaction, the event with them."""
    grant = after or before
    assert grant is not None
    if before is None:
        verb, old, new = "grant.created", None, _values(grant, GRANT_FIELDS)
    elif after is None:
        verb, old, new = "grant.revoked", _values(before, GRANT_FIELDS), None
    else:
        old, new = _values(before, GRANT_FIELDS), _values(after, GRANT_FIELDS)
        changed = [field for field in GRANT_FIELDS if old[field] != new[field]]
        if not changed:
            return
        verb, old, new = "grant.changed", {f: old[f] for f in changed}, {f: new[f] for f in changed}
    audit_record(actor=actor, verb=verb, target=grant, department=grant.department, before=old, after=new)


class AuditsGrants:
    """Grants given, changed or taken away in the admin (their page, a deployment's inline)."""

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm[Any], change: bool) -> None:
        if not isinstance(obj, AccessGrant):
            super().save_model(request, obj, form, change)  # type: ignore[misc]
            return
        before = _stored(obj)
        super().save_model(request, obj, form, change)  # type: ignore[misc]
        _grant_change_record(actor=request.user, before=before, after=obj)  # type: ignore[arg-type]

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        if isinstance(obj, AccessGrant):  # recorded first: the deleted row has no id any more
            _grant_change_record(actor=request.user, before=obj, after=None)  # type: ignore[arg-type]
        super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def save_formset(
        self,
        request: HttpRequest,
        form: ModelForm[Any],
        formset: BaseInlineFormSet[Any, Any, Any],
        change: bool,
    ) -> None:
        if formset.model is not AccessGrant:
            super().save_formset(request, form, formset, change)  # type: ignore[misc]
            return
        stored = {grant.pk: grant for grant in AccessGrant.objects.filter(deployment=form.instance)}
        doomed = [inline.instance.pk for inline in formset.deleted_forms if inline.instance.pk]
        super().save_formset(request, form, formset, change)  # type: ignore[misc]
        actor: User = request.user  # type: ignore[assignment]
        for pk in doomed:
            _grant_change_record(actor=actor, before=stored[pk], after=None)
        for grant in formset.new_objects:
            _grant_change_record(actor=actor, before=None, after=grant)
        for grant, _fields in formset.changed_objects:
            _grant_change_record(actor=actor, before=stored[grant.pk], after=grant)


class AccessGrantInline(admin.TabularInline[AccessGrant, ModelDeployment]):
    model = AccessGrant
    extra = 0
    autocomplete_fields = ["department"]
    fields = ["department", "tpm_cap", "monthly_budget_cap", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(ModelDeployment)
class ModelDeploymentAdmin(AuditsGrants, admin.ModelAdmin[ModelDeployment]):
    list_display = [
        "display_name",
        "department",
        "scope",
        "model_name",
        "model_version",
        "sku",
        "capacity_label",
        "region",
        "state",
        "has_drift",
    ]
    list_filter = [
        "state",
        "scope",
        "sku",
        "region",
        "department",
        "landing_zone__owner_department",
        "model_name",
    ]
    search_fields = ["display_name", "name", "model_name", "department__name", "account__name"]
    list_select_related = ["department"]
    autocomplete_fields = ["department"]
    inlines = [AccessGrantInline, ProvisioningOperationInline]
    fieldsets = [
        (None, {"fields": ["display_name", "department", "scope", "system_prompt"]}),
        (
            "On Azure",
            {
                "description": "Set by the request and the provisioning engine; a capacity change or "
                "decommission request changes them.",
                "fields": [
                    "landing_zone",
                    "region",
                    "network_mode",
                    "account",
                    "name",
                    "model_name",
                    "model_version",
                    "sku",
                    "capacity",
                    "content_filter",
                ],
            },
        ),
        (
            "State",
            {"fields": ["state", "status_message", "drift", "drift_checked_at", "created_at", "updated_at"]},
        ),
    ]
    readonly_fields = [
        "landing_zone",
        "region",
        "network_mode",
        "account",
        "name",
        "model_name",
        "model_version",
        "sku",
        "capacity",
        "content_filter",
        "state",
        "status_message",
        "drift",
        "drift_checked_at",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # deployments come from approved requests, through the engine

    def has_delete_permission(self, request: HttpRequest, obj: ModelDeployment | None = None) -> bool:
        return False  # deleting the row would leave the Azure deployment running and billing

    @admin.display(description="Capacity")
    def capacity_label(self, deployment: ModelDeployment) -> str:
        return deployment.capacity_label

    @admin.display(description="Drift", boolean=True)
    def has_drift(self, deployment: ModelDeployment) -> bool:
        return bool(deployment.drift)


@admin.register(LeftoverResource)
class LeftoverResourceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[LeftoverResource]):
    """What the drift check found in Azure that no Switchyard deployment uses; removed through
    the same audited service as the Deployments page's button."""

    list_display = ["__str__", "landing_zone", "region", "reason", "holds", "state", "first_seen_at"]
    list_filter = ["state", "kind", "reason", "region", "landing_zone"]
    search_fields = ["account_name", "deployment_name", "model_name", "error"]
    list_select_related = ["landing_zone"]
    actions = ["remove_from_azure"]

    @admin.action(description="Remove from Azure")
    def remove_from_azure(self, request: HttpRequest, queryset: QuerySet[LeftoverResource]) -> None:
        user: User = request.user  # type: ignore[assignment]
        for leftover in queryset:
            try:
                leftover_remove(leftover=leftover, actor=user)
            except LeftoverRemovalRefused as refusal:
                self.message_user(request, str(refusal), messages.WARNING)
            else:
                self.message_user(request, f"Removing the {leftover} from Azure.", messages.SUCCESS)


@admin.register(SearchService)
class SearchServiceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[SearchService]):
    """A landing zone's Azure AI Search service and embeddings deployment (provisioning.search):
    made by the engine when the zone's first data set needs them; a failed one is provisioned
    again from here."""

    list_display = [
        "name",
        "landing_zone",
        "location",
        "sku",
        "embeddings_deployment",
        "state",
        "provisioned_at",
    ]
    list_filter = ["state", "location"]
    list_select_related = ["landing_zone", "embeddings_deployment"]
    actions = ["provision_again"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser or getattr(request.user, "is_platform_admin", False))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in SearchService._meta.fields]

    @admin.action(description="Provision again (failed services)", permissions=["change"])
    def provision_again(self, request: HttpRequest, queryset: QuerySet[SearchService]) -> None:
        user: User = request.user  # type: ignore[assignment]
        for service in queryset:
            if service.state != SearchService.State.FAILED:
                self.message_user(
                    request, f"{service} is {service.get_state_display().lower()}.", messages.WARNING
                )
                continue
            search_service_retry(service=service, actor=user)
            self.message_user(request, f"Provisioning {service} again.", messages.SUCCESS)


@admin.register(AccessGrant)
class AccessGrantAdmin(AuditsGrants, admin.ModelAdmin[AccessGrant]):
    list_display = ["deployment", "department", "tpm_cap", "monthly_budget_cap", "created_at"]
    list_filter = ["department", "deployment__department", "deployment"]
    search_fields = ["deployment__display_name", "department__name"]
    autocomplete_fields = ["deployment", "department"]
    list_select_related = ["deployment", "department"]
    readonly_fields = ["created_at"]


@admin.register(CatalogEntry)
class CatalogEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[CatalogEntry]):
    list_display = [
        "model_name",
        "model_version",
        "sku",
        "region",
        "capacity_range",
        "requests_per_minute_per_unit",
        "lifecycle_status",
        "is_default_version",
        "retirement_date",
        "synced_at",
    ]
    list_filter = ["region", "sku", "model_name", "lifecycle_status", "is_default_version"]
    search_fields = ["model_name", "model_version", "usage_name"]
    date_hierarchy = "retirement_date"

    @admin.display(description="Capacity (min-max, step)")
    def capacity_range(self, entry: CatalogEntry) -> str:
        maximum = entry.capacity_maximum if entry.capacity_maximum is not None else "…"
        return f"{entry.capacity_minimum}-{maximum}, step {entry.capacity_step}"


@admin.register(Quota)
class QuotaAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Quota]):
    list_display = [
        "usage_name",
        "region",
        "subscription_id",
        "current_value",
        "limit",
        "available",
        "synced_at",
    ]
    list_filter = ["region", "subscription_id"]
    search_fields = ["usage_name", "display_name", "subscription_id"]

    @admin.display(description="Available")
    def available(self, quota: Quota) -> str:
        return f"{quota.available:f}"


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin[Price]):
    list_display = [
        "model_label",
        "model_version",
        "sku",
        "input_per_million",
        "cached_input_per_million",
        "output_per_million",
        "ptu_per_hour",
        "valid_from",
    ]
    list_filter = ["sku", "model_name"]
    search_fields = ["model_name", "model_version", "sku", "source"]
    date_hierarchy = "valid_from"
    # "Save as new" is how a price changes: the same row with new figures and a later start.
    save_as = True
    fieldsets = [
        (
            None,
            {
                "description": "To change a price, open the current row, enter the new figures and a later "
                "“valid from” date, and choose “Save as new”: usage keeps the price that was in force "
                "when it happened. Edit a row in place only to correct a mistake. Prices are USD.",
                "fields": ["model_name", "model_version", "sku", "valid_from"],
            },
        ),
        (
            "Tokens (USD per 1M tokens)",
            {"fields": ["input_per_million", "cached_input_per_million", "output_per_million"]},
        ),
        (
            "Provisioned throughput",
            {
                "description": "USD per PTU per hour, charged while the deployment exists. Leave the model "
                "empty for a price that applies to every model in the SKU's pool.",
                "fields": ["ptu_per_hour"],
            },
        ),
        (None, {"fields": ["source"]}),
    ]

    @admin.display(description="Model", ordering="model_name")
    def model_label(self, price: Price) -> str:
        return price.model_name or "any model"

    def save_model(self, request: HttpRequest, obj: Price, form: ModelForm[Price], change: bool) -> None:
        before = _stored(obj)
        super().save_model(request, obj, form, change)
        fields = list(form.fields)
        old = _values(before, fields) if before is not None else None
        new = _values(obj, fields)
        if old is not None:
            changed = [field for field in fields if old[field] != new[field]]
            if not changed:
                return
            old, new = {f: old[f] for f in changed}, {f: new[f] for f in changed}
        audit_record(
            actor=request.user,  # type: ignore[arg-type]
            verb="price.created" if old is None else "price.changed",
            target=obj,
            before=old,
            after=new,
        )

    def delete_model(self, request: HttpRequest, obj: Price) -> None:
        audit_record(
            actor=request.user,  # type: ignore[arg-type]
            verb="price.deleted",
            target=obj,
            before=_values(obj, [field.name for field in Price._meta.concrete_fields]),
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Price]) -> None:
        for price in queryset:
            self.delete_model(request, price)


@admin.register(ProvisioningOperation)
class ProvisioningOperationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[ProvisioningOperation]):
    list_display = ["deployment", "step", "status", "attempt", "started_at", "finished_at", "duration"]
    list_filter = ["status", "step", "deployment__department", "deployment__landing_zone__owner_department"]
    search_fields = ["deployment__display_name", "deployment__name", "error"]
    list_select_related = ["deployment"]
    date_hierarchy = "started_at"

    @admin.display(description="Duration")
    def duration(self, operation: ProvisioningOperation) -> str:
        seconds = operation.duration_seconds
        return "—" if seconds is None else f"{seconds:.1f} s"
