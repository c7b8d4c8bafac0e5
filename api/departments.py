"""Departments and their people, as the department pages show them: platform admins and finance
approvers see every department, a lead the departments they lead (`org.access`); another
department is a 404 and a plain member gets a 403, as on the pages."""

from decimal import Decimal

from django.db.models import Count, Q
from django.http import HttpRequest
from ninja import Query, Router

from api.pagination import Page, PageParams, page_of
from api.params import Slug, user_of
from api.schemas import BudgetOut, DepartmentDetailOut, DepartmentOut, MembershipOut, Money, utc
from money.budgets import budget_status
from org.access import departments_listed_for, get_department_for
from org.models import Department, Membership, User

router = Router(tags=["departments"])


def _department_out(department: Department, roles: dict[int, str]) -> dict[str, object]:
    return {
        "slug": department.slug,
        "name": department.name,
        "cost_center": department.cost_center,
        "monthly_budget": Money.of(department.monthly_budget),
        "chat_retention_days": department.chat_retention_days,
        "approvers_may_audit_chats": department.approvers_may_audit_chats,
        "your_role": roles.get(department.pk),
    }


def _roles(user: User) -> dict[int, str]:
    return {membership.department_id: membership.role for membership in user.memberships_with_departments}


@router.get("/departments", response=Page[DepartmentOut], summary="Departments you may open")
def list_departments(request: HttpRequest, page: Query[PageParams]) -> dict[str, object]:
    """Every department for platform admins and finance approvers; the ones you lead for a lead.
    Ordered by slug."""
    user = user_of(request)
    chunk = page_of(
        departments_listed_for(user),
        order="slug",
        list_name="departments",
        cursor=page.cursor,
        limit=page.limit,
    )
    roles = _roles(user)
    return {"items": [_department_out(d, roles) for d in chunk.rows], "next_cursor": chunk.next_cursor}


@router.get("/departments/{slug}", response=DepartmentDetailOut, summary="One department")
def get_department(request: HttpRequest, slug: Slug) -> dict[str, object]:
    user = user_of(request)
    department = get_department_for(user, slug, lead_only=True)
    counts = Membership.objects.filter(department=department).aggregate(
        members=Count("pk"), leads=Count("pk", filter=Q(role=Membership.Role.LEAD))
    )
    status = budget_status(department=department)
    share = status.share.quantize(Decimal("0.0001"))
    return {
        **_department_out(department, _roles(user)),
        "member_count": counts["members"],
        "lead_count": counts["leads"],
        "budget": BudgetOut(
            monthly_budget=Money.of(status.budget),
            spent_this_month=Money.of(status.spent),
            share_used=str(share),
            exhausted=status.exhausted,
        ),
    }


@router.get(
    "/departments/{slug}/memberships", response=Page[MembershipOut], summary="The department's people"
)
def list_memberships(request: HttpRequest, slug: Slug, page: Query[PageParams]) -> dict[str, object]:
    """Who is in the department and with what role. Ordered by when they joined (their id)."""
    department = get_department_for(user_of(request), slug, lead_only=True)
    chunk = page_of(
        Membership.objects.filter(department=department).select_related("user"),
        order="pk",
        list_name=f"departments/{department.slug}/memberships",
        cursor=page.cursor,
        limit=page.limit,
    )
    items = [
        {
            "id": membership.pk,
            "email": membership.user.email,
            "name": membership.user.display_name,
            "role": membership.role,
            "source": membership.source,
            "since": utc(membership.created_at),
        }
        for membership in chunk.rows
    ]
    return {"items": items, "next_cursor": chunk.next_cursor}
