"""Which assistants are grounded on which data sets: a lead of the assistant's department asks, the
data set's owner (and the approvers its classification needs) decide in the requests app, and
anyone responsible for either side may remove it again.

Grounding lies below the requests app, so asking announces the grounding (`grounding_needs_approval`)
and the requests app opens the approval in the same transaction; it calls `grounding_activate` or
`grounding_reject` once the approvers have decided. Retrieval reads the active groundings at every
turn, so each change here takes effect on the assistant's next answer.

Each change locks the grounding and writes an audit event."""

from django.db import transaction
from django.db.models import QuerySet
from django.dispatch import Signal
from django.utils import timezone

from audit.services import audit_record
from grounding.models import DataSet, Grounding
from org.models import Membership, User
from provisioning.models import ModelDeployment

PURPOSE_LENGTH = 4000

# Sent inside the transaction that asks for a grounding: a receiver opens the approval that decides
# it and returns its id, or raises `GroundingRefused` to undo the grounding. Arguments: grounding,
# actor, purpose.
grounding_needs_approval = Signal()

# Sent inside the transaction that removes a grounding still waiting for approval: nothing is left
# to decide. Arguments: grounding, actor.
grounding_withdrawn = Signal()

# Assistants that may be grounded: those running or on their way.
GROUNDABLE_STATES = [
    ModelDeployment.State.REQUESTED,
    ModelDeployment.State.PROVISIONING,
    ModelDeployment.State.ACTIVE,
]


class GroundingRefused(Exception):
    """The grounding's state or the actor's role does not allow this; the message says why."""


# Who may do what -----------------------------------------------------------------------------------


def _leads(user: User, department_id: int) -> bool:
    return any(
        m.department_id == department_id and m.role == Membership.Role.LEAD
        for m in user.memberships_with_departments
    )


def may_ground(user: User, deployment: ModelDeployment) -> bool:
    """A lead of the assistant's department asks for its groundings; platform admins too (they run
    the shared assistants)."""
    return user.is_platform_admin or _leads(user, deployment.department_id)


def not_yours_to_ground(deployment: ModelDeployment) -> str:
    """What someone who may not ground the assistant is told."""
    return f"Only {deployment.department.name}'s leads and platform admins ground {deployment.display_name}."


def assistant_groundings(deployment: ModelDeployment) -> QuerySet[Grounding]:
    """The data sets the assistant answers from and those it waits for, by department and name
    (its page's "Grounded on" section, and the API)."""
    return (
        Grounding.objects.current()
        .filter(deployment=deployment)
        .select_related("data_set__department", "data_set__owner", "requested_by")
        .order_by("data_set__department__name", "data_set__name", "pk")
    )


def may_remove(user: User, grounding: Grounding) -> bool:
    """The assistant's side (its department's leads), the data's side (the data set's owner) and
    platform admins may each take a data set off an assistant."""
    return (
        may_ground(user, grounding.deployment)
        or grounding.data_set.owner_id == user.pk
        or user.is_platform_admin
    )


def data_sets_for_grounding(deployment: ModelDeployment, user: User) -> QuerySet[DataSet]:
    """The data sets `user` may ground `deployment` on, and that it is not grounded on or waiting
    for yet. A department's assistant uses its own department's data sets only; a shared assistant
    may combine data sets of several departments (each with its owner's approval)."""
    if not may_ground(user, deployment):
        return DataSet.objects.none()
    data_sets = DataSet.objects.select_related("department", "owner")
    if deployment.scope != ModelDeployment.Scope.SHARED:
        data_sets = data_sets.filter(department_id=deployment.department_id)
    taken = Grounding.objects.current().filter(deployment=deployment).values("data_set_id")
    return data_sets.exclude(pk__in=taken).order_by("department__name", "name")


def owner_still_leads(data_set: DataSet) -> bool:
    """Whether the data set's owner may still decide for it: an active lead of its department."""
    owner = data_set.owner
    return owner.is_active and _leads(owner, data_set.department_id)


def _lock(grounding: Grounding) -> Grounding:
    return (
        Grounding.objects.select_for_update(of=("self",))
        .select_related("deployment", "data_set__owner", "data_set__department")
        .get(pk=grounding.pk)
    )


def _snapshot(grounding: Grounding) -> dict[str, object]:
    return {
        "state": grounding.state,
        "deployment": grounding.deployment_id,
        "data_set": grounding.data_set_id,
        "data_classification": grounding.data_set.data_classification,
    }


# Asking, deciding, removing -----------------------------------------------------------------------


