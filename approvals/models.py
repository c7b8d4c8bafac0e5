"""Deployment requests, the approvals they need, and the policy that decides which."""

from datetime import date
from decimal import Decimal
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from gateway.models import ApiKey
from grounding.models import Grounding
from org.models import Department, Membership, User
from provisioning.models import DataClassification, ModelDeployment, NetworkMode

# Ceilings that keep every amount inside its database column and beyond anything Azure grants:
# capacity in K TPM or PTU (a TPM cap in K TPM too), expected use in millions of tokens a month,
# and the monthly estimate in USD that `estimated_monthly_cost` can hold.
MAX_CAPACITY = 1_000_000
MAX_TOKENS_MILLIONS = Decimal(1_000_000)
MAX_MONTHLY_ESTIMATE = Decimal("99999999.99")


class DeploymentRequestQuerySet(models.QuerySet["DeploymentRequest"]):
    def visible_to(self, user: User) -> "DeploymentRequestQuerySet":
        """Approvers see every request; a lead sees the requests of the departments they lead, and
        a data set's owner the groundings that ask them to decide."""
        if user.sees_all_departments:
            return self
        led = [m.department_id for m in user.memberships_with_departments if m.role == Membership.Role.LEAD]
        asked = ApprovalStep.objects.filter(assignee=user).values("request_id")
        return self.filter(Q(department_id__in=led) | Q(pk__in=asked))

    def open(self) -> "DeploymentRequestQuerySet":
        return self.filter(state__in=DeploymentRequest.State.open())

    def matching(
        self, *, department_slug: str = "", state: str = "", kind: str = ""
    ) -> "DeploymentRequestQuerySet":
        """The requests list's filters (the page's and the API's); `state="open"` is any open
        state. An empty value does not filter."""
        requests = self
        if department_slug:
            requests = requests.filter(department__slug=department_slug)
        if state == "open":
            requests = requests.open()
        elif state:
            requests = requests.filter(state=state)
        if kind:
            requests = requests.filter(kind=kind)
        return requests

    def awaiting(self, user: User) -> "DeploymentRequestQuerySet":
        """Submitted requests with a pending approval `user` may give: not their own, not one whose
        current round they edited or submitted, and not a second approval of a request they
        already approved in this round."""
        kinds = []
        if user.is_platform_admin:
            kinds.append(ApprovalStep.Kind.PLATFORM)
        if user.is_finance_approver:
            kinds.append(ApprovalStep.Kind.FINANCE)
        this_round = ApprovalStep.objects.filter(request=OuterRef("pk"), round=OuterRef("round"))
        pending = this_round.filter(state=ApprovalStep.State.PENDING)
        # A data owner's step waits for its assignee while they lead the data set's department;
        # once they no longer do, for platform admins (who decide in the owner's place).
        owner_leads = Exists(
            Membership.objects.filter(
                user=OuterRef("assignee"),
                user__is_active=True,
                department=OuterRef("request__grounding__data_set__department"),
                role=Membership.Role.LEAD,
            )
        )
        mine = Q(kind__in=kinds) | Q(owner_leads, kind=ApprovalStep.Kind.DATA_OWNER, assignee=user)
        if user.is_platform_admin:
            mine |= Q(~owner_leads, kind=ApprovalStep.Kind.DATA_OWNER)
        return (
            self.filter(state=DeploymentRequest.State.SUBMITTED)
            .exclude(requester=user)
            .filter(Exists(pending.filter(mine)))
            .exclude(Exists(this_round.filter(state=ApprovalStep.State.APPROVED, decided_by=user)))
            .exclude(
                Exists(
                    RequestEdit.objects.filter(request=OuterRef("pk"), round=OuterRef("round"), actor=user)
                )
            )
        )


