"""The demo organisation: departments, cost centers, budgets and the demo sign-ins.

The demo belongs to development only (its sign-ins share a published password), and a second
run must not undo what people did in the meantime: every row the demo makes is recorded as a
`DemoRecord`, and a later run changes or deletes only rows recorded so.
"""

from collections.abc import Sequence
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import CommandError
from django.db import models

from org.models import DemoRecord, Department, Membership, PlatformGroup, User
from org.roles import ensure_platform_groups

DEMO_PASSWORD = "switchyard-demo"  # noqa: S105  (demo data, never production)

Row = TypeVar("Row", bound=models.Model)

DEPARTMENTS = [
    # name, slug, cost center, monthly budget (USD), chat retention days (0 = off), audit allowed
    ("Central IT", "central-it", "CC-1000", Decimal("25000.00"), 90, True),
    ("Marketing", "marketing", "CC-2100", Decimal("5000.00"), 30, False),
    ("Finance", "finance", "CC-3100", Decimal("3000.00"), 0, False),
    ("HR", "hr", "CC-4100", Decimal("2000.00"), 7, False),
    ("Sales", "sales", "CC-5100", Decimal("6000.00"), 30, False),
]

# The demo directory's groups (the emulator's, provisioning/emulator/identity_registry.py, which the
# portal may not import): people who sign in with Microsoft land in these departments. `make run`
# maps the platform roles' groups with ENTRA_ADMIN/FINANCE/SECURITY_GROUP_ID.
ENTRA_GROUPS = {
    # department slug: (member group, lead group)
    "central-it": ("0c1d2e3f-4a5b-4c6d-8e7f-101112131415", ""),
    "marketing": ("1d2e3f4a-5b6c-4d7e-8f90-212223242526", "2e3f4a5b-6c7d-4e8f-9012-323334353637"),
    "finance": ("3f4a5b6c-7d8e-4f90-a123-434445464748", ""),
    "hr": ("4a5b6c7d-8e9f-4012-b234-545556575859", ""),
}

USERS = [
    # email, first name, last name, platform group, [(department slug, role)]
    ("admin@example.com", "Adrian", "Adler", PlatformGroup.ADMINS, [("central-it", "lead")]),
    ("fiona@example.com", "Fiona", "Fischer", PlatformGroup.FINANCE, [("finance", "member")]),
    ("sam@example.com", "Sam", "Sato", PlatformGroup.SECURITY, []),
    ("lena@example.com", "Lena", "Lindqvist", None, [("marketing", "lead")]),
    ("mark@example.com", "Mark", "Moreau", None, [("marketing", "member")]),
    ("fred@example.com", "Fred", "Fontaine", None, [("finance", "member")]),
    ("hana@example.com", "Hana", "Hoshino", None, [("hr", "lead")]),
]


def refuse_outside_development() -> None:
    if not settings.DEBUG:
        raise CommandError(
            "The demo data (sign-ins with a published password, invented usage) loads only in "
            "development (DEBUG=true). Nothing was changed."
        )


def demo_rows_mark(rows: Sequence[models.Model]) -> None:
    """Record rows the demo just made as the demo's."""
    if not rows:
        return
    content_type = ContentType.objects.get_for_model(rows[0])
    DemoRecord.objects.bulk_create(
        [DemoRecord(content_type=content_type, object_id=row.pk) for row in rows],
        ignore_conflicts=True,
        batch_size=2000,
    )


def demo_rows(model: type[Row]) -> models.QuerySet[Row]:
    """The rows of `model` that the demo made."""
    content_type = ContentType.objects.get_for_model(model)
    made = DemoRecord.objects.filter(content_type=content_type).values("object_id")
    return model._default_manager.filter(pk__in=made)


def demo_rows_delete(model: type[models.Model]) -> None:
    """Delete every row of `model` that the demo made, and nothing else."""
    demo_rows(model).delete()
    DemoRecord.objects.filter(content_type=ContentType.objects.get_for_model(model)).delete()


def seed_organisation() -> dict[str, Department]:
    """The demo departments and sign-ins; safe to run again. Returns departments by slug.

    A department or account with a demo slug or address that the demo did not make is used as
    it is, never overwritten."""
    ensure_platform_groups()
    departments = {}
    for name, slug, cost_center, budget, retention_days, audit in DEPARTMENTS:
        member_group, lead_group = ENTRA_GROUPS.get(slug, ("", ""))
        values = {
            "name": name,
            "cost_center": cost_center,
            "monthly_budget": budget,
            "chat_retention_days": retention_days,
            "approvers_may_audit_chats": audit,
            "entra_member_group_id": member_group,
            "entra_lead_group_id": lead_group,
        }
        department = Department.objects.filter(slug=slug).first()
        if department is None:
            department = Department.objects.create(slug=slug, **values)
            demo_rows_mark([department])
        elif demo_rows(Department).filter(pk=department.pk).update(**values):
            department.refresh_from_db()
        departments[slug] = department
    for email, first_name, last_name, platform_group, memberships in USERS:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create(email=email)
            demo_rows_mark([user])
        if demo_rows(User).filter(pk=user.pk).exists():
            _demo_sign_in_reset(user, first_name, last_name, platform_group)
        for slug, role in memberships:
            Membership.objects.get_or_create(user=user, department=departments[slug], defaults={"role": role})
    return departments


def _demo_sign_in_reset(
    user: User, first_name: str, last_name: str, platform_group: PlatformGroup | None
) -> None:
    user.first_name, user.last_name = first_name, last_name
    user.is_staff = platform_group == PlatformGroup.ADMINS
    user.is_active = True
    user.set_password(DEMO_PASSWORD)
    user.save()
    user.groups.set([Group.objects.get(name=platform_group.value)] if platform_group else [])
