"""The shapes of deployment requests in the API: what a script sends to write one (the fields of
the request form, typed and bounded) and what it reads back (the request, its approvals and its
timeline)."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, PlainValidator, WithJsonSchema

from api.schemas import Day, Input, Money, written
from approvals.models import MAX_CAPACITY, MAX_TOKENS_MILLIONS
from approvals.spec import TEXT_LIMITS

# Literals rather than the models' choices, so that the document lists them; the tests check
# they still match.
FormKind = Literal["new_deployment", "shared_access", "capacity_change", "decommission"]
Kind = Literal["new_deployment", "shared_access", "capacity_change", "decommission", "api_key", "grounding"]
State = Literal[
    "draft",
    "submitted",
    "changes_requested",
    "approved",
    "provisioning",
    "completed",
    "failed",
    "rejected",
    "cancelled",
]
Classification = Literal["public", "internal", "confidential", "restricted"]
Sku = Literal[
    "Standard",
    "GlobalStandard",
    "DataZoneStandard",
    "ProvisionedManaged",
    "GlobalProvisionedManaged",
    "DataZoneProvisionedManaged",
]
StepKind = Literal["automatic", "platform", "finance", "data_owner"]
StepState = Literal["pending", "approved", "rejected", "changes_requested", "withdrawn"]
Action = Literal["edit", "submit", "cancel", "approve", "reject", "send_back", "retry"]

Capacity = Annotated[int, Field(ge=1, le=MAX_CAPACITY)]
# Millions of tokens as the form keeps them (up to 1,000,000, three decimals): a whole number, or a
# decimal string, which the document can bound exactly where a JSON number's digits it cannot.
MILLIONS_PATTERN = r"^(1000000(\.0{1,3})?|[0-9]{1,6}(\.[0-9]{1,3})?)$"


def _millions(value: object) -> Decimal:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 2.0 is an integer to JSON Schema
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS_MILLIONS:
        return Decimal(value)
    if isinstance(value, str) and re.fullmatch(MILLIONS_PATTERN, value):
        return Decimal(value)
    raise ValueError(
        "Millions of tokens from 0 to 1,000,000: a whole number, or a decimal string with at most three "
        "decimals."
    )


Millions = Annotated[
    Decimal,
    PlainValidator(_millions),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": int(MAX_TOKENS_MILLIONS)},
                {"type": "string", "pattern": MILLIONS_PATTERN, "examples": ["12.5"]},
            ]
        }
    ),
]
DeploymentId = Annotated[int, Field(ge=1, le=2**63 - 1)]
COMMENT_LENGTH = 4000


def _text(name: str, description: str) -> Any:
    return Field(None, max_length=TEXT_LIMITS[name], description=description)


class RequestFields(Input):
    """The request form's fields. Which ones a request takes depends on its kind (see the
    operations); a field its kind does not take is refused, not ignored."""

    display_name: str | None = _text("display_name", "New deployment: the name employees see in the chat.")
    purpose: str | None = Field(
        None, max_length=TEXT_LIMITS["purpose"], description="What the department will do with it."
    )
    system_prompt: str | None = _text("system_prompt", "New deployment: instructions for every chat.")
    data_classification: Classification | None = Field(
        None, description="The most sensitive data people will use it with (default internal)."
    )
    private_network: bool | None = Field(None, description="New deployment: private endpoint only.")
    expires_on: Day | None = Field(None, description="New deployment: decommissioned on that day.")
    region: str | None = _text("region", "New deployment: an Azure region of the landing zone.")
    model_name: str | None = _text("model_name", "New deployment: a model of the catalog.")
    model_version: str | None = _text("model_version", "New deployment: the model's version.")
    sku: Sku | None = Field(None, description="New deployment: the deployment type.")
    capacity: Capacity | None = Field(
        None, description="K TPM (or PTU for a provisioned SKU); a capacity change's new capacity."
    )
    spillover_twin: bool | None = Field(
        None, description="Provisioned throughput: a pay-as-you-go twin busy calls spill over to."
    )
    tpm_cap: Capacity | None = Field(None, description="Shared access: the department's cap, in K TPM.")
    input_tokens_per_month: Millions | None = Field(
        None, description="Expected input tokens a month, in millions: prices the estimate."
    )
    output_tokens_per_month: Millions | None = Field(
        None, description="Expected output tokens a month, in millions."
    )
    target: DeploymentId | None = Field(
        None, description="The deployment (id) to use (shared access), resize or decommission."
    )


class RequestIn(RequestFields):
    kind: FormKind
    department: str = Field(
        ..., pattern=r"^[-a-zA-Z0-9_]+$", max_length=60, description="The department's slug."
    )


class RequestPatch(RequestFields):
    """Only the fields sent change; `null` empties a field."""


class CommentIn(Input):
    comment: str = Field("", max_length=COMMENT_LENGTH, description="For the requester; may be empty.")


class ReasonIn(Input):
    reason: str = Field(
        ..., min_length=1, max_length=COMMENT_LENGTH, description="Why: the requester reads it."
    )


class RequiredCommentIn(Input):
    comment: str = Field(
        ...,
        min_length=1,
        max_length=COMMENT_LENGTH,
        description="What should change: the requester reads it.",
    )


def _in_utc(moment: datetime) -> datetime:
    """An instant the database can hold: a time with an offset near year 1 or 9999 may not be
    one once in UTC."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("The time is out of range.") from None


