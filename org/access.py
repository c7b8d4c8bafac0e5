from django.core.exceptions import PermissionDenied
from django.http import Http404

from org.models import Department, DepartmentQuerySet, Membership, User


def get_department_for(user: User, slug: str, *, lead_only: bool = False) -> Department:
    """The department `slug` as `user` may see it.

    Platform admins and finance approvers see every department. Anyone else sees only their
    own: another department is a 404, as if it did not exist. With `lead_only`, a plain member
    of the department gets a 403.
    """
    if user.sees_all_departments:
        try:
            return Department.objects.get(slug=slug)
        except Department.DoesNotExist:
            raise Http404("No such department.") from None
    membership = next((m for m in user.memberships_with_departments if m.department.slug == slug), None)
    if membership is None:
        raise Http404("No such department.")
    if lead_only and membership.role != Membership.Role.LEAD:
        raise PermissionDenied("Only the department's leads can open this page.")
    return membership.department


def get_department_for_admin(user: User, slug: str) -> Department:
    """The department `slug` for a change only platform admins make (its budget and data policy):
    another department is a 404, as everywhere; anyone else who may open it gets a 403."""
    department = get_department_for(user, slug, lead_only=True)
    if not user.is_platform_admin:
        raise PermissionDenied("A department's budget and data policy are changed by platform admins.")
    return department


def departments_listed_for(user: User) -> DepartmentQuerySet:
    """The departments the department list shows `user`: every one to platform admins and finance
    approvers, the ones they lead to leads. Anyone else gets a 403."""
    if user.sees_all_departments:
        return Department.objects.all()
    if not user.is_lead:
        raise PermissionDenied("Department pages are for leads, platform admins and finance approvers.")
    # A subquery, not a join: counts annotated on the result still count every membership.
    led = Membership.objects.filter(user=user, role=Membership.Role.LEAD).values("department")
    return Department.objects.filter(pk__in=led)


def require_overview_role(user: User) -> None:
    """Company-wide pages are for platform admins and finance approvers."""
    if not user.sees_all_departments:
        raise PermissionDenied("This page is for platform admins and finance approvers.")


def require_audit_reader(user: User) -> None:
    """The audit trail is for platform admins and security approvers."""
    if not user.reads_audit_trail:
        raise PermissionDenied("The audit trail is for platform admins and security approvers.")


def require_platform_admin(user: User) -> None:
    """The operations page is for platform admins: they run the service it shows."""
    if not user.is_platform_admin:
        raise PermissionDenied("The operations page is for platform admins.")
