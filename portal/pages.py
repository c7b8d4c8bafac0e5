"""Pages that bring several apps together. The department page shows its people (org), its
deployments and shared services (provisioning), its spend (money), its requests and its API keys
(gateway)."""

from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from approvals.access import may_author
from approvals.models import DeploymentRequest
from gateway.access import may_manage_keys
from gateway.overview import department_keys_overview
from money.budgets import budget_status
from org.access import get_department_for
from org.models import User
from provisioning.models import AccessGrant, ModelDeployment


def department_detail(request: HttpRequest, slug: str) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    department = get_department_for(user, slug, lead_only=True)
    memberships = department.memberships.select_related("user").order_by("-role", "user__email")
    deployments = (
        ModelDeployment.objects.live()
        .filter(department=department, scope=ModelDeployment.Scope.DEDICATED)
        .order_by("display_name")
    )
    grants = (
        AccessGrant.objects.filter(department=department)
        .exclude(deployment__state=ModelDeployment.State.DECOMMISSIONED)
        .select_related("deployment", "deployment__department")
        .order_by("deployment__display_name")
    )
    open_requests = list(
        DeploymentRequest.objects.filter(department=department)
        .filter(Q(state__in=DeploymentRequest.State.open()))
        .select_related("requester", "target")
        .order_by("-created_at")
    )
    api_keys = department_keys_overview(
        department=department,
        may_manage=may_manage_keys(user, department),
        approval_urls={
            req.api_key_id: reverse("approvals:request_detail", args=[req.pk])
            for req in open_requests
            if req.api_key_id is not None
        },
    )
    return render(
        request,
        "portal/department_detail.html",
        {
            "department": department,
            "memberships": memberships,
            "deployments": deployments,
            "grants": grants,
            "open_requests": open_requests,
            "api_keys": api_keys,
            "budget": budget_status(department=department),
            "may_request": may_author(user, department),
        },
    )
