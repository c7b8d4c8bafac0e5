"""Who may see which deployment: the one place the deployment pages ask."""

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from org.models import Membership, User
from provisioning.models import AccessGrant, LeftoverResource, ModelDeployment, ModelDeploymentQuerySet


def led_department_ids(user: User) -> list[int]:
    return [m.department_id for m in user.memberships_with_departments if m.role == Membership.Role.LEAD]


def deployments_visible_to(user: User) -> ModelDeploymentQuerySet:
    """Every deployment `user` may look at on the deployment pages.

    Platform admins and finance approvers see all of them. A lead sees the deployments of the
    departments they lead, plus the shared ones granted to those departments. Anyone else uses
    deployments through the chat and gets a 403 here.
    """
    if user.sees_all_departments:
        return ModelDeployment.objects.all()
    led = led_department_ids(user)
    if not led:
        raise PermissionDenied(
            "Deployment pages are for department leads, platform admins and finance approvers."
        )
    # A subquery rather than a join on grants, so a deployment granted to two of the lead's
    # departments is still one row.
    granted = AccessGrant.objects.filter(department_id__in=led).values("deployment_id")
    return ModelDeployment.objects.filter(
        Q(department_id__in=led) | Q(scope=ModelDeployment.Scope.SHARED, pk__in=granted)
    )


def get_deployment_for(user: User, pk: int) -> ModelDeployment:
    """The deployment `pk` as `user` may see it: outside their reach it does not exist (404)."""
    try:
        return deployments_visible_to(user).select_related("department", "landing_zone", "account").get(pk=pk)
    except ModelDeployment.DoesNotExist:
        raise Http404("No such deployment.") from None


def grants_visible_to(user: User) -> QuerySet[AccessGrant]:
    """The shared-service grants `user` may look at: every one for platform admins and finance
    approvers, those of the departments they lead for a lead (a lead sees their own share of a
    shared service, not the other departments' caps). Anyone else gets a 403."""
    if user.sees_all_departments:
        return AccessGrant.objects.all()
    led = led_department_ids(user)
    if not led:
        raise PermissionDenied(
            "Shared-service grants are for department leads, platform admins and finance approvers."
        )
    return AccessGrant.objects.filter(department_id__in=led)


def get_grant_for(user: User, pk: int) -> AccessGrant:
    """The grant `pk` as `user` may see it: another department's grant does not exist (404)."""
    try:
        return grants_visible_to(user).select_related("department", "deployment").get(pk=pk)
    except AccessGrant.DoesNotExist:
        raise Http404("No such grant.") from None


def leftovers_visible_to(user: User) -> QuerySet[LeftoverResource]:
    """What is left over in Azure, for those who see every department (the estate as a whole).
    A lead sees a leftover of their own deployment on that deployment's page."""
    if not user.sees_all_departments:
        return LeftoverResource.objects.none()
    return LeftoverResource.objects.select_related("landing_zone", "deployment")


def get_leftover_for_removal(user: User, pk: int) -> LeftoverResource:
    if not user.is_platform_admin:
        raise PermissionDenied("Only platform admins remove what is left over in Azure.")
    return get_object_or_404(LeftoverResource, pk=pk)


def get_deployment_for_admin(user: User, pk: int) -> ModelDeployment:
    """The deployment `pk` for a change only platform admins make (its fallbacks, its access
    mode): outside the user's reach a 404, within it but without the role a 403."""
    deployment = get_deployment_for(user, pk)
    if not user.is_platform_admin:
        raise PermissionDenied("Only platform admins change a deployment's fallbacks and access mode.")
    return deployment
