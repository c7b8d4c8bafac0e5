from django import forms
from django.contrib import admin
from django.http import HttpRequest

from approvals.models import ApprovalPolicy, ApprovalStep, DeploymentRequest, RequestEdit
from provisioning.models import ModelDeployment


class ApprovalPolicyForm(forms.ModelForm[ApprovalPolicy]):
    auto_approve_skus = forms.MultipleChoiceField(
        label="SKUs approved automatically",
        choices=[
            (sku, label)
            for sku, label in ModelDeployment.Sku.choices
            if not sku.endswith("ProvisionedManaged")
        ],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Provisioned SKUs always need a person: they cost by the hour whether used or not.",
    )

    class Meta:
        model = ApprovalPolicy
        fields = [
            "auto_approve_max_capacity",
            "auto_approve_skus",
            "auto_approve_shared_access",
            "finance_cost_threshold",
            "finance_for_provisioned",
            "finance_for_restricted",
            "finance_for_confidential_grounding",
        ]


class ApprovalStepInline(admin.TabularInline[ApprovalStep, DeploymentRequest]):
    model = ApprovalStep
    extra = 0
    can_delete = False
    fields = (
        "round",
        "order",
        "kind",
        "assignee",
        "state",
        "reason",
        "decided_by",
        "decided_at",
        "comment",
        "round_edits",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: DeploymentRequest | None = None) -> bool:
        return False


class RequestEditInline(admin.TabularInline[RequestEdit, DeploymentRequest]):
    model = RequestEdit
    extra = 0
    can_delete = False
    fields = ("round", "action", "actor", "changes", "at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: DeploymentRequest | None = None) -> bool:
        return False


@admin.register(DeploymentRequest)
class DeploymentRequestAdmin(admin.ModelAdmin[DeploymentRequest]):
    """Read-only: requests change state only through their pages (the services audit each step)."""

    list_display = ["pk", "kind", "department", "title", "state", "estimated_monthly_cost", "submitted_at"]
    list_filter = ["state", "kind", "data_classification", "department"]
    search_fields = ["display_name", "purpose", "model_name", "requester__email"]
    inlines = [ApprovalStepInline, RequestEditInline]

    def get_readonly_fields(self, request: HttpRequest, obj: DeploymentRequest | None = None) -> list[str]:
        return [field.name for field in DeploymentRequest._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: DeploymentRequest | None = None) -> bool:
        return False


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin[ApprovalPolicy]):
    form = ApprovalPolicyForm
    fieldsets = [
        (
            "Automatic approval",
            {"fields": ["auto_approve_max_capacity", "auto_approve_skus", "auto_approve_shared_access"]},
        ),
        (
            "Second approval by finance",
            {
                "fields": [
                    "finance_cost_threshold",
                    "finance_for_provisioned",
                    "finance_for_restricted",
                    "finance_for_confidential_grounding",
                ]
            },
        ),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not ApprovalPolicy.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: ApprovalPolicy | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ApprovalPolicy, form: object, change: bool) -> None:
        from audit.services import audit_record

        before = None
        if change:
            previous = ApprovalPolicy.objects.get(pk=obj.pk)
            before = {field: str(getattr(previous, field)) for field in self._audited()}
        obj.pk = 1
        obj.updated_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user,  # type: ignore[arg-type]
            verb="policy.changed",
            target=obj,
            before=before,
            after={field: str(getattr(obj, field)) for field in self._audited()},
        )

    @staticmethod
    def _audited() -> list[str]:
        return ApprovalPolicyForm.Meta.fields
