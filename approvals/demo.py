"""Demo requests in every state, so each request page has something to show."""

from decimal import Decimal
from typing import Any

from approvals import services
from approvals.models import DeploymentRequest
from org.models import Department, User

Kind = DeploymentRequest.Kind


def _spec(**values: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "data_classification": "internal",
        "region": "swedencentral",
        "model_version": "2024-11-20",
        "sku": "GlobalStandard",
        "input_tokens_per_month": Decimal(0),
        "output_tokens_per_month": Decimal(0),
    }
    spec.update(values)
    return spec


def seed_requests(departments: dict[str, Department]) -> int:
    """A handful of requests through the real services: one approved by policy (the worker
    provisions it), one waiting for an admin, one waiting for finance, one sent back, one
    rejected, one draft. Seeds nothing when requests exist already."""
    if DeploymentRequest.objects.exists():
        return 0
    admin = User.objects.get(email="admin@example.com")
    fiona = User.objects.get(email="fiona@example.com")
    lena = User.objects.get(email="lena@example.com")
    hana = User.objects.get(email="hana@example.com")
    marketing, hr, finance = departments["marketing"], departments["hr"], departments["finance"]

    services.request_create(
        actor=hana,
        department=hr,
        kind=Kind.NEW_DEPLOYMENT,
        submit=True,
        spec=_spec(
            display_name="HR policy helper",
            purpose="Answer employees' questions about leave, travel and expense policies from the handbook.",
            system_prompt="You answer questions about the company's HR policies. Quote the policy section "
            "you rely on, and send people to HR for anything about their own case.",
            model_name="gpt-4o",
            capacity=10,
            input_tokens_per_month=Decimal("40"),
            output_tokens_per_month=Decimal("8"),
        ),
    )
    services.request_create(
        actor=lena,
        department=marketing,
        kind=Kind.NEW_DEPLOYMENT,
        submit=True,
        spec=_spec(
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
    )
    analyst = services.request_create(
        actor=admin,
        department=finance,
        kind=Kind.NEW_DEPLOYMENT,
        submit=True,
        spec=_spec(
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
    )
    services.request_approve(request=analyst, actor=fiona, comment="Budget is fine for finance.")
    interviews = services.request_create(
        actor=hana,
        department=hr,
        kind=Kind.NEW_DEPLOYMENT,
        submit=True,
        spec=_spec(
            display_name="Interview notes summariser",
            purpose="Summarise interview notes into a structured candidate profile.",
            model_name="gpt-4o",
            capacity=40,
            input_tokens_per_month=Decimal("15"),
            output_tokens_per_month=Decimal("5"),
            data_classification="confidential",
        ),
    )
    services.request_send_back(
        request=interviews,
        actor=admin,
        comment="Candidate notes are personal data: classify them as restricted and say how long "
        "they are kept.",
    )
    ptu = services.request_create(
        actor=lena,
        department=marketing,
        kind=Kind.NEW_DEPLOYMENT,
        submit=True,
        spec=_spec(
            display_name="Image caption batch",
            purpose="Nightly batch captioning of the product image library.",
            model_name="gpt-4o",
            sku="GlobalStandard",
            capacity=200,
            input_tokens_per_month=Decimal("900"),
            output_tokens_per_month=Decimal("150"),
        ),
    )
    services.request_reject(
        request=ptu,
        actor=admin,
        reason="A nightly batch belongs on the Batch API at half the price; the platform team will "
        "help set it up.",
    )
    services.request_create(
        actor=lena,
        department=marketing,
        kind=Kind.NEW_DEPLOYMENT,
        submit=False,
        spec=_spec(
            display_name="Translation helper",
            purpose="Translate approved copy into German and French.",
            model_name="gpt-4o-mini",
            model_version="2024-07-18",
            capacity=10,
        ),
    )
    return DeploymentRequest.objects.count()
