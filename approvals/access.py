"""Who may see, write and decide which request: the one place the request pages and the services
ask."""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from approvals.models import ApprovalStep, DeploymentRequest
from approvals.rounds import wrote_round
from grounding.grounding_services import may_remove
from grounding.models import Grounding
from org.models import Department, Membership, User

StepState = ApprovalStep.State


def require_request_role(user: User) -> None:
    if not (user.sees_all_departments or user.is_lead or _has_assigned_steps(user)):
        raise PermissionDenied("Requests are for department leads, platform admins and finance approvers.")


def require_author_role(user: User) -> None:
    if not departments_for_author(user):
        raise PermissionDenied("Department leads and platform admins ask for deployments.")


def require_decide_role(user: User, request: DeploymentRequest | None = None) -> None:
    if user.is_platform_admin or user.is_finance_approver:
        return
    if (
        request is not None
        and request.steps.filter(kind=ApprovalStep.Kind.DATA_OWNER, assignee=user).exists()
    ):
        return  # the data set's owner decides the groundings of their data set
    raise PermissionDenied("Only platform admins and finance approvers decide requests.")


def require_queue_role(user: User) -> None:
    if not (user.is_platform_admin or user.is_finance_approver or _has_assigned_steps(user)):
        raise PermissionDenied("The approval queue is for platform admins and finance approvers.")


def _has_assigned_steps(user: User) -> bool:
    """Whether a request ever asked `user` by name (a data set's owner): they see and decide it."""
    return ApprovalStep.objects.filter(assignee=user).exists()


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
        if step.kind == ApprovalStep.Kind.DATA_OWNER:
            left = owner_left(request, step)
            if (step.assignee_id == user.pk and not left) or (user.is_platform_admin and left):
                return step
    return None


def owner_left(request: DeploymentRequest, step: ApprovalStep) -> bool:
    """A data owner's step whose owner no longer leads the data set's department (or left the
    company): platform admins decide it in their place, and the pages say so."""
    if step.kind != ApprovalStep.Kind.DATA_OWNER or step.assignee is None or request.grounding is None:
        return False
    assignee = step.assignee
    return not (
        assignee.is_active
        and Membership.objects.filter(
            user=assignee, department_id=request.grounding.data_set.department_id, role=Membership.Role.LEAD
        ).exists()
    )


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
        if request.kind not in {DeploymentRequest.Kind.API_KEY, DeploymentRequest.Kind.GROUNDING}:
            actions.append("send_back")
    if user.is_platform_admin and request.can_be_retried():
        actions.append("retry")
    return actions


def get_grounding_for_removal(user: User, pk: int) -> Grounding:
    """The grounding `pk` for `user` to take off its assistant: outside both departments it does
    not exist (404); a member of either without the role gets a 403."""
    grounding = (
        Grounding.objects.select_related("deployment__department", "data_set__department", "data_set__owner")
        .filter(pk=pk)
        .first()
    )
    if grounding is None:
        raise Http404("No such grounding.")
    if may_remove(user, grounding):
        return grounding
    departments = {grounding.deployment.department_id, grounding.data_set.department_id}
    if user.sees_all_departments or any(
        m.department_id in departments for m in user.memberships_with_departments
    ):
        raise PermissionDenied(
            "Only the assistant's department leads, the data set's owner and platform admins "
            "remove a data set."
        )
    raise Http404("No such grounding.")
