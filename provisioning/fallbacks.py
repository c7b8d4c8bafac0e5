"""Which deployments may take a deployment's calls when Azure answers 429 or 503 before the first
byte, and in which order (`Fallback` rows, set by platform admins).

A fallback serves the primary's callers as if it were the primary, so it must be the same model
(a call the primary accepted works on it), process prompts no further afield than the primary's
data-zone geography allows, be cleared for the primary's data, stay on a private network when
the primary does, and be usable by every department that may use the primary, so that who pays
stays clear: the calling department pays, on the deployment that served (its own dedicated one,
or its share of a shared one).

The gateway and the chat ask `fallback_chain` on every call whose primary is busy: one query,
remembered in the process until a deployment, grant or fallback changes (`base.remembered`).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.db.models.signals import post_delete, post_save

from audit.services import audit_record
from base.remembered import Remembered, current_version, version_changed
from org.models import Department, User
from provisioning.access import deployments_visible_to
from provisioning.catalog import region_data_zone, region_label
from provisioning.models import (
    AccessGrant,
    CatalogEntry,
    DataClassification,
    Fallback,
    ModelDeployment,
    NetworkMode,
)

Sku = ModelDeployment.Sku
State = ModelDeployment.State
Scope = ModelDeployment.Scope

# Each fallback tried adds a round trip before the caller's first byte; three is plenty.
MAX_FALLBACKS = 3
GLOBAL_SKUS = frozenset({Sku.GLOBAL_STANDARD, Sku.GLOBAL_PROVISIONED})
DATA_ZONE_SKUS = frozenset({Sku.DATA_ZONE_STANDARD, Sku.DATA_ZONE_PROVISIONED})
CLASSIFICATION_RANK = {value: rank for rank, value in enumerate(DataClassification.values)}


class FallbackRefused(Exception):
    """A fallback the rules do not allow; the message names the rule, for an admin to read."""


# Where prompts are processed --------------------------------------------------------------------


@dataclass(frozen=True)
class Area:
    """Where Azure may process a deployment's prompts: anywhere (Global SKUs), anywhere in one
    data zone (Data Zone SKUs), or in one region (regional SKUs)."""

    kind: str  # "global", "zone" or "region"
    name: str = ""
    zone: str | None = None  # the data zone a region belongs to

    @property
    def label(self) -> str:
        if self.kind == "global":
            return "anywhere in the world (Global)"
        if self.kind == "zone":
            return f"in the {self.name} data zone"
        return f"in {region_label(self.name)}"

    def holds(self, other: "Area") -> bool:
        """Whether every place `other` may process prompts lies within this area."""
        if self.kind == "global":
            return True
        if self.kind == "zone":
            return other.name == self.name if other.kind == "zone" else other.zone == self.name
        return other.kind == "region" and other.name == self.name


def processing_area(deployment: ModelDeployment) -> Area:
    zone = region_data_zone(deployment.region)
    if deployment.sku in GLOBAL_SKUS:
        return Area("global")
    if deployment.sku in DATA_ZONE_SKUS and zone:
        return Area("zone", zone)
    return Area("region", deployment.region, zone)


def failover_boundary(deployment: ModelDeployment) -> Area:
    """Where the deployment's fallbacks may process its prompts: its data zone (a region outside
    every data zone keeps them in the region), or anywhere for a Global deployment, whose
    callers already accept that."""
    if deployment.sku in GLOBAL_SKUS:
        return Area("global")
    zone = region_data_zone(deployment.region)
    return Area("zone", zone) if zone else Area("region", deployment.region)


# The rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payers:
    """The departments that may use a deployment, and so pay for what it serves them."""

    dedicated_to: int | None
    granted: frozenset[int]

    @classmethod
    def of(cls, deployment: ModelDeployment) -> "Payers":
        if deployment.scope == Scope.DEDICATED:
            return cls(deployment.department_id, frozenset())
        return cls(None, frozenset(deployment.grants.values_list("department_id", flat=True)))

    def may_use(self, department_id: int) -> bool:
        return department_id == self.dedicated_to or department_id in self.granted


def static_refusal(primary: ModelDeployment, candidate: ModelDeployment) -> str | None:
    """The first rule, of those the two rows alone decide, that `candidate` breaks as a fallback
    of `primary`; None when it breaks none."""
    if candidate.pk == primary.pk:
        return "Another deployment: a deployment cannot be its own fallback."
    if candidate.model_name != primary.model_name:
        return (
            f"Same model: {candidate.display_name} runs {candidate.model_name}, and callers of "
            f"{primary.display_name} ask for {primary.model_name}."
        )
    boundary, area = failover_boundary(primary), processing_area(candidate)
    if not boundary.holds(area):
        if area.kind == "global":
            return (
                f"Same data zone: {candidate.display_name} is a Global deployment, which may process "
                f"prompts anywhere in the world; only a Global deployment may fall back to one."
            )
        return (
            f"Same data zone: {candidate.display_name} processes prompts {area.label}, and "
            f"{primary.display_name}'s must stay {boundary.label}."
        )
    return _data_refusal(primary, candidate)


def _data_refusal(primary: ModelDeployment, candidate: ModelDeployment) -> str | None:
    wanted = CLASSIFICATION_RANK.get(primary.data_classification, 0)
    if CLASSIFICATION_RANK.get(candidate.data_classification, 0) < wanted:
        label = primary.get_data_classification_display().lower()
        if primary.data_classification == DataClassification.RESTRICTED:
            return (
                f"Same classification: {primary.display_name} holds restricted data, and "
                f"{candidate.display_name} is not classified restricted."
            )
        return (
            f"Classification: {primary.display_name}'s callers may send {label} data, and "
            f"{candidate.display_name} is cleared for "
            f"{candidate.get_data_classification_display().lower()} data only."
        )
    if primary.network_mode == NetworkMode.PRIVATE and candidate.network_mode != NetworkMode.PRIVATE:
        return (
            f"Private network: {primary.display_name} is reachable on a private network only, and "
            f"{candidate.display_name} has a public endpoint."
        )
    return None


def payers_refusal(primary: ModelDeployment, primary_payers: Payers, candidate: Payers) -> str | None:
    """Every department that may use the primary may use the fallback, so each pays for what the
    fallback serves it as it would on the primary."""
    if primary.scope == Scope.DEDICATED:
        if candidate.may_use(primary.department_id):
            return None
        return (
            f"Who pays: {primary.department.name} pays for {primary.display_name}'s calls, so its "
            f"fallback must be one of {primary.department.name}'s own deployments or a shared service "
            f"granted to it."
        )
    if candidate.dedicated_to is not None:
        return (
            f"Who pays: {primary.display_name} is a shared service, so its fallback must be one too "
            f"(a dedicated deployment would bill one department for everyone's calls)."
        )
    missing = primary_payers.granted - candidate.granted
    if missing:
        names = ", ".join(Department.objects.filter(pk__in=missing).values_list("name", flat=True))
        return (
            f"Who pays: {names} use{'s' if len(missing) == 1 else ''} {primary.display_name} but "
            f"{'has' if len(missing) == 1 else 'have'} no grant on the fallback, so nobody would pay "
            f"for what it serves {'it' if len(missing) == 1 else 'them'}."
        )
    return None


def _version_refusal(primary: ModelDeployment, candidate: ModelDeployment) -> str | None:
    """Another version of the model serves a call only if it reads and writes at least as many
    tokens as the primary's (admission checked `max_tokens` against those), and never for an
    embeddings model (vectors from two versions cannot be compared). The synced catalog says."""
    if candidate.model_version == primary.model_version:
        return None
    limits = {
        version: (context, output)
        for version, context, output in CatalogEntry.objects.filter(
            model_name=primary.model_name,
            model_version__in=[primary.model_version, candidate.model_version],
            max_context_tokens__isnull=False,
        ).values_list("model_version", "max_context_tokens", "max_output_tokens")
    }
    rule = (
        f"Same model version: {candidate.display_name} runs {candidate.model_name} {candidate.model_version}"
    )
    wanted, offered = limits.get(primary.model_version), limits.get(candidate.model_version)
    if wanted is None or offered is None:
        return (
            f"{rule}, and the synced catalog does not say yet what each version can take; until it "
            f"does, a fallback runs {primary.model_version} like {primary.display_name}."
        )
    (wanted_context, wanted_output), (offered_context, offered_output) = wanted, offered
    if wanted_output is None or offered_output is None:
        return f"{rule}: an embeddings model's vectors from two versions cannot be compared."
    if (offered_context or 0) < (wanted_context or 0) or offered_output < wanted_output:
        return (
            f"{rule}, which cannot take every call {primary.display_name} ({primary.model_version}) accepts."
        )
    return None


def fallback_refusal(primary: ModelDeployment, candidate: ModelDeployment) -> str | None:
    """Why `candidate` may not be a fallback of `primary` (the first rule it breaks), or None."""
    refusal = static_refusal(primary, candidate)
    if refusal:
        return refusal
    if candidate.state not in {State.REQUESTED, State.PROVISIONING, State.ACTIVE}:
        return f"Live: {candidate.display_name} is {candidate.get_state_display().lower()}."
    return payers_refusal(primary, Payers.of(primary), Payers.of(candidate)) or _version_refusal(
        primary, candidate
    )


@dataclass(frozen=True)
class Candidate:
    deployment: ModelDeployment
    refusal: str | None

    @property
    def eligible(self) -> bool:
        return self.refusal is None


def fallback_candidates(primary: ModelDeployment) -> list[Candidate]:
    """Every live deployment of the same model an admin might pick, each with the rule it
    breaks (if any): eligible ones first, then by name."""
    others = (
        ModelDeployment.objects.live()
        .filter(model_name=primary.model_name)
        .exclude(pk=primary.pk)
        .exclude(state=State.FAILED)
        .select_related("department")
    )
    candidates = [Candidate(other, fallback_refusal(primary, other)) for other in others]
    return sorted(candidates, key=lambda c: (not c.eligible, c.deployment.display_name, c.deployment.pk))


# Reading the chain at run time -------------------------------------------------------------------

FALLBACKS_VERSION_KEY = "provisioning:fallbacks-version"
_chains: Remembered[list[ModelDeployment]] = Remembered(seconds=60, size=2000)


def fallbacks_changed(**_signal: object) -> None:
    """A receiver for saves and deletes that can change a chain (deployments, grants, links)."""
    version_changed(FALLBACKS_VERSION_KEY)


def connect_receivers() -> None:
    for model in (ModelDeployment, AccessGrant, Fallback):
        for signal in (post_save, post_delete):
            signal.connect(fallbacks_changed, sender=model, dispatch_uid=f"fallbacks-{model.__name__}")


def fallback_chain(deployment: ModelDeployment) -> list[ModelDeployment]:
    """The active fallbacks the gateway and the chat may try for `deployment`, in order, each
    still meeting the rules (a grant or a classification may have changed since an admin set
    it). One query (fallbacks with their accounts), remembered in the process until a change."""
    version = current_version(FALLBACKS_VERSION_KEY)
    chain = _chains.get(deployment.pk, version=version)
    if chain is None:
        chain = _read_chain(deployment)
        _chains.set(deployment.pk, chain, version=version)
    return list(chain)


def _read_chain(primary: ModelDeployment) -> list[ModelDeployment]:
    granted_on_fallback = AccessGrant.objects.filter(
        deployment=OuterRef(OuterRef("fallback")), department=OuterRef("department")
    )
    links = (
        Fallback.objects.filter(deployment_id=primary.pk, fallback__state=State.ACTIVE)
        .select_related("fallback__account", "fallback__department", "fallback__landing_zone")
        .annotate(
            primary_department_granted=Exists(
                AccessGrant.objects.filter(
                    deployment=OuterRef("fallback"), department_id=primary.department_id
                )
            ),
            primary_user_not_granted=Exists(
                AccessGrant.objects.filter(deployment_id=primary.pk).filter(~Exists(granted_on_fallback))
            ),
        )
        .order_by("position", "pk")
    )
    chain = []
    for link in links:
        fallback = link.fallback
        if static_refusal(primary, fallback) is not None:
            continue
        if primary.scope == Scope.DEDICATED:
            pays = fallback.department_id == primary.department_id
            pays = pays if fallback.scope == Scope.DEDICATED else link.primary_department_granted
        else:
            pays = fallback.scope == Scope.SHARED and not link.primary_user_not_granted
        if pays:
            chain.append(fallback)
    return chain


def fallbacks_of(deployment: ModelDeployment) -> list[ModelDeployment]:
    """The fallbacks as set, in order, whatever their state (the deployment page lists them)."""
    return [
        link.fallback
        for link in Fallback.objects.filter(deployment=deployment)
        .select_related("fallback__department")
        .order_by("position", "pk")
    ]


@dataclass(frozen=True)
class FallbackRow:
    """A fallback as the deployment page lists it: whether the gateway tries it now, and why
    not; `visible` when the reader may open it."""

    deployment: ModelDeployment
    tried: bool
    visible: bool
    note: str = ""


def fallback_rows(deployment: ModelDeployment, *, seen_by: User) -> list[FallbackRow]:
    """The fallbacks as set, in order, each with whether the gateway tries it now."""
    fallbacks = fallbacks_of(deployment)
    tried = {fallback.pk for fallback in fallback_chain(deployment)}
    visible = set(
        deployments_visible_to(seen_by).filter(pk__in=[f.pk for f in fallbacks]).values_list("pk", flat=True)
    )
    rows = []
    for fallback in fallbacks:
        note = ""
        if fallback.pk not in tried:
            note = (
                f"Not tried while it is {fallback.get_state_display().lower()}."
                if fallback.state != State.ACTIVE
                else f"Not tried: {fallback_refusal(deployment, fallback) or 'it no longer meets the rules.'}"
            )
        rows.append(FallbackRow(fallback, fallback.pk in tried, fallback.pk in visible, note))
    return rows


# Setting the chain -------------------------------------------------------------------------------


def fallbacks_set(
    *, deployment: ModelDeployment, fallbacks: Sequence[ModelDeployment], actor: User
) -> list[ModelDeployment]:
    """Make `fallbacks`, in this order, the deployment's fallbacks (an empty list removes them).
    Refuses, naming the rule, any that is not allowed; nothing changes then."""
    if not actor.is_platform_admin:
        raise FallbackRefused("Only platform admins set fallbacks.")
    if len(fallbacks) > MAX_FALLBACKS:
        raise FallbackRefused(
            f"At most {MAX_FALLBACKS} fallbacks: each one tried adds a wait before the caller's first token."
        )
    if len({fallback.pk for fallback in fallbacks}) != len(fallbacks):
        raise FallbackRefused("Each fallback once: the same deployment is listed twice.")
    with transaction.atomic():
        primary = (
            ModelDeployment.objects.select_for_update(of=("self",))
            .select_related("department")
            .get(pk=deployment.pk)
        )
        if primary.state in {State.DECOMMISSIONING, State.DECOMMISSIONED}:
            raise FallbackRefused(f"{primary.display_name} is {primary.get_state_display().lower()}.")
        chosen = _fresh(fallbacks)
        for candidate in chosen:
            refusal = fallback_refusal(primary, candidate)
            if refusal:
                raise FallbackRefused(f"{candidate.display_name} cannot be a fallback. {refusal}")
        before = [fallback.gateway_name for fallback in fallbacks_of(primary)]
        after = [fallback.gateway_name for fallback in chosen]
        if before == after:
            return chosen
        _links_replace(primary, chosen)
        audit_record(
            actor=actor,
            verb="deployment.fallbacks_set",
            target=primary,
            department=primary.department,
            before={"fallbacks": before},
            after={"fallbacks": after},
        )
        transaction.on_commit(fallbacks_changed)
    return chosen


def _fresh(fallbacks: Sequence[ModelDeployment]) -> list[ModelDeployment]:
    """The chosen deployments as they are now (the rules weigh their current state)."""
    rows = ModelDeployment.objects.select_related("department").in_bulk([f.pk for f in fallbacks])
    missing = [fallback for fallback in fallbacks if fallback.pk not in rows]
    if missing:
        raise FallbackRefused(f"{missing[0].display_name} no longer exists.")
    return [rows[fallback.pk] for fallback in fallbacks]


def _links_replace(primary: ModelDeployment, chosen: list[ModelDeployment]) -> None:
    Fallback.objects.filter(deployment=primary).delete()
    Fallback.objects.bulk_create(
        Fallback(deployment=primary, fallback=fallback, position=position)
        for position, fallback in enumerate(chosen, start=1)
    )


def fallback_link(*, deployment: ModelDeployment, fallback: ModelDeployment, note: str) -> str | None:
    """Append `fallback` to the deployment's chain on Switchyard's own account (a spillover twin
    a request created), if the rules allow it and the chain has room. None once linked, else
    why not."""
    with transaction.atomic():
        primary = (
            ModelDeployment.objects.select_for_update(of=("self",))
            .select_related("department")
            .get(pk=deployment.pk)
        )
        current = fallbacks_of(primary)
        if fallback.pk in {f.pk for f in current}:
            return None
        if len(current) >= MAX_FALLBACKS:
            return (
                f"{primary.display_name} has {MAX_FALLBACKS} fallbacks already, the most it may have; "
                "a platform admin makes room on its page."
            )
        refusal = fallback_refusal(primary, fallback)
        if refusal is not None:
            return refusal
        Fallback.objects.create(deployment=primary, fallback=fallback, position=len(current) + 1)
        audit_record(
            actor=None,
            verb="deployment.fallbacks_set",
            target=primary,
            department=primary.department,
            before={"fallbacks": [f.gateway_name for f in current]},
            after={"fallbacks": [f.gateway_name for f in [*current, fallback]]},
            note=note,
        )
        transaction.on_commit(fallbacks_changed)
    return None