Instant = Annotated[AwareDatetime, BeforeValidator(written), AfterValidator(_in_utc)]


class RequestFilters(Schema):
    state: State | Literal["open"] | None = Field(
        None, description="`open`: draft, waiting for approval, changes requested, approved or provisioning."
    )
    department: str | None = Field(
        None, pattern=r"^[-a-zA-Z0-9_]+$", max_length=60, description="A department's slug."
    )
    kind: Kind | None = None
    created_after: Instant | None = Field(
        None,
        description="Created at or after this time: ISO 8601 with its offset, e.g. 2026-12-01T00:00:00Z.",
    )
    created_before: Instant | None = Field(None, description="Created before this time (as `created_after`).")


class PersonOut(Schema):
    email: str
    name: str


class RequestOut(Schema):
    id: int
    kind: Kind
    state: State
    state_label: str
    title: str
    department: str = Field(..., description="The department's slug.")
    department_name: str
    requester: PersonOut | None = Field(None, description="Null for a request Switchyard opened itself.")
    round: int = Field(..., description="The approval round: each submission starts one.")
    display_name: str
    purpose: str
    system_prompt: str
    data_classification: Classification
    private_network: bool
    expires_on: date | None
    region: str
    model_name: str
    model_version: str
    sku: str
    capacity: int | None
    spillover_twin: bool
    tpm_cap: int | None
    input_tokens_per_month: str = Field(
        ..., pattern=r"^[0-9]+(\.[0-9]+)?$", examples=["120"], description="Millions, a decimal string."
    )
    output_tokens_per_month: str = Field(
        ..., pattern=r"^[0-9]+(\.[0-9]+)?$", examples=["40.5"], description="Millions, a decimal string."
    )
    estimated_monthly_cost: Money
    target: int | None = Field(None, description="The deployment it is about (id).")
    deployment: int | None = Field(None, description="The deployment it created or changed (id).")
    status_message: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    finished_at: datetime | None


class ApprovalOut(Schema):
    round: int
    order: int
    role: StepKind = Field(..., description="Who decides: the policy itself, a platform admin, finance.")
    reason: str = Field(..., description="Why the policy asks for this approval.")
    state: StepState
    decided_by: PersonOut | None
    decided_at: datetime | None
    comment: str


class TimelineEntryOut(Schema):
    title: str
    status: Literal["done", "waiting", "running", "failed"]
    at: datetime | None
    actor: str
    detail: str
    duration_seconds: float | None
    changes: list[str]
    round_edits: list[str] = Field(..., description="For a decision: who wrote what in the round it decided.")


class RequestDetailOut(RequestOut):
    approvals: list[ApprovalOut] = Field(..., description="Every round's, oldest first.")
    timeline: list[TimelineEntryOut] = Field(..., description="Oldest first; what still waits last.")
    your_actions: list[Action] = Field(..., description="What you may do with it now.")
