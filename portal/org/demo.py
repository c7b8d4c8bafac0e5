"""The demo organisation: departments, cost centers, budgets and the demo sign-ins."""

from decimal import Decimal

from django.contrib.auth.models import Group

from portal.org.models import Department, Membership, PlatformGroup, User
from portal.org.roles import ensure_platform_groups

DEMO_PASSWORD = "switchyard-demo"  # noqa: S105  (demo data, never production)

DEPARTMENTS = [
    # name, slug, cost center, monthly budget (USD), chat retention days (0 = off), audit allowed
    ("Central IT", "central-it", "CC-1000", Decimal("25000.00"), 90, True),
    ("Marketing", "marketing", "CC-2100", Decimal("5000.00"), 30, False),
    ("Finance", "finance", "CC-3100", Decimal("3000.00"), 0, False),
    ("HR", "hr", "CC-4100", Decimal("2000.00"), 7, False),
    ("Sales", "sales", "CC-5100", Decimal("6000.00"), 30, False),
]

USERS = [
    # email, first name, last name, platform group, [(department slug, role)]
    ("admin@example.com", "Adrian", "Adler", PlatformGroup.ADMINS, [("central-it", "lead")]),
    ("fiona@example.com", "Fiona", "Fischer", PlatformGroup.FINANCE, [("finance", "member")]),
    ("lena@example.com", "Lena", "Lindqvist", None, [("marketing", "lead")]),
    ("mark@example.com", "Mark", "Moreau", None, [("marketing", "member")]),
    ("fred@example.com", "Fred", "Fontaine", None, [("finance", "member")]),
    ("hana@example.com", "Hana", "Hoshino", None, [("hr", "lead")]),
]


def seed_organisation() -> dict[str, Department]:
    """The demo departments and sign-ins; safe to run again. Returns departments by slug."""
    ensure_platform_groups()
    departments = {}
    for name, slug, cost_center, budget, retention_days, audit in DEPARTMENTS:
        departments[slug], _ = Department.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "cost_center": cost_center,
                "monthly_budget": budget,
                "chat_retention_days": retention_days,
                "approvers_may_audit_chats": audit,
            },
        )
    for email, first_name, last_name, platform_group, memberships in USERS:
        user, _ = User.objects.update_or_create(
            email=email,
            defaults={
                "first_name": first_name,
                "last_name": last_name,
                "is_staff": platform_group == PlatformGroup.ADMINS,
                "is_active": True,
            },
        )
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
        user.groups.set([Group.objects.get(name=platform_group.value)] if platform_group else [])
        for slug, role in memberships:
            Membership.objects.update_or_create(
                user=user, department=departments[slug], defaults={"role": role}
            )
    return departments
