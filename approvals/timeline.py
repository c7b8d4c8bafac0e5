"""A request's story, oldest first: its audit trail, the approvals still waiting and each step of
the provisioning run it started."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from approvals.models import ApprovalStep, DeploymentRequest
from approvals.rounds import describe_changes, describe_edit
from audit.services import audit_trail
from provisioning.models import ProvisioningOperation


@dataclass(frozen=True)
class TimelineEntry:
    title: str
    status: str  # done | waiting | running | failed
    at: datetime | None = None
    actor: str = ""
    detail: str = ""
    duration_seconds: float | None = None
    # An edit's changes, or for a decision who wrote what in the round it decided.
    changes: tuple[str, ...] = ()
    round_edits: tuple[str, ...] = ()


_TITLES = {
    "request.created": "Created",
    "request.edited": "Edited",
    "request.submitted": "Submitted for approval",
    "request.auto_approved": "Approved by policy",
    "request.step_approved": "Approved",
    "request.rejected": "Rejected",
    "request.changes_requested": "Sent back for changes",
    "request.provisioning": "Handed to provisioning",
    "request.completed": "Completed",
    "request.failed": "Failed",
    "request.cancelled": "Cancelled",
    "request.retried": "Retry started",
    "request.expiry_warned": "Expiry warning sent",
    "request.reassigned": "Data owner changed",
    "request.owner_left": "Data owner left",
}
_DECISIONS = {
    "request.step_approved",
    "request.auto_approved",
    "request.rejected",
    "request.changes_requested",
}
_STATUS = {"request.failed": "failed", "request.rejected": "failed", "request.cancelled": "failed"}
_STEP_KINDS = dict(ApprovalStep.Kind.choices)


def request_timeline(request: DeploymentRequest) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    for event in audit_trail(request):
        if event.verb not in _TITLES:
            continue
        title = _TITLES[event.verb]
        if event.verb == "request.step_approved" and event.after:
            title = f"Approved ({_STEP_KINDS.get(event.after.get('step', ''), 'approver').lower()})"
        if event.verb == "request.submitted" and event.after and event.after.get("round", 1) > 1:
            title = "Resubmitted for approval"
        entries.append(
            TimelineEntry(
                title=title,
                status=_STATUS.get(event.verb, "done"),
                at=event.created_at,
                actor=event.actor.display_name if event.actor else "Switchyard",
                detail=event.note,
                changes=_changes(event.verb, event.after or {}),
                round_edits=_round_edits(event.verb, event.after or {}),
            )
        )
        if event.verb == "request.provisioning" and event.after:
            entries.extend(_operations(request, event.after.get("provisioning_run")))
    if request.state == DeploymentRequest.State.SUBMITTED:
        for step in request.steps.filter(
            round=request.round, state=ApprovalStep.State.PENDING
        ).select_related("assignee"):
            entries.append(
                TimelineEntry(
                    title=f"Waiting for {step.assignee.display_name} (data owner)"
                    if step.assignee is not None
                    else f"Waiting for a {step.get_kind_display().lower()}",
                    status="waiting",
                    detail=step.reason,
                )
            )
    return _ordered(entries)


def _changes(verb: str, after: dict[str, Any]) -> tuple[str, ...]:
    return tuple(describe_changes(after.get("changes") or [])) if verb == "request.edited" else ()


def _round_edits(verb: str, after: dict[str, Any]) -> tuple[str, ...]:
    """Who wrote what in the round a decision decided, as the decision recorded it."""
    if verb not in _DECISIONS:
        return ()
    return tuple(describe_edit(record) for record in after.get("edits") or [])


def _operations(request: DeploymentRequest, run: int | None) -> list[TimelineEntry]:
    if request.deployment_id is None or run is None:
        return []
    operations = ProvisioningOperation.objects.filter(deployment_id=request.deployment_id, run=run)
    status = {
        ProvisioningOperation.Status.SUCCEEDED: "done",
        ProvisioningOperation.Status.FAILED: "failed",
        ProvisioningOperation.Status.WAITING: "running",
        ProvisioningOperation.Status.RUNNING: "running",
    }
    return [
        TimelineEntry(
            title=operation.get_step_display(),
            status=status[ProvisioningOperation.Status(operation.status)],
            at=operation.started_at,
            actor="Provisioning",
            detail=operation.error
            or (f"Attempt {operation.attempt}" if operation.attempt > 1 else operation.get_status_display()),
            duration_seconds=operation.duration_seconds,
        )
        for operation in operations
    ]


def _ordered(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    dated = sorted((entry for entry in entries if entry.at is not None), key=lambda entry: entry.at)  # type: ignore[arg-type, return-value]
    return dated + [entry for entry in entries if entry.at is None]
