"""Who may see which request: the one place the request pages ask."""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from approvals.models import DeploymentRequest
from org.models import User


def require_request_role(user: User) -> None:
    if not (user.sees_all_departments or user.is_lead):
        raise PermissionDenied("Requests are for department leads, platform admins and finance approvers.")


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
