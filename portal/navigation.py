"""The navigation: the project-level view of every app's pages, fitted to the signed-in person."""

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from approvals.models import DeploymentRequest
from org.models import Membership, User


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    active: bool
    count: int = 0


def navigation(request: HttpRequest) -> dict[str, object]:
    """The navigation that fits the signed-in user's roles, with the current page marked."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "show_demo_signins": settings.SHOW_DEMO_SIGNINS}
    links = [("Home", reverse("home"))]
    memberships = user.memberships_with_departments
    if memberships:
        links.append(("Chat", reverse("chat:index")))
    led = [m.department for m in memberships if m.role == Membership.Role.LEAD]
    if user.sees_all_departments:
        links.append(("Departments", reverse("department_list")))
    elif len(led) == 1:
        links.append(("My department", reverse("department_detail", args=[led[0].slug])))
    elif led:
        links.append(("My departments", reverse("department_list")))
    if user.sees_all_departments or led:
        links.append(("Deployments", reverse("deployment_list")))
        links.append(("Requests", reverse("approvals:request_list")))
    if memberships or user.is_platform_admin:
        links.append(("Data sets", reverse("grounding:data_set_list")))
    counts = _waiting_counts(user, led_ids=[department.pk for department in led])
    if user.is_platform_admin or user.is_finance_approver or "Approvals" in counts:
        links.append(("Approvals", reverse("approvals:approval_queue")))
    if user.sees_all_departments:
        links.append(("Costs", reverse("reports:overview")))
    elif led:
        links.append(("Costs", reverse("reports:department", args=[led[0].slug])))
    if user.reads_audit_trail:
        links.append(("Audit trail", reverse("audit-trail:events")))
    if user.is_platform_admin:
        links.append(("Operations", reverse("operations:page")))
    path = request.path
    return {
        "nav_items": [
            NavItem(label, url, path == url or (url != "/" and path.startswith(url)), counts.get(label, 0))
            for label, url in links
        ]
    }


def _waiting_counts(user: User, *, led_ids: list[int]) -> dict[str, int]:
    """What waits for the signed-in person: approvals to give, requests sent back to them."""
    counts = {}
    if user.is_platform_admin or user.is_finance_approver:
        counts["Approvals"] = DeploymentRequest.objects.awaiting(user).count()
    elif led_ids and (owned := DeploymentRequest.objects.awaiting(user).count()):
        counts["Approvals"] = owned  # groundings of the data sets they own
    if led_ids:
        counts["Requests"] = DeploymentRequest.objects.filter(
            department_id__in=led_ids, state=DeploymentRequest.State.CHANGES_REQUESTED
        ).count()
    return counts
