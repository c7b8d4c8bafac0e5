"""Demo requests in every state, so each request page has something to show."""

from dataclasses import dataclass, replace
from decimal import Decimal

from approvals import services
from approvals.models import DeploymentRequest
from approvals.spec import RequestSpec
from org.models import Department, User

Kind = DeploymentRequest.Kind

BASE = RequestSpec(
    data_classification="internal",
    region="swedencentral",
    model_version="2024-11-20",
    sku="GlobalStandard",
    input_tokens_per_month=Decimal(0),
    output_tokens_per_month=Decimal(0),
)


@dataclass(frozen=True)
class DemoRequest:
    """A new-deployment request a demo person makes, and what an approver then decides on it."""

    author: str  # the demo user's email
    department: str  # slug
    spec: RequestSpec
    submit: bool = True
    decided_by: str = ""
    decision: str = ""  # approve | send_back | reject
    comment: str = ""


# In this order, one approved by policy (the worker provisions it), one waiting for an admin, one
# waiting for finance, one sent back, one rejected, one draft.
DEMO_REQUESTS = [
    DemoRequest(
        "hana@example.com",
        "hr",
        replace(
            BASE,
            display_name="HR policy helper",
            purpose="Answer employees' questions about leave, travel and expense policies from the handbook.",
            system_prompt="You answer questions about the company's HR policies. Quote the policy section "
            "you rely on, and send people to HR for anything about their own case.",
            model_name="gpt-4o",
            capacity=10,
            input_tokens_per_month=Decimal("40"),
            output_tokens_per_month=Decimal("8"),
        ),
    ),
    DemoRequest(
        "lena@example.com",
        "marketing",
        replace(
            BASE,
            display_name="Campaign copy assistant",
            purpose="Draft and vary campaign copy, subject lines and social posts in the brand voice.",
            system_prompt="You write marketing copy in the company's brand voice: warm, concrete, no "
            "superlatives. Offer three variants when asked for copy.",
            model_name="gpt-4o-mini",
            model_version="2024-07-18",
            capacity=30,
            input_tokens_per_month=Decimal("120"),
            output_tokens_per_month=Decimal("40"),
            data_classification="public",
        ),
    ),
    DemoRequest(
        "admin@example.com",
        "finance",
        replace(
            BASE,
            display_name="Quarter-close analyst",
            purpose="Explain variances in the quarter-close reports to controllers "
            "(asked on Finance's behalf).",
            model_name="gpt-4o",
            capacity=10,
            input_tokens_per_month=Decimal("20"),
            output_tokens_per_month=Decimal("4"),
            data_classification="restricted",
            private_network=True,
        ),
        decided_by="fiona@example.com",
        decision="approve",
        comment="Budget is fine for finance.",
    ),
    DemoRequest(
        "hana@example.com",
        "hr",
        replace(
            BASE,
            display_name="Interview notes summariser",
            purpose="Summarise interview notes into a structured candidate profile.",
            model_name="gpt-4o",
            capacity=40,
            input_tokens_per_month=Decimal("15"),
            output_tokens_per_month=Decimal("5"),
            data_classification="confidential",
        ),
        decided_by="admin@example.com",
        decision="send_back",
        comment="Candidate notes are personal data: classify them as restricted and say how long "
        "they are kept.",
    ),
    DemoRequest(
        "lena@example.com",
        "marketing",
        replace(
            BASE,
            display_name="Image caption batch",
            purpose="Nightly batch captioning of the product image library.",
            model_name="gpt-4o",
            sku="GlobalStandard",
            capacity=200,
            input_tokens_per_month=Decimal("900"),
            output_tokens_per_month=Decimal("150"),
        ),
        decided_by="admin@example.com",
        decision="reject",
        comment="A nightly batch belongs on the Batch API at half the price; the platform team will "
        "help set it up.",
    ),
    DemoRequest(
        "lena@example.com",
        "marketing",
        replace(
            BASE,
            display_name="Translation helper",
            purpose="Translate approved copy into German and French.",
            model_name="gpt-4o-mini",
            model_version="2024-07-18",
            capacity=10,
        ),
        submit=False,
    ),
]


def seed_requests(departments: dict[str, Department]) -> int:
    """The demo requests through the real services. Seeds nothing when requests exist already."""
    if DeploymentRequest.objects.exists():
        return 0
    people = {
        email: User.objects.get(email=email)
        for email in ("admin@example.com", "fiona@example.com", "lena@example.com", "hana@example.com")
    }
    for demo in DEMO_REQUESTS:
        request = services.request_create(
            actor=people[demo.author],
            department=departments[demo.department],
            kind=Kind.NEW_DEPLOYMENT,
            submit=demo.submit,
            spec=demo.spec,
        )
        if demo.decision:
            _decide(request, people[demo.decided_by], demo.decision, demo.comment)
    return DeploymentRequest.objects.count()


def _decide(request: DeploymentRequest, actor: User, decision: str, comment: str) -> None:
    if decision == "approve":
        services.request_approve(request=request, actor=actor, comment=comment)
    elif decision == "send_back":
        services.request_send_back(request=request, actor=actor, comment=comment)
    else:
        services.request_reject(request=request, actor=actor, reason=comment)
