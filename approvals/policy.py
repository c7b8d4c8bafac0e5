"""The approval policy: which approvals a request needs, and why."""

from dataclasses import dataclass
from decimal import Decimal

from approvals.models import ApprovalPolicy, ApprovalStep, DeploymentRequest
from grounding.models import DataSet
from org.models import User
from provisioning.models import DataClassification, ModelDeployment

Kind = DeploymentRequest.Kind


@dataclass(frozen=True)
class PlannedStep:
    kind: str
    reason: str
    assignee: User | None = None  # the one person who decides it (a data set's owner)


def _money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def approval_plan(
    *, request: DeploymentRequest, policy: ApprovalPolicy, budget_left: Decimal
) -> list[PlannedStep]:
    """The approvals `request` needs, in order. A single automatic step means the policy
    approves it at once."""
    cost = request.estimated_monthly_cost
    restricted = request.data_classification == DataClassification.RESTRICTED

    second: list[str] = []
    if policy.finance_for_provisioned and request.is_provisioned_sku and request.kind != Kind.DECOMMISSION:
        second.append("it reserves provisioned throughput (PTU), paid by the hour whether used or not")
    if request.kind != Kind.DECOMMISSION and cost > policy.finance_cost_threshold:
        second.append(
            f"its estimated cost of {_money(cost)} a month is above the "
            f"{_money(policy.finance_cost_threshold)} threshold"
        )
    if policy.finance_for_restricted and restricted:
        second.append("it is for restricted data")

    automatic, why_not = _automatic(request=request, policy=policy, budget_left=budget_left)
    if automatic and not second:
        return [PlannedStep(ApprovalStep.Kind.AUTOMATIC, automatic)]

    steps = [PlannedStep(ApprovalStep.Kind.PLATFORM, _platform_reason(request, why_not, second))]
    if second:
        steps.append(
            PlannedStep(
                ApprovalStep.Kind.FINANCE, "A finance approver also decides because " + _and(second) + "."
            )
        )
    return steps


def _automatic(
    *, request: DeploymentRequest, policy: ApprovalPolicy, budget_left: Decimal
) -> tuple[str, str]:
    """(why the policy approves it, "") or ("", why it does not)."""
    cost = request.estimated_monthly_cost
    if request.data_classification == DataClassification.RESTRICTED:
        return "", "restricted data always needs a person to decide"
    if cost > budget_left:
        return (
            "",
            f"its estimate of {_money(cost)} a month is more than the {_money(budget_left)} "
            "left in the budget",
        )
    if request.kind == Kind.SHARED_ACCESS:
        if request.changes_grant:
            # A grant may carry a cap an admin chose: only a person changes it.
            return "", f"it {request.cap_change} on the department's existing grant"
        if policy.auto_approve_shared_access:
            return (
                "Access to a shared service for non-restricted data within the department's budget "
                "is approved by policy.",
                "",
            )
        return "", "the policy asks a person to approve access to shared services"
    if request.kind == Kind.DECOMMISSION:
        return "", "deleting a deployment cannot be undone"
    limit = policy.auto_approve_max_capacity
    if not limit:
        return "", "automatic approval is switched off"
    if request.sku not in (policy.auto_approve_skus or []):
        return "", f"{request.get_sku_display()} is not approved automatically"
    if (request.capacity or 0) > limit:
        return "", f"{request.capacity_label} is more than the {limit}K TPM approved automatically"
    return (
        f"{request.get_sku_display()} up to {limit}K TPM within the department's remaining budget "
        f"({_money(budget_left)}) is approved by policy.",
        "",
    )


def _platform_reason(request: DeploymentRequest, why_not: str, second: list[str]) -> str:
    if why_not:
        return f"A platform admin decides because {why_not}."
    return "A platform admin decides first because this request also needs a second approval."


def _and(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def grounding_plan(
    *, deployment: ModelDeployment, data_set: DataSet, requester: User | None, policy: ApprovalPolicy
) -> list[PlannedStep]:
    """The approvals grounding `deployment` on `data_set` needs, in order: the data set's owner
    decides whether an assistant may answer from their documents; confidential and restricted
    data add a finance approver as the policy says (restricted as for any restricted request).

    An owner who asks for it themselves has given their approval by asking: that step is approved
    by policy, and with nothing else to decide the grounding is active at once."""
    owner = data_set.owner
    classification = data_set.data_classification
    if requester is not None and requester.pk == owner.pk:
        steps = [
            PlannedStep(
                ApprovalStep.Kind.AUTOMATIC,
                f"{owner.display_name} owns {data_set.name} and asked for it: asking is their approval.",
            )
        ]
    else:
        steps = [
            PlannedStep(
                ApprovalStep.Kind.DATA_OWNER,
                f"{owner.display_name} owns {data_set.name} ({data_set.department.name}) and decides "
                f"which assistants answer from it.",
                assignee=owner,
            )
        ]
    second = ""
    if classification == DataClassification.RESTRICTED and policy.finance_for_restricted:
        second = "it is for restricted data"
    elif classification == DataClassification.CONFIDENTIAL and policy.finance_for_confidential_grounding:
        second = "it is for confidential data"
    if second:
        steps.append(
            PlannedStep(
                ApprovalStep.Kind.FINANCE,
                f"A finance approver also decides because {second}: {deployment.display_name} would "
                f"quote {data_set.name} to everyone who uses it.",
            )
        )
    return steps
