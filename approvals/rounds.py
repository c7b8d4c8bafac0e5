"""Who wrote each round of a request, and what they changed: the record that keeps four eyes on
every decision (nobody who created, edited or submitted a round decides it) and that each
decision keeps with it."""

from datetime import date
from decimal import Decimal
from typing import Any

from django.utils.text import capfirst

from approvals.models import DeploymentRequest, RequestEdit
from approvals.spec import RequestSpec
from org.models import User
from provisioning.models import ModelDeployment

Action = RequestEdit.Action
# Long texts are kept whole in the log and shortened where a page lists the changes.
SHOWN_TEXT = 80


def spec_changes(before: RequestSpec, after: RequestSpec) -> list[dict[str, str]]:
    """The fields that differ, each with its label and both values as the page shows them."""
    return [
        {
            "field": name,
            "label": _label(name),
            "before": _shown(getattr(before, name)),
            "after": _shown(getattr(after, name)),
        }
        for name in RequestSpec.field_names()
        if _shown(getattr(before, name)) != _shown(getattr(after, name))
    ]


def _label(name: str) -> str:
    field = DeploymentRequest._meta.get_field(name)
    return str(capfirst(getattr(field, "verbose_name", name)))


def _shown(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, ModelDeployment):
        return value.display_name
    return str(value)


def edit_record(*, request: DeploymentRequest, actor: User | None, action: str, changes: list[Any]) -> None:
    """Log an edit in the round it belongs to (a draft's or a sent-back request's edits belong to
    the round its next submission opens). The caller holds the request's lock."""
    RequestEdit.objects.create(
        request=request, round=request.editing_round, actor=actor, action=action, changes=changes
    )


def round_edits(request: DeploymentRequest) -> list[RequestEdit]:
    """The edits of the round being written or decided (a draft's: the round its submission
    opens), from a prefetch when there is one."""
    return [edit for edit in request.edits.all() if edit.round == request.editing_round]


def round_records(request: DeploymentRequest) -> list[dict[str, Any]]:
    """The round's edits as a decision keeps them."""
    return [edit.as_record() for edit in round_edits(request)]


def wrote_round(request: DeploymentRequest, user: User) -> str:
    """Why `user` may not decide the current round ("" when they may): they edited or submitted it."""
    actions = {edit.action for edit in round_edits(request) if edit.actor_id == user.pk}
    if actions - {Action.SUBMITTED}:
        return "You edited this round of the request, so another approver decides."
    if actions:
        return "You submitted this round of the request, so another approver decides."
    return ""


def describe_edit(record: dict[str, Any]) -> str:
    """One edit in a sentence: "Ada Admin changed capacity (50 → 20)", "Lena Lead submitted it"."""
    actor = record.get("actor") or "Switchyard"
    action = record.get("action")
    if action == Action.CREATED:
        return f"{actor} wrote it"
    if action == Action.SUBMITTED:
        return f"{actor} submitted it"
    changes = "; ".join(describe_changes(record.get("changes") or []))
    return f"{actor} changed {changes}" if changes else f"{actor} edited it"


def describe_changes(changes: list[dict[str, str]]) -> list[str]:
    """Each change as "Capacity: 50 → 20", long texts shortened."""
    return [
        f"{change.get('label', change.get('field', ''))}: "
        f"{_short(change.get('before', ''))} → {_short(change.get('after', ''))}"
        for change in changes
    ]


def _short(value: str) -> str:
    if not value:
        return "(empty)"
    return value if len(value) <= SHOWN_TEXT else value[: SHOWN_TEXT - 1] + "…"
