import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.services import audit_record
from org.models import Department, Membership, PlatformGroup, User

logger = logging.getLogger(__name__)

# Who acts when a sign-in brings someone's roles in line with their Entra groups.
ENTRA = "Microsoft Entra ID"


@dataclass
class MembershipChanges:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def memberships_sync_from_entra(*, user: User, group_ids: set[str]) -> MembershipChanges:
    """Make the user's departments, lead roles and platform groups match their Entra groups.

    Only departments that name an Entra group are governed by Entra ID; memberships an admin
    set by hand in a department without groups are left alone, and so is a hand-set membership
    that Entra ID does not mention.
    """
    changes = MembershipChanges()
    with transaction.atomic():
        _departments_sync(user=user, group_ids=group_ids, changes=changes)
        _platform_groups_sync(user=user, group_ids=group_ids, changes=changes)
    _log_changes(user, changes)
    return changes


def platform_roles_revoke_unconfirmed(*, user: User) -> MembershipChanges:
    """Take away the platform roles that Entra ID governs (admin, finance or security approver)
    when a sign-in could not read the person's groups: nothing confirms them, and they reach
    every department. Departments stay as last known; the next readable sign-in restores all."""
    changes = MembershipChanges()
    with transaction.atomic():
        # No group confirmed: every Entra-governed platform group is one the person is not in.
        _platform_groups_sync(user=user, group_ids=set(), changes=changes)
    _log_changes(user, changes)
    return changes


def _departments_sync(*, user: User, group_ids: set[str], changes: MembershipChanges) -> None:
    existing = {
        membership.department_id: membership
        for membership in Membership.objects.select_for_update().filter(user=user)
    }
    governed = Department.objects.exclude(entra_member_group_id="", entra_lead_group_id="")
    for department in governed:
        if department.entra_lead_group_id and department.entra_lead_group_id in group_ids:
            wanted_role: str | None = Membership.Role.LEAD
        elif department.entra_member_group_id and department.entra_member_group_id in group_ids:
            wanted_role = Membership.Role.MEMBER
        else:
            wanted_role = None
        membership = existing.get(department.pk)
        label = f"{department.name} ({wanted_role})"
        role_before = membership.role if membership is not None else None
        if membership is None and wanted_role:
            Membership.objects.create(
                user=user, department=department, role=wanted_role, source=Membership.Source.ENTRA
            )
            changes.added.append(label)
        elif (
            membership is not None
            and wanted_role
            and (membership.role != wanted_role or membership.source != Membership.Source.ENTRA)
        ):
            membership.role = wanted_role
            membership.source = Membership.Source.ENTRA
            membership.save(update_fields=["role", "source"])
            changes.changed.append(label)
        elif membership is not None and not wanted_role and membership.source == Membership.Source.ENTRA:
            membership.delete()
            changes.removed.append(department.name)
        else:
            continue
        membership_change_record(
            user=user,
            department=department,
            role_before=role_before,
            role_after=wanted_role,
            actor=None,
            actor_label=ENTRA,
        )
    user.__dict__.pop("memberships_with_departments", None)


def _platform_groups_sync(*, user: User, group_ids: set[str], changes: MembershipChanges) -> None:
    for platform_group, entra_group_id in (
        (PlatformGroup.ADMINS, settings.ENTRA_ADMIN_GROUP_ID),
        (PlatformGroup.FINANCE, settings.ENTRA_FINANCE_GROUP_ID),
        (PlatformGroup.SECURITY, settings.ENTRA_SECURITY_GROUP_ID),
    ):
        if not entra_group_id:
            continue
        group, _ = Group.objects.get_or_create(name=platform_group.value)
        in_group = user.groups.filter(pk=group.pk).exists()
        if entra_group_id in group_ids and not in_group:
            user.groups.add(group)
            changes.added.append(platform_group.value)
            platform_roles_change_record(user=user, granted={group.name}, actor=None, actor_label=ENTRA)
        elif entra_group_id not in group_ids and in_group:
            user.groups.remove(group)
            changes.removed.append(platform_group.value)
            platform_roles_change_record(user=user, removed={group.name}, actor=None, actor_label=ENTRA)

    # Django admin access follows the platform-admin role.
    is_admin = user.is_superuser or user.groups.filter(name=PlatformGroup.ADMINS).exists()
    if user.is_staff != is_admin:
        user.is_staff = is_admin
        user.save(update_fields=["is_staff"])
    user.__dict__.pop("platform_groups", None)


def _log_changes(user: User, changes: MembershipChanges) -> None:
    if changes:
        logger.info(
            "Memberships of %s follow their Entra groups: added %s, changed %s, removed %s",
            user.email,
            changes.added,
            changes.changed,
            changes.removed,
        )


# The audit trail of roles: one place, whoever changes them (an Entra sign-in, an admin) -------


def membership_change_record(
    *,
    user: User,
    department: Department,
    role_before: str | None,
    role_after: str | None,
    actor: User | None,
    actor_label: str = "",
) -> None:
    """Audit a change of someone's place in a department, inside the change's transaction:
    joined, left, made lead or no longer lead. The event's target is the person."""
    if role_before == role_after:
        return
    if role_before is None:
        verb = "membership.added"
    elif role_after is None:
        verb = "membership.removed"
    elif role_after == Membership.Role.LEAD:
        verb = "membership.lead_granted"
    else:
        verb = "membership.lead_removed"
    audit_record(
        actor=actor,
        actor_label=actor_label,
        verb=verb,
        target=user,
        department=department,
        before={"department": department.slug, "role": role_before} if role_before else None,
        after={"department": department.slug, "role": role_after} if role_after else None,
    )


