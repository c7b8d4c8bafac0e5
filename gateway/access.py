"""Who may manage a department's API keys: the one place the key pages and services ask.

A department's leads and platform admins manage its keys. Finance approvers see the list on the
department page but change nothing; members never reach the department page at all."""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from gateway.models import ApiKey
from org.access import get_department_for
from org.models import Department, Membership, User

# The largest id a database column holds: a longer number in a URL names no key.
LARGEST_ID = 2**63 - 1
NOT_A_MANAGER = "API keys are managed by the department's leads and platform admins."


def may_manage_keys(user: User, department: Department) -> bool:
    if user.is_platform_admin:
        return True
    return any(
        m.department_id == department.pk and m.role == Membership.Role.LEAD
        for m in user.memberships_with_departments
    )


def get_department_for_keys(user: User, slug: str) -> Department:
    """The department whose keys `user` manages: another department is a 404, a member or a
    finance approver gets a 403."""
    department = get_department_for(user, slug, lead_only=True)
    if not may_manage_keys(user, department):
        raise PermissionDenied(NOT_A_MANAGER)
    return department


def get_key_for(user: User, slug: str, pk: int) -> ApiKey:
    """The key `pk` of department `slug`, for someone who manages that department's keys; a key
    of another department does not exist (404)."""
    return _key_of(get_department_for_keys(user, slug), pk)


def get_key_shown_to(user: User, slug: str, pk: int) -> ApiKey:
    """The key `pk` of department `slug` to read, for whoever may open the department page where
    keys are listed (its leads, platform admins and finance approvers); a member gets a 403."""
    return _key_of(get_department_for(user, slug, lead_only=True), pk)


def _key_of(department: Department, pk: int) -> ApiKey:
    if pk > LARGEST_ID:
        raise Http404("No such key.")
    try:
        return (
            ApiKey.objects.select_related("department", "replaces")
            .prefetch_related("deployments")
            .get(department=department, pk=pk)
        )
    except ApiKey.DoesNotExist:
        raise Http404("No such key.") from None
