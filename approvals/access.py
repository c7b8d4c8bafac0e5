"""Who may see, write and decide which request: the one place the request pages and the services
ask."""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from approvals.models import ApprovalStep, DeploymentRequest
from approvals.rounds import wrote_round
from org.models import Department, Membership, User

StepState = ApprovalStep.State


def require_request_role(user: User) -> None:
    if not (user.sees_all_departments or user.is_lead):
        raise PermissionDenied("Requests are for department leads, platform admins and finance approvers.")


def require_author_role(user: User) -> None:
    if not departments_for_author(user):
        raise PermissionDenied("Department leads and platform admins ask for deployments.")


def require_decide_role(user: User) -> None:
    if not (user.is_platform_admin or user.is_finance_approver):
        raise PermissionDenied("Only platform admins and finance approvers decide requests.")


def require_queue_role(user: User) -> None:
    if not (user.is_platform_admin or user.is_finance_approver):
        raise PermissionDenied("The approval queue is for platform admins and finance approvers.")


def require_retry_role(user: User) -> None:
    if not user.is_platform_admin:
        raise PermissionDenied("Only platform admins can retry a failed request.")


def require_change_role(user: User, request: DeploymentRequest) -> None:
    if not may_change(user, request):
        raise PermissionDenied("Only the department's leads and platform admins can change this request.")


def get_request_for(user: User, pk: int) -> DeploymentRequest:
    """The request `pk` as `user` may see it: another department's request does not exist (404)."""
    require_request_role(user)
    try:
        return (
            DeploymentRequest.objects.visible_to(user)
            .select_related("department", "requester", "target", "deployment")
            .get(pk=pk)
        )
    except DeploymentRequest.DoesNotExist:
        raise Http404("No such request.") from None


def may_author(user: User, department: Department) -> bool:
    """Leads ask for their department; platform admins may ask on its behalf."""
    if user.is_platform_admin:
        return True
    return any(
        m.department_id == department.pk and m.role == Membership.Role.LEAD
        for m in user.memberships_with_departments
    )


def may_change(user: User, request: DeploymentRequest) -> bool:
    """Who wrote a request, its department's leads and platform admins may edit, submit or
    cancel it."""
    return request.requester_id == user.pk or may_author(user, request.department)


def departments_for_author(user: User) -> list[Department]:
    """The departments `user` may ask for deployments for (`may_author`)."""
    if user.is_platform_admin:
        return list(Department.objects.order_by("name"))
    return [m.department for m in user.memberships_with_departments if m.role == Membership.Role.LEAD]


def next_step_for(request: DeploymentRequest, user: User) -> ApprovalStep | None:
    """The pending step of the current round `user` may decide, if any."""
    if request.state != DeploymentRequest.State.SUBMITTED or request.requester_id == user.pk:
        return None
    if wrote_round(request, user):
        return None  # four eyes: whoever wrote this round does not decide it
    steps = [step for step in request.steps.all() if step.round == request.round]
    if any(step.state == StepState.APPROVED and step.decided_by_id == user.pk for step in steps):
        return None  # four eyes: a second approval comes from someone else
    for step in steps:
        if step.state != StepState.PENDING:
            continue
        if step.kind == ApprovalStep.Kind.PLATFORM and user.is_platform_admin:
            return step
        if step.kind == ApprovalStep.Kind.FINANCE and user.is_finance_approver:
            return step
    return None


def actions_for(user: User, request: DeploymentRequest) -> list[str]:
    """What `user` may do with `request` now, as the request page offers it. The steps must be
    fetched (or prefetched) already for `next_step_for`."""
    actions = []
    if may_change(user, request):
        if request.can_be_edited():
            actions += ["edit", "submit"]
        if request.can_be_cancelled():
            actions.append("cancel")
    if next_step_for(request, user) is not None:
        actions += ["approve", "reject"]
        if request.kind != DeploymentRequest.Kind.API_KEY:
            actions.append("send_back")
    if user.is_platform_admin and request.can_be_retried():
        actions.append("retry")
    return actions
