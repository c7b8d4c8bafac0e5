"""Who may read which cost figures, beyond what `org.access` and `provisioning.access` decide:
the chargeback statements and the names on a shared deployment's split. The pages and the API
ask here alike."""

from django.http import Http404

from org.access import require_overview_role
from org.models import Department, User
from provisioning.access import led_department_ids


def get_cost_center_for(user: User, cost_center: str) -> str:
    """Admins and finance see every cost center; nobody else gets statements (403), and an
    unknown cost center does not exist (404)."""
    require_overview_role(user)
    if not Department.objects.filter(cost_center=cost_center).exists():
        raise Http404("No such cost center.")
    return cost_center


def named_departments_for(user: User) -> set[int] | None:
    """A lead reads their own departments' charges on a shared deployment by name, the rest as
    one line; admins and finance read every name (None)."""
    return None if user.sees_all_departments else set(led_department_ids(user))
