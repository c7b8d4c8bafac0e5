"""Which deployment a call names, and whether its caller may call it: by gateway name, among the
deployments the caller's department may use (its dedicated ones and the shared ones granted to
it), narrowed to those the key names. Another department's deployment, one that does not exist
and one the key may not call get the same 404.

Read once and remembered in the process, under the gateway's version (`gateway.callers`), which
every change to deployments, accounts, grants, fallbacks and departments replaces."""

from dataclasses import dataclass

from base.remembered import Remembered
from calls.failover import Target
from gateway.callers import REMEMBER_SECONDS, Caller, callers_version
from gateway.errors import deployment_not_found
from grounding.models import Grounding
from provisioning.catalog import ModelLimits, model_limits
from provisioning.fallbacks import fallback_chain
from provisioning.models import ModelDeployment


@dataclass(frozen=True)
class Routed:
    """A deployment a call may go to, with what the call needs of it."""

    deployment: ModelDeployment
    fallbacks: tuple[ModelDeployment, ...]
    targets: tuple[Target, ...]  # the deployment, then its fallbacks
    limits: ModelLimits
    # Whether the assistant had active groundings when this was read: its calls are then admitted
    # on the database thread, where the data sets themselves are read at every call.
    grounded: bool = False


_routes: Remembered[Routed | None] = Remembered(seconds=REMEMBER_SECONDS, size=10_000)
_usable: Remembered[frozenset[int]] = Remembered(seconds=REMEMBER_SECONDS, size=10_000)


def usable_deployment_ids(department_id: int, *, version: str) -> frozenset[int]:
    """The active deployments the department may use: its dedicated ones, the shared ones granted."""
    usable = _usable.get(department_id, version=version)
    if usable is None:
        usable = frozenset(
            ModelDeployment.objects.filter(state=ModelDeployment.State.ACTIVE, account__isnull=False)
            .of_departments([department_id])
            .values_list("pk", flat=True)
        )
        _usable.set(department_id, usable, version=version)
    return usable


def may_call(caller: Caller, deployment_id: int, *, version: str) -> bool:
    if caller.deployment_ids is not None and deployment_id not in caller.deployment_ids:
        return False
    return deployment_id in usable_deployment_ids(caller.department.pk, version=version)


def deployment_for(caller: Caller, gateway_name: str, *, version: str | None = None) -> Routed:
    """The deployment `gateway_name` names, if the caller may call it; else a 404 that does not
    say whether it exists. `version`: the gateway's version, when the caller has just read it."""
    version = version or callers_version()
    routed = _routes.get(gateway_name, version=version)
    if routed is None:
        routed = _route(gateway_name)
        _routes.set(gateway_name, routed, version=version)
    if routed is None or not may_call(caller, routed.deployment.pk, version=version):
        raise deployment_not_found(gateway_name)
    return routed


def deployment_remembered(caller: Caller, gateway_name: str, *, version: str) -> Routed | None:
    """The deployment `gateway_name` names, without a query: when this process remembers it and
    what the caller's department may use under `version`, and the caller may call it. Else None,
    and `deployment_for` reads or refuses."""
    routed = _routes.get(gateway_name, version=version)
    if routed is None:
        return None
    if caller.deployment_ids is not None and routed.deployment.pk not in caller.deployment_ids:
        return None
    usable = _usable.get(caller.department.pk, version=version)
    if usable is None or routed.deployment.pk not in usable:
        return None
    return routed


def _route(gateway_name: str) -> Routed | None:
    deployment = (
        ModelDeployment.objects.select_related("account", "department")
        .filter(gateway_name=gateway_name, state=ModelDeployment.State.ACTIVE, account__isnull=False)
        .first()
    )
    if deployment is None:
        return None
    fallbacks = tuple(fallback_chain(deployment))
    return Routed(
        deployment=deployment,
        fallbacks=fallbacks,
        targets=tuple(Target.of(each) for each in (deployment, *fallbacks)),
        limits=model_limits(model_name=deployment.model_name, model_version=deployment.model_version),
        grounded=Grounding.objects.active().filter(deployment=deployment).exists(),
    )


def deployments_for(caller: Caller) -> list[ModelDeployment]:
    """Every deployment the caller may call, by gateway name."""
    usable = usable_deployment_ids(caller.department.pk, version=callers_version())
    if caller.deployment_ids is not None:
        usable = usable & caller.deployment_ids
    return list(
        ModelDeployment.objects.select_related("department").filter(pk__in=usable).order_by("gateway_name")
    )
