from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.org.models import Department, Membership, User


def home(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    context: dict[str, object] = {"memberships": user.memberships_with_departments}
    if user.sees_all_departments:
        departments = Department.objects.annotate(
            member_count=Count("memberships"),
            lead_count=Count("memberships", filter=Q(memberships__role=Membership.Role.LEAD)),
        )
        context["departments"] = departments
        context["total_budget"] = departments.aggregate(total=Sum("monthly_budget"))["total"]
        context["user_count"] = User.objects.filter(is_active=True).count()
    return render(request, "portal/home.html", context)


def department_list(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    departments = Department.objects.annotate(
        member_count=Count("memberships"),
        lead_count=Count("memberships", filter=Q(memberships__role=Membership.Role.LEAD)),
    )
    if not user.sees_all_departments:
        if not user.is_lead:
            raise PermissionDenied("Department pages are for leads, platform admins and finance approvers.")
        departments = departments.filter(memberships__user=user, memberships__role=Membership.Role.LEAD)
    return render(request, "portal/department_list.html", {"departments": departments})
