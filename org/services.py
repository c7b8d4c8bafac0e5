import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from org.models import Department, Membership, PlatformGroup, User

logger = logging.getLogger(__name__)


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
        elif entra_group_id not in group_ids and in_group:
            user.groups.remove(group)
            changes.removed.append(platform_group.value)

    # Django admin access follows the platform-admin role.
    is_admin = user.is_superuser or user.groups.filter(name=PlatformGroup.ADMINS).exists()
    if user.is_staff != is_admin:
        user.is_staff = is_admin
        user.save(update_fields=["is_staff"])
    user.__dict__.pop("platform_groups", None)


def _log_changes(user: User, changes: MembershipChanges) -> None:
    if changes:
        logger.info(
            "Entra sign-in of %s: added %s, changed %s, removed %s",
            user.email,
            changes.added,
            changes.changed,
            changes.removed,
        )
