from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from base.redirects import same_site_path
from org.access import departments_listed_for
from org.models import Department, Membership, User


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
    departments = departments_listed_for(user).annotate(
        member_count=Count("memberships"),
        lead_count=Count("memberships", filter=Q(memberships__role=Membership.Role.LEAD)),
    )
    return render(request, "portal/department_list.html", {"departments": departments})


@login_not_required
def admin_sign_in(request: HttpRequest) -> HttpResponse:
    """Django admin's sign-in page: the portal's own sign-in, so that admins sign in with the same
    rate limits, password policy and Entra ID as everyone else instead of a form of admin's."""
    next_url = same_site_path(
        request, request.GET.get(REDIRECT_FIELD_NAME, ""), default=reverse("admin:index")
    )
    if not request.user.is_authenticated:
        return redirect_to_login(next_url, login_url=reverse("account_login"))
    if admin.site.has_permission(request):
        return HttpResponseRedirect(next_url)
    # Sending a signed-in person back to the sign-in would send them straight back here.
    raise PermissionDenied("Your account has no access to Switchyard administration.")