class DeploymentRequest(models.Model):
    """A lead's request: a new dedicated deployment, access to a shared one, a capacity change or
    a decommission. Only `approvals.services` changes its state."""

    class Kind(models.TextChoices):
        NEW_DEPLOYMENT = "new_deployment", "New deployment"
        SHARED_ACCESS = "shared_access", "Access to a shared service"
        CAPACITY_CHANGE = "capacity_change", "Capacity change"
        DECOMMISSION = "decommission", "Decommission"
        # Opened by the gateway when a lead creates a key for restricted data, not on the form.
        API_KEY = "api_key", "API key for restricted data"
        # Opened when a lead asks to ground an assistant on a data set, from the assistant's page.
        GROUNDING = "grounding", "Grounding an assistant on a data set"

        @classmethod
        def on_the_form(cls) -> list["DeploymentRequest.Kind"]:
            """The kinds a lead asks for with the request form."""
            return [kind for kind in cls if kind not in {cls.API_KEY, cls.GROUNDING}]

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Waiting for approval"
        CHANGES_REQUESTED = "changes_requested", "Changes requested"
        APPROVED = "approved", "Approved"
        PROVISIONING = "provisioning", "Provisioning"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

        @classmethod
        def open(cls) -> list[str]:
            return [cls.DRAFT, cls.SUBMITTED, cls.CHANGES_REQUESTED, cls.APPROVED, cls.PROVISIONING]

    kind = models.CharField(max_length=20, choices=Kind.choices)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="deployment_requests")
    requester = models.ForeignKey(
        User, null=True, on_delete=models.PROTECT, related_name="deployment_requests"
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT, db_index=True)
    # Which approval round the request is in: sending it back and resubmitting starts a new one.
    round = models.PositiveSmallIntegerField(default=0)

    purpose = models.TextField(help_text="The use case: what the department will do with it.")
    display_name = models.CharField(max_length=120, blank=True, help_text="What employees see in the chat.")
    system_prompt = models.TextField(blank=True)
    data_classification = models.CharField(
        max_length=12, choices=DataClassification.choices, default=DataClassification.INTERNAL
    )
    private_network = models.BooleanField(default=False)
    spillover_twin = models.BooleanField(
        default=False,
        help_text="Provisioned (PTU) throughput: also a pay-as-you-go twin its busy calls spill over to.",
    )
    expires_on = models.DateField(null=True, blank=True)

    region = models.CharField(max_length=40, blank=True)
    model_name = models.CharField(max_length=60, blank=True)
    model_version = models.CharField(max_length=30, blank=True)
    sku = models.CharField(max_length=30, blank=True, choices=ModelDeployment.Sku.choices)
    capacity = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="K TPM, or PTU.",
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CAPACITY)],
    )
    tpm_cap = models.PositiveIntegerField(
        "TPM cap (thousands)",
        null=True,
        blank=True,
        help_text="Shared access: the department's own cap.",
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CAPACITY)],
    )
    input_tokens_per_month = models.DecimalField(
        "input tokens per month (millions)",
        max_digits=12,
        decimal_places=3,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(MAX_TOKENS_MILLIONS)],
    )
    output_tokens_per_month = models.DecimalField(
        "output tokens per month (millions)",
        max_digits=12,
        decimal_places=3,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(MAX_TOKENS_MILLIONS)],
    )
    estimated_monthly_cost = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(MAX_MONTHLY_ESTIMATE)],
    )
    # Shared access: the department's grant as it was when the request was submitted (null when
    # it had none). The approver decides on this change; hand-over applies it only if the grant
    # is still the same.
    grant_at_submission = models.JSONField(null=True, blank=True)

    target = models.ForeignKey(
        ModelDeployment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="change_requests",
        help_text="The shared service to join, or the deployment to resize or decommission.",
    )
    deployment = models.ForeignKey(
        ModelDeployment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="requests",
        help_text="The deployment this request created or changed.",
    )
    provisioning_run = models.PositiveIntegerField(null=True, blank=True)
    api_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="approval_requests",
        help_text="The key for restricted data this request decides.",
    )
    grounding = models.ForeignKey(
        Grounding,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="approval_requests",
        help_text="The assistant and data set this request decides.",
    )
    status_message = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expiry_warned_on = models.DateField(null=True, blank=True)

    objects = DeploymentRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["state", "submitted_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()}: {self.title}"

    @property
    def title(self) -> str:
        if self.kind == self.Kind.NEW_DEPLOYMENT:
            return self.display_name or self.model_name
        if self.kind == self.Kind.GROUNDING:
            return self.display_name
        return str(self.target) if self.target_id else self.display_name

    @property
    def network_mode(self) -> str:
        return NetworkMode.PRIVATE if self.private_network else NetworkMode.PUBLIC

    @property
    def is_provisioned_sku(self) -> bool:
        return self.sku.endswith("ProvisionedManaged")

    @property
    def capacity_label(self) -> str:
        if self.capacity is None:
            return ""
        return f"{self.capacity} PTU" if self.is_provisioned_sku else f"{self.capacity}K TPM"

    @property
    def in_flight(self) -> bool:
        return self.state in {self.State.APPROVED, self.State.PROVISIONING}

    @property
    def changes_grant(self) -> bool:
        """Shared access for a department that already had a grant when it was submitted: a
        change of that grant, which a person decides."""
        return self.kind == self.Kind.SHARED_ACCESS and self.grant_at_submission is not None

    @property
    def cap_change(self) -> str:
        """What a change of an existing grant does to its cap, as the page and the queue say it."""
        if not self.changes_grant:
            return ""
        assert self.grant_at_submission is not None
        before = cap_label(self.grant_at_submission.get("tpm_cap"))
        return f"changes the cap from {before} to {cap_label(self.tpm_cap)}"

    @property
    def editing_round(self) -> int:
        """The round an edit belongs to: a draft's or a sent-back request's edits belong to the
        round its next submission opens."""
        return self.round + 1 if self.can_be_edited() else self.round

    def can_be_edited(self) -> bool:
        return self.state in {self.State.DRAFT, self.State.CHANGES_REQUESTED}

    def can_be_cancelled(self) -> bool:
        return self.state in {self.State.DRAFT, self.State.SUBMITTED, self.State.CHANGES_REQUESTED}

    def can_be_retried(self) -> bool:
        return self.state == self.State.FAILED

    def is_expired(self, today: date) -> bool:
        return self.expires_on is not None and self.expires_on <= today

    def snapshot(self) -> dict[str, Any]:
        """The request as the audit trail records it."""
        return {
            "state": self.state,
            "round": self.round,
            "kind": self.kind,
            "region": self.region,
            "model": f"{self.model_name} {self.model_version}".strip(),
            "sku": self.sku,
            "capacity": self.capacity,
            "tpm_cap": self.tpm_cap,
            "data_classification": self.data_classification,
            "private_network": self.private_network,
            "spillover_twin": self.spillover_twin,
            "expires_on": self.expires_on.isoformat() if self.expires_on else None,
            "estimated_monthly_cost": str(self.estimated_monthly_cost),
            "target": self.target_id,
            "grant_at_submission": self.grant_at_submission,
            "provisioning_run": self.provisioning_run,
            "api_key": self.api_key_id,
            "grounding": self.grounding_id,
        }


def cap_label(tpm_cap: int | None) -> str:
    return "no cap" if tpm_cap is None else f"{tpm_cap:,}K TPM"


class RequestEdit(models.Model):
    """Who wrote a round of a request: created it, changed which fields (before and after), or
    submitted it. Nobody who did may decide that round."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        EDITED = "edited", "Edited"
        SUBMITTED = "submitted", "Submitted"

    request = models.ForeignKey(DeploymentRequest, on_delete=models.CASCADE, related_name="edits")
    round = models.PositiveSmallIntegerField()
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, choices=Action.choices)
    # [{"field": ..., "label": ..., "before": ..., "after": ...}], values as the page shows them.
    changes = models.JSONField(default=list, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["request", "round"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} round {self.round} of #{self.request_id}"

    def as_record(self) -> dict[str, Any]:
        """The edit as a decision keeps it (on its step and in the audit trail)."""
        return {
            "actor_id": self.actor_id,
            "actor": self.actor.display_name if self.actor else "Switchyard",
            "action": self.action,
            "changes": self.changes,
            "at": self.at.isoformat(),
        }


class ApprovalStep(models.Model):
    """One approval a request needs in a round, why the policy asked for it, and who decided."""

    class Kind(models.TextChoices):
        AUTOMATIC = "automatic", "Approved by policy"
        PLATFORM = "platform", "Platform admin"
        FINANCE = "finance", "Finance approver"
        # The one person a data set's groundings wait for: its owner (`assignee`).
        DATA_OWNER = "data_owner", "Data owner"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        CHANGES_REQUESTED = "changes_requested", "Sent back"
        WITHDRAWN = "withdrawn", "No longer needed"

    request = models.ForeignKey(DeploymentRequest, on_delete=models.CASCADE, related_name="steps")
    round = models.PositiveSmallIntegerField()
    order = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    reason = models.TextField(help_text="Why the policy asks for this approval.")
    assignee = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assigned_approval_steps",
        help_text="The person this step waits for (a data set's owner); empty when a role decides.",
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    decided_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    # Who edited what in the round this step decided (`RequestEdit.as_record`), kept with the
    # decision so the trail shows what the decider approved, rejected or sent back.
    round_edits = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["round", "order"]
        constraints = [
            models.UniqueConstraint(fields=["request", "round", "order"], name="one_step_per_position"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.get_state_display()}"


class ApprovalPolicy(models.Model):
    """The rules that decide which approvals a request needs. One row, edited by admins."""

    auto_approve_max_capacity = models.PositiveIntegerField(
        "auto-approve up to (K TPM)",
        default=10,
        help_text="New Standard-family deployments and capacity changes up to this size are approved "
        "automatically when they fit the department's remaining budget. 0 turns auto-approval off.",
    )
    auto_approve_skus = models.JSONField(
        default=list,
        blank=True,
        help_text='SKUs auto-approval applies to, e.g. ["Standard", "GlobalStandard"].',
    )
    auto_approve_shared_access = models.BooleanField(
        default=True,
        help_text="Access to a shared service for non-restricted data is approved automatically "
        "when it fits the department's remaining budget.",
    )
    finance_cost_threshold = models.DecimalField(
        "second approval above (USD per month)",
        max_digits=12,
        decimal_places=2,
        default=Decimal("1000.00"),
        validators=[MinValueValidator(Decimal(0))],
    )
    finance_for_provisioned = models.BooleanField("second approval for provisioned throughput", default=True)
    finance_for_restricted = models.BooleanField("second approval for restricted data", default=True)
    finance_for_confidential_grounding = models.BooleanField(
        "second approval for grounding on confidential data",
        default=True,
        help_text="Grounding an assistant on a confidential data set also needs a finance approver, "
        "after the data set's owner (restricted data sets follow the rule above).",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = "approval policy"
        verbose_name_plural = "approval policy"
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="one_approval_policy")]

    def __str__(self) -> str:
        return "Approval policy"

    @classmethod
    def current(cls) -> "ApprovalPolicy":
        policy, _ = cls.objects.get_or_create(
            pk=1, defaults={"auto_approve_skus": ["Standard", "GlobalStandard", "DataZoneStandard"]}
        )
        return policy
