"""Departments and their people, as the department pages show them: platform admins and finance
approvers see every department, a lead the departments they lead (`org.access`); another
department is a 404 and a plain member gets a 403, as on the pages. Platform admins change a
department's budget and data policy through the service the Django admin uses
(`org.services.department_policy_change`), so the audit trail says the same."""

from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router

from api.conditional import etag_of, require_match
from api.pagination import Page, PageParams, page_of
from api.params import Slug, user_of
from api.problems import refused
from api.schemas import (
    BudgetOut,
    DepartmentChange,
    DepartmentDetailOut,
    DepartmentOut,
    MembershipOut,
    Money,
    utc,
)
from money.budgets import budget_status
from org.access import departments_listed_for, get_department_for, get_department_for_admin
from org.models import Department, Membership, User
from org.services import DepartmentPolicyInvalid, department_policy_change

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


def _settings(department: Department) -> DepartmentOut:
    """What the department's ETag versions: its own settings, not this month's spend, which moves
    with every call, nor who asks."""
    return DepartmentOut.model_validate(_department_out(department, {}))


def _detail(department: Department, user: User, response: HttpResponse) -> dict[str, object]:
    counts = Membership.objects.filter(department=department).aggregate(
        members=Count("pk"), leads=Count("pk", filter=Q(role=Membership.Role.LEAD))
    )
    status = budget_status(department=department)
    share = status.share.quantize(Decimal("0.0001"))
    response["ETag"] = etag_of(_settings(department))
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


@router.get("/departments/{slug}", response=DepartmentDetailOut, summary="One department")
def get_department(request: HttpRequest, slug: Slug, response: HttpResponse) -> dict[str, object]:
    """The department, its people's count and its budget this month. The `ETag` versions the
    department's settings (name, cost center, budget, data policy), not the spend: send it as
    `If-Match` with a change."""
    user = user_of(request)
    return _detail(get_department_for(user, slug, lead_only=True), user, response)


@router.patch("/departments/{slug}", response=DepartmentDetailOut, summary="Change a department's policy")
def change_department(
    request: HttpRequest, slug: Slug, payload: DepartmentChange, response: HttpResponse
) -> dict[str, object]:
    """Set the department's monthly budget, how long its chat history is kept (0: off) and
    whether approvers may audit its chats: for platform admins, as in the Django admin, and
    audited the same way (`department.budget_changed`, `department.retention_changed`,
    `department.audit_policy_changed`, one for each kind of change made). Fields left out stay as
    they are. With `If-Match`, the change is made only if the settings are still as read (else
    412); the answer is the department as changed, with its new `ETag`."""
    user = user_of(request)
    department = get_department_for_admin(user, slug)
    # The version is checked under the lock the change takes: nothing changes in between.
    with transaction.atomic():
        current = Department.objects.select_for_update().get(pk=department.pk)
        require_match(request, _settings(current))
        try:
            changed = department_policy_change(
                department=current,
                actor=user,
                monthly_budget=payload.monthly_budget.value if payload.monthly_budget else None,
                chat_retention_days=payload.chat_retention_days,
                approvers_may_audit_chats=payload.approvers_may_audit_chats,
            )
        except DepartmentPolicyInvalid as invalid:
            fields = ", ".join(sorted(invalid.errors))
            raise refused(
                f"The department cannot be changed so: {fields}. `errors` says what is wrong with each.",
                invalid.errors,
            ) from None
    return _detail(changed, user, response)


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
