"""Keyword-only builders for test data."""

from decimal import Decimal
from itertools import count

from django.contrib.auth.models import Group

from portal.org.models import Department, Membership, PlatformGroup, User
from portal.org.roles import ensure_platform_groups

PASSWORD = "correct-horse-battery-staple"
_sequence = count(1)


def make_department(
    *,
    name: str | None = None,
    slug: str | None = None,
    cost_center: str | None = None,
    monthly_budget: Decimal = Decimal("1000.00"),
    chat_retention_days: int = 30,
    entra_member_group_id: str = "",
    entra_lead_group_id: str = "",
) -> Department:
    number = next(_sequence)
    name = name or f"Department {number}"
    return Department.objects.create(
        name=name,
        slug=slug or name.lower().replace(" ", "-"),
        cost_center=cost_center or f"CC-{9000 + number}",
        monthly_budget=monthly_budget,
        chat_retention_days=chat_retention_days,
        entra_member_group_id=entra_member_group_id,
        entra_lead_group_id=entra_lead_group_id,
    )


def make_user(
    *,
    email: str | None = None,
    first_name: str = "Test",
    department: Department | None = None,
    role: str = Membership.Role.MEMBER,
    platform_group: PlatformGroup | None = None,
) -> User:
    user = User.objects.create_user(
        email or f"person{next(_sequence)}@example.com", PASSWORD, first_name=first_name
    )
    if department is not None:
        Membership.objects.create(user=user, department=department, role=role)
    if platform_group is not None:
        ensure_platform_groups()
        user.groups.add(Group.objects.get(name=platform_group.value))
        user.is_staff = platform_group == PlatformGroup.ADMINS
        user.save(update_fields=["is_staff"])
    return user
