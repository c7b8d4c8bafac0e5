"""The "Grounded on" section of an assistant's page: which data sets it answers from, which wait
for their owner, and the lead's form to ask for another. The deployment page belongs to
provisioning, which knows nothing of data sets, so the section renders itself from here."""

from dataclasses import dataclass
from typing import Any

from django import template

from approvals.forms import GroundingAskForm
from approvals.models import ApprovalStep, DeploymentRequest
from grounding.grounding_services import (
    assistant_groundings,
    data_sets_for_grounding,
    may_ground,
    may_remove,
    owner_still_leads,
)
from grounding.models import Grounding
from org.models import User
from provisioning.models import ModelDeployment

register = template.Library()


@dataclass(frozen=True)
class GroundingRow:
    grounding: Grounding
    removable: bool
    request: DeploymentRequest | None  # the approval it waits for (or was decided by)
    waiting_for: str  # who decides now, as a sentence
    owner_left: bool


def _waiting_for(request: DeploymentRequest | None) -> str:
    if request is None or request.state != DeploymentRequest.State.SUBMITTED:
        return ""
    pending = [
        step for step in request.steps.all() if step.round == request.round and step.state == "pending"
    ]
    names = [
        step.assignee.display_name if step.assignee is not None else f"a {step.get_kind_display().lower()}"
        for step in pending
    ]
    return " and ".join(names)


@register.inclusion_tag("approvals/_groundings.html", takes_context=True)
def grounding_section(context: template.Context, deployment: ModelDeployment) -> dict[str, Any]:
    user: User = context["request"].user
    groundings = list(assistant_groundings(deployment))
    requests = {
        request.grounding_id: request
        for request in DeploymentRequest.objects.filter(grounding__in=groundings)
        .prefetch_related("steps__assignee")
        .order_by("pk")
    }
    rows = [
        GroundingRow(
            grounding=grounding,
            removable=may_remove(user, grounding),
            request=requests.get(grounding.pk),
            waiting_for=_waiting_for(requests.get(grounding.pk)),
            owner_left=grounding.state == Grounding.State.REQUESTED
            and not owner_still_leads(grounding.data_set),
        )
        for grounding in groundings
    ]
    asking = may_ground(user, deployment)
    available = data_sets_for_grounding(deployment, user) if asking else None
    form = GroundingAskForm(data_sets=available) if available is not None and available.exists() else None
    if form is not None:
        form.fields["data_set"].help_text = (
            "Any department's data set: a shared assistant may combine several, each approved by its owner."
            if deployment.scope == ModelDeployment.Scope.SHARED
            else f"{deployment.department.name}'s data sets: its assistant answers only from its own "
            "department's documents."
        )
    return {
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
        "user": user,
        "deployment": deployment,
        "active": [row for row in rows if row.grounding.state == Grounding.State.ACTIVE],
        "waiting": [row for row in rows if row.grounding.state == Grounding.State.REQUESTED],
        "may_ask": asking,
        "form": form,
        "owner_step": ApprovalStep.Kind.DATA_OWNER,
    }