def grounding_request(
    *, deployment: ModelDeployment, data_set: DataSet, purpose: str, actor: User | None
) -> Grounding:
    """Ask for `deployment` to answer from `data_set`: a grounding waiting for approval, with the
    approval opened for it in the same transaction (the policy may approve it at once, and then it
    is active when this returns). `None` as actor is Switchyard itself (the demo, the command line)."""
    purpose = purpose.strip()
    if actor is not None and not may_ground(actor, deployment):
        raise GroundingRefused(not_yours_to_ground(deployment))
    if not purpose or len(purpose) > PURPOSE_LENGTH or "\x00" in purpose:
        raise GroundingRefused(
            f"Say in at most {PURPOSE_LENGTH:,} characters of plain text what the assistant answers "
            "from this data set: the data set's owner reads it."
        )
    if deployment.state not in GROUNDABLE_STATES:
        raise GroundingRefused(
            f"{deployment.display_name} is {deployment.get_state_display().lower()}: only an assistant "
            "that is running or being provisioned can be grounded."
        )
    if (
        deployment.scope != ModelDeployment.Scope.SHARED
        and data_set.department_id != deployment.department_id
    ):
        raise GroundingRefused(
            f"{deployment.display_name} belongs to {deployment.department.name}: it answers only from "
            f"{deployment.department.name}'s data sets, and {data_set.name} is "
            f"{data_set.department.name}'s."
        )
    with transaction.atomic():
        # The assistant's row is the lock two leads asking for the same data set queue on.
        ModelDeployment.objects.select_for_update().filter(pk=deployment.pk).first()
        existing = Grounding.objects.current().filter(deployment=deployment, data_set=data_set).first()
        if existing is not None:
            already = "is grounded on" if existing.state == Grounding.State.ACTIVE else "already waits for"
            raise GroundingRefused(f"{deployment.display_name} {already} {data_set.name}.")
        grounding = Grounding.objects.create(deployment=deployment, data_set=data_set, requested_by=actor)
        audit_record(
            actor=actor,
            verb="grounding.requested",
            target=grounding,
            department=deployment.department,
            after=_snapshot(grounding),
            note=purpose,
        )
        answers = grounding_needs_approval.send(
            sender=Grounding, grounding=grounding, actor=actor, purpose=purpose
        )
        if not answers:
            # Nobody would ever decide it: a grounding that can never start is not asked for at all.
            raise GroundingRefused("Grounding needs the data owner's approval, and no approvals run here.")
        grounding.refresh_from_db()
    return grounding


def grounding_activate(*, grounding: Grounding, actor: User | None, note: str = "") -> Grounding:
    """Approved: the assistant answers from the data set from its next turn on. Called by the
    requests app once every approval is given."""
    with transaction.atomic():
        locked = _lock(grounding)
        if locked.state == Grounding.State.ACTIVE:
            return locked
        if locked.state != Grounding.State.REQUESTED:
            raise GroundingRefused(
                f"{locked.deployment.display_name} on {locked.data_set.name} was "
                f"{locked.get_state_display().lower()} meanwhile: nothing was changed."
            )
        before = _snapshot(locked)
        locked.state = Grounding.State.ACTIVE
        locked.decided_at = timezone.now()
        locked.save(update_fields=["state", "decided_at"])
        audit_record(
            actor=actor,
            verb="grounding.activated",
            target=locked,
            department=locked.deployment.department,
            before=before,
            after=_snapshot(locked),
            note=note,
        )
    return locked


def grounding_reject(*, grounding: Grounding, actor: User | None, reason: str) -> Grounding:
    """Refused by an approver: the assistant never answers from the data set."""
    with transaction.atomic():
        locked = _lock(grounding)
        if locked.state != Grounding.State.REQUESTED:
            return locked
        before = _snapshot(locked)
        locked.state = Grounding.State.REJECTED
        locked.decided_at = timezone.now()
        locked.save(update_fields=["state", "decided_at"])
        audit_record(
            actor=actor,
            verb="grounding.rejected",
            target=locked,
            department=locked.deployment.department,
            before=before,
            after=_snapshot(locked),
            note=reason,
        )
    return locked


def grounding_remove(*, grounding: Grounding, actor: User | None, reason: str = "") -> Grounding:
    """Take the data set off the assistant at once (an active grounding), or withdraw the question
    (one still waiting, whose approval is then cancelled). The next turn no longer retrieves from it."""
    with transaction.atomic():
        locked = _lock(grounding)
        if actor is not None and not may_remove(actor, locked):
            raise GroundingRefused(
                f"Only {locked.deployment.department.name}'s leads, the data set's owner and platform "
                f"admins take {locked.data_set.name} off {locked.deployment.display_name}."
            )
        if locked.state not in Grounding.CURRENT:
            raise GroundingRefused(
                f"{locked.deployment.display_name} on {locked.data_set.name} is "
                f"{locked.get_state_display().lower()} already."
            )
        was_waiting = locked.state == Grounding.State.REQUESTED
        before = _snapshot(locked)
        locked.state = Grounding.State.REMOVED
        locked.removed_at = timezone.now()
        locked.save(update_fields=["state", "removed_at"])
        audit_record(
            actor=actor,
            verb="grounding.withdrawn" if was_waiting else "grounding.removed",
            target=locked,
            department=locked.deployment.department,
            before=before,
            after=_snapshot(locked),
            note=reason,
        )
        if was_waiting:
            grounding_withdrawn.send(sender=Grounding, grounding=locked, actor=actor)
    return locked