def platform_roles_change_record(
    *,
    user: User,
    granted: Collection[str] = (),
    removed: Collection[str] = (),
    actor: User | None,
    actor_label: str = "",
) -> None:
    """Audit platform roles (groups: platform admin, finance approver...) given or taken away.
    A platform role reaches every department, so the events name none."""
    for verb, names in (("platform_role.granted", granted), ("platform_role.removed", removed)):
        for name in sorted(names):
            audit_record(
                actor=actor,
                actor_label=actor_label,
                verb=verb,
                target=user,
                before={"platform_role": name} if verb.endswith("removed") else None,
                after={"platform_role": name} if verb.endswith("granted") else None,
            )


def sign_in_failed_record(*, email: str, note: str) -> None:
    """The event's target is the account tried, or an unsaved one with that address when there
    is no such account (the trail still says which address was tried)."""
    person = User.objects.filter(email__iexact=email).first() if email else None
    audit_record(
        actor=None,
        actor_label=email,
        verb="auth.sign_in_failed",
        target=person or User(email=email),
        after={"email": email},
        note=note,
    )


# The fields of a department whose changes the audit trail keeps, by the event's verb.
DEPARTMENT_POLICY_FIELDS = {
    "department.budget_changed": ["monthly_budget"],
    "department.retention_changed": ["chat_retention_days"],
    "department.audit_policy_changed": ["approvers_may_audit_chats"],
}


def department_policy_values(department: Department) -> dict[str, object]:
    return {
        field: getattr(department, field) for fields in DEPARTMENT_POLICY_FIELDS.values() for field in fields
    }


class DepartmentPolicyInvalid(Exception):
    """The values break the department's rules (its fields' validators); `errors` holds the
    messages by field."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(" ".join(message for messages in errors.values() for message in messages))


def department_policy_change(
    *,
    department: Department,
    actor: User,
    monthly_budget: Decimal | None = None,
    chat_retention_days: int | None = None,
    approvers_may_audit_chats: bool | None = None,
) -> Department:
    """Change a department's monthly budget and data policy (the values given; `None` leaves one
    as it is), as the Django admin and the API do. The values are checked by the model's own
    validators (`DepartmentPolicyInvalid`); each kind of change is audited on its own
    (`DEPARTMENT_POLICY_FIELDS`), and nothing is written or said when nothing changes. Who may do
    it is the caller's to check: platform admins (`org.access.get_department_for_admin`)."""
    given: dict[str, object] = {
        name: value
        for name, value in (
            ("monthly_budget", monthly_budget),
            ("chat_retention_days", chat_retention_days),
            ("approvers_may_audit_chats", approvers_may_audit_chats),
        )
        if value is not None
    }
    with transaction.atomic():
        locked = Department.objects.select_for_update().get(pk=department.pk)
        before = department_policy_values(locked)
        for name, value in given.items():
            setattr(locked, name, value)
        others = [each.name for each in Department._meta.concrete_fields if each.name not in given]
        try:
            locked.clean_fields(exclude=others)
        except ValidationError as error:
            raise DepartmentPolicyInvalid(error.message_dict) from None
        changed = [name for name in given if getattr(locked, name) != before[name]]
        if not changed:
            return locked
        locked.save(update_fields=changed)
        locked.refresh_from_db(fields=changed)  # the budget as its column keeps it: 2500 is 2500.00
        department_change_record(department=locked, before=before, actor=actor)
    return locked


def department_change_record(*, department: Department, before: dict[str, object], actor: User) -> None:
    """Audit the budget, retention and audit-policy changes of a department just saved;
    `before` is `department_policy_values` from before the change."""
    after = department_policy_values(department)
    for verb, fields in DEPARTMENT_POLICY_FIELDS.items():
        if any(before[field] != after[field] for field in fields):
            audit_record(
                actor=actor,
                verb=verb,
                target=department,
                department=department,
                before={field: before[field] for field in fields},
                after={field: after[field] for field in fields},
            )


def account_active_change_record(
    *, user: User, actor: User | None, actor_label: str = "", note: str = ""
) -> None:
    """Audit an account switched off (no sign-in, no session, no key acts for it) or back on."""
    audit_record(
        actor=actor,
        actor_label=actor_label,
        verb="user.reactivated" if user.is_active else "user.deactivated",
        target=user,
        before={"is_active": not user.is_active},
        after={"is_active": user.is_active},
        note=note,
    )


def lifecycle_record(*, verb: str, target: User | Department, actor: User, values: dict[str, object]) -> None:
    """Audit a person's account or a department created (`after`) or deleted (`before`): what it
    was, kept in the trail because the row itself is gone or new."""
    created = verb.endswith(".created")
    audit_record(
        actor=actor,
        verb=verb,
        target=target,
        department=target if isinstance(target, Department) and created else None,
        before=None if created else values,
        after=values if created else None,
    )
