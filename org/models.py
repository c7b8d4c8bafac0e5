from decimal import Decimal
from functools import cached_property
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.contrib.contenttypes.models import ContentType
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from base.limits import fits_smallint_column
from base.text import validate_single_line


class PlatformGroup(models.TextChoices):
    """The Django groups that carry platform-wide roles (mapped from Entra ID groups too)."""

    ADMINS = "Platform admins"
    FINANCE = "Finance approvers"
    SECURITY = "Security approvers"


class EmailUserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra_fields: Any) -> "User":
        user = self.model(email=self.normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra_fields: Any) -> "User":
        extra_fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra_fields)


class User(AbstractUser):
    """A person at the company, identified by their work email."""

    username = None  # type: ignore[assignment]
    email = models.EmailField("email address", unique=True)
    is_break_glass = models.BooleanField(
        "break-glass account",
        default=False,
        help_text="May sign in with a password while Microsoft Entra ID sign-in is on: an emergency "
        "account for when Entra ID is unavailable. Every change of this flag and every such sign-in "
        "is audited. An account that signs in with Entra ID cannot be one.",
    )
    # Names go into email subjects and headers: one line each.
    first_name = models.CharField("first name", max_length=150, blank=True, validators=[validate_single_line])
    last_name = models.CharField("last name", max_length=150, blank=True, validators=[validate_single_line])

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects: ClassVar[EmailUserManager] = EmailUserManager()  # type: ignore[assignment]

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.email

    # Cached per instance (in practice per request): navigation and role checks on one page
    # cost one query each, however often they are asked.
    @cached_property
    def platform_groups(self) -> frozenset[str]:
        return frozenset(self.groups.values_list("name", flat=True))

    @property
    def is_platform_admin(self) -> bool:
        return self.is_superuser or PlatformGroup.ADMINS in self.platform_groups

    @property
    def is_finance_approver(self) -> bool:
        return PlatformGroup.FINANCE in self.platform_groups

    @property
    def is_security_approver(self) -> bool:
        return PlatformGroup.SECURITY in self.platform_groups

    @property
    def reads_audit_trail(self) -> bool:
        """The audit page is for platform admins and security approvers."""
        return self.is_platform_admin or self.is_security_approver

    @property
    def sees_all_departments(self) -> bool:
        return self.is_platform_admin or self.is_finance_approver

    @property
    def is_lead(self) -> bool:
        return any(m.role == Membership.Role.LEAD for m in self.memberships_with_departments)

    @cached_property
    def memberships_with_departments(self) -> list["Membership"]:
        return list(self.memberships.select_related("department").order_by("department__name"))

    @property
    def role_summary(self) -> str:
        """A short description of what the person is here, for the header."""
        if self.is_platform_admin:
            return "Platform admin"
        if self.is_finance_approver:
            return "Finance approver"
        if self.is_security_approver:
            return "Security approver"
        memberships = self.memberships_with_departments
        if not memberships:
            return "No department yet"
        first = memberships[0]
        more = f" +{len(memberships) - 1}" if len(memberships) > 1 else ""
        return f"{first.get_role_display()}, {first.department.name}{more}"


class DepartmentQuerySet(models.QuerySet["Department"]):
    def visible_to(self, user: User) -> "DepartmentQuerySet":
        if user.sees_all_departments:
            return self
        return self.filter(memberships__user=user).distinct()

    def with_entra_group(self, group_ids: set[str]) -> "DepartmentQuerySet":
        return self.filter(Q(entra_member_group_id__in=group_ids) | Q(entra_lead_group_id__in=group_ids))


# A cost center is part of its statement's address (/costs/chargeback/CC-2100/) and of the file
# name of its CSV download.
validate_cost_center = RegexValidator(
    r"\A[\w .-]+\Z",
    "Use letters, digits, spaces, dots, hyphens and underscores.",
    code="cost_center",
)


class Department(models.Model):
    """A unit that uses Azure OpenAI and is charged for it through its cost center."""

    name = models.CharField(max_length=120, unique=True, validators=[validate_single_line])
    slug = models.SlugField(max_length=60, unique=True)
    cost_center = models.CharField(
        max_length=40,
        validators=[validate_cost_center],
        help_text="The finance cost center that pays this department's spend.",
    )
    monthly_budget = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="USD per calendar month, for Azure OpenAI spend.",
    )
    chat_retention_days = models.PositiveSmallIntegerField(
        default=30,
        validators=[fits_smallint_column],
        help_text="How long chat history is kept. 0 means history is off: conversations "
        "live only for the browser session (usage is still metered).",
    )
    approvers_may_audit_chats = models.BooleanField(
        default=False,
        help_text="Whether platform approvers may read this department's chat content "
        "(every such read is audited).",
    )
    entra_member_group_id = models.CharField(
        "Entra ID member group",
        max_length=64,
        blank=True,
        db_index=True,
        help_text="Object id of the Entra ID group whose members belong to this department.",
    )
    entra_lead_group_id = models.CharField(
        "Entra ID lead group",
        max_length=64,
        blank=True,
        db_index=True,
        help_text="Object id of the Entra ID group whose members lead this department.",
    )

    objects = DepartmentQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def keeps_chat_history(self) -> bool:
        return self.chat_retention_days > 0

    @property
    def retention_label(self) -> str:
        if not self.keeps_chat_history:
            return "History off"
        if self.chat_retention_days == 1:
            return "Kept 1 day"
        return f"Kept {self.chat_retention_days} days"

    @property
    def is_managed_by_entra(self) -> bool:
        return bool(self.entra_member_group_id or self.entra_lead_group_id)

    def leads(self) -> models.QuerySet[User]:
        return User.objects.filter(memberships__department=self, memberships__role=Membership.Role.LEAD)


class Membership(models.Model):
    """A user's place in a department: member (chats) or lead (requests, budget)."""

    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        LEAD = "lead", "Lead"

    class Source(models.TextChoices):
        MANUAL = "manual", "Set by an admin"
        ENTRA = "entra", "Entra ID group"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["department__name", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["user", "department"], name="one_membership_per_department")
        ]

    def __str__(self) -> str:
        return f"{self.user} - {self.department} ({self.get_role_display()})"


class DemoRecord(models.Model):
    """A row that the demo seed (`seed_demo`) made: the only rows it changes, replaces or deletes
    when it runs again, so that it never touches what people did in the same database."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["content_type", "object_id"], name="one_demo_record_per_row")
        ]

    def __str__(self) -> str:
        return f"{self.content_type.model} {self.object_id} (demo)"


class DirectorySyncRun(models.Model):
    """One sync with Microsoft Graph (`org.directory_sync`): when, why, what changed, or why it
    could not. The delta links that let the next run ask only for changes are kept here too."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        ADMIN = "admin", "An admin, by hand"

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    requested_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="directory_syncs"
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    error = models.TextField(blank=True, help_text="Why the run failed, in words an admin can act on.")
    people_checked = models.PositiveIntegerField(default=0)
    memberships_added = models.PositiveIntegerField(default=0)
    memberships_changed = models.PositiveIntegerField(default=0)
    memberships_removed = models.PositiveIntegerField(default=0)
    platform_roles_removed = models.PositiveIntegerField(default=0)
    people_deactivated = models.PositiveIntegerField(default=0)
    sessions_ended = models.PositiveIntegerField(default=0)
    # Graph's delta links for the next run: {"groups": [one link per round of up to 50 mapped
    # groups], "group_ids": [the mapped groups they cover]}; empty asks for all.
    delta_links = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Directory sync {self.started_at:%Y-%m-%d %H:%M} ({self.get_outcome_display()})"
