"""Deployments and shared-service grants, as the deployment pages show them
(`provisioning.access`): platform admins and finance approvers see every deployment; a lead the
deployments of the departments they lead and the shared services granted to them; another
department's deployment is a 404 and anyone else gets a 403.

How to call a deployment is the page's own section (`provisioning.calling.how_to_call`), and its
fallbacks are set by platform admins through the page's service (`fallbacks_set`), with the same
rules, refusals and audit event."""

from datetime import datetime
from typing import Annotated, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema

from api.conditional import require_match, tagged
from api.pagination import Page, PageParams, page_of
from api.params import Id, user_of
from api.problems import Problem, refused
from api.schemas import Input, Money, utc
from org.access import get_department_for
from org.models import User
from provisioning.access import (
    deployments_visible_to,
    get_deployment_for,
    get_deployment_for_admin,
    get_grant_for,
    grants_visible_to,
)
from provisioning.calling import entra_audience, gateway_url, how_to_call, key_departments
from provisioning.catalog import region_data_zone, region_label
from provisioning.fallbacks import MAX_FALLBACKS, FallbackRefused, fallback_rows, fallbacks_of, fallbacks_set
from provisioning.models import AccessGrant, DataClassification, ModelDeployment, NetworkMode

router = Router(tags=["deployments"])

SLUG_PATTERN = r"^[-a-zA-Z0-9_]+$"
NAME_PATTERN = r"^[A-Za-z0-9._-]+$"
State = ModelDeployment.State
Scope = ModelDeployment.Scope
DeploymentId = Annotated[int, Field(ge=1, le=2**63 - 1)]


# Shapes ------------------------------------------------------------------------------------------


class DepartmentRef(Schema):
    slug: str
    name: str


class DeploymentOut(Schema):
    id: int
    display_name: str = Field(..., description="What employees see in the chat.")
    gateway_name: str = Field(
        ..., description="What applications call it by: the `model` (v1) or the Azure-style deployment."
    )
    kind: Scope = Field(..., description="Dedicated to one department, or a shared service.")
    department: DepartmentRef = Field(
        ..., description="Dedicated: the department that owns and pays. Shared: the one that runs it."
    )
    state: State
    model_name: str
    model_version: str
    sku: ModelDeployment.Sku
    capacity: int
    capacity_unit: Literal["K TPM", "PTU"]
    region: str
    updated_at: datetime


class DeploymentDetailOut(DeploymentOut):
    status_message: str
    region_label: str
    data_zone: str | None = Field(..., description="The region's Azure data zone (EU, US), if any.")
    network_mode: NetworkMode
    data_classification: DataClassification
    access_mode: ModelDeployment.AccessMode
    content_filter: str
    fallbacks: list[str] = Field(
        ..., description="Gateway names of its fallbacks, in the order they are tried (see /fallbacks)."
    )
    granted_departments: int = Field(..., description="How many departments a shared service is granted to.")
    created_at: datetime


class SnippetOut(Schema):
    label: str = Field(..., examples=["Python · OpenAI"])
    language: Literal["python", "bash"]
    code: str


class HowToCallOut(Schema):
    gateway_name: str
    v1_base_url: str = Field(..., description="`base_url` of the openai SDK's OpenAI client.")
    azure_endpoint: str = Field(..., description="`azure_endpoint` of its AzureOpenAI client.")
    api_version: str = Field(
        ..., description="The api-version the Azure-style snippet names; any other works too."
    )
    api_keys_from: list[DepartmentRef] = Field(
        ..., description="The departments whose API keys may call it (that you may see)."
    )
    entra_audience: str = Field(
        ..., description="Or an Entra ID token for this audience, for a registered service principal."
    )
    active: bool = Field(..., description="It answers calls only once it is active.")
    snippets: list[SnippetOut]


class FallbackOut(Schema):
    id: int | None = Field(..., description="Null for a deployment you may not open.")
    gateway_name: str
    display_name: str
    region: str
    sku: ModelDeployment.Sku
    capacity: int
    capacity_unit: Literal["K TPM", "PTU"]
    state: State
    tried: bool = Field(..., description="Whether the gateway and the chat try it now on a 429 or 503.")
    note: str | None = Field(..., description="Why it is skipped, when it is.")


class FallbacksOut(Schema):
    deployment: int
    fallbacks: list[FallbackOut]


class FallbacksIn(Input):
    fallbacks: list[DeploymentId] = Field(
        ...,
        max_length=20,
        description=f"Ids of the deployments to fall back to, in order (at most {MAX_FALLBACKS}); [] removes "
        "them all.",
    )


class GrantDeploymentRef(Schema):
    id: int
    display_name: str
    gateway_name: str
    model_name: str
    state: State


class GrantOut(Schema):
    id: int
    deployment: GrantDeploymentRef
    department: DepartmentRef = Field(..., description="The department that may use the shared service.")
    tpm_cap: int | None = Field(..., description="Thousands of tokens per minute; null: no cap of its own.")
    monthly_budget_cap: Money | None = Field(..., description="Null: no cap beyond the department's budget.")
    created_at: datetime


# Filters -----------------------------------------------------------------------------------------


class DeploymentFilters(Schema):
    department: str | None = Field(
        None,
        pattern=SLUG_PATTERN,
        max_length=60,
        description="What this department pays for: its own deployments and the shared ones granted to it.",
    )
    state: State | None = Field(None, description="Only this state (decommissioned ones included then).")
    model: str | None = Field(None, pattern=NAME_PATTERN, max_length=60, description="A model name.")
    kind: Scope | None = None
    drift: bool = Field(False, description="Only deployments whose drift check found differences.")
    decommissioned: bool = Field(False, description="Include decommissioned deployments.")
    sort: Literal[
        "display_name", "-display_name", "model_name", "-model_name",
        "created_at", "-created_at", "updated_at", "-updated_at",
    ] = "display_name"  # fmt: skip


class GrantFilters(Schema):
    department: str | None = Field(None, pattern=SLUG_PATTERN, max_length=60)
    deployment: DeploymentId | None = None
    decommissioned: bool = Field(False, description="Include grants on decommissioned shared services.")
    sort: Literal["created_at", "-created_at"] = "created_at"


# Deployments -------------------------------------------------------------------------------------


def _capacity_unit(deployment: ModelDeployment) -> Literal["K TPM", "PTU"]:
    return "PTU" if deployment.is_provisioned_sku else "K TPM"


def _department_ref(department: object) -> DepartmentRef:
    return DepartmentRef.model_validate(department, from_attributes=True)


def _deployment_fields(deployment: ModelDeployment) -> dict[str, object]:
    return {
        "id": deployment.pk,
        "display_name": deployment.display_name,
        "gateway_name": deployment.gateway_name,
        "kind": deployment.scope,
        "department": _department_ref(deployment.department),
        "state": deployment.state,
        "model_name": deployment.model_name,
        "model_version": deployment.model_version,
        "sku": deployment.sku,
        "capacity": deployment.capacity,
        "capacity_unit": _capacity_unit(deployment),
        "region": deployment.region,
        "updated_at": utc(deployment.updated_at),
    }


@router.get("/deployments", response=Page[DeploymentOut], summary="Deployments you may see")
def list_deployments(
    request: HttpRequest, filters: Query[DeploymentFilters], page: Query[PageParams]
) -> dict[str, object]:
    """Every deployment for platform admins and finance approvers; for a lead, their departments'
    deployments and the shared services granted to them. Decommissioned ones are left out unless
    `decommissioned=true` or a `state` is asked for, as on the deployment list."""
    user = user_of(request)
    visible = deployments_visible_to(user)
    department = get_department_for(user, filters.department, lead_only=True) if filters.department else None
    deployments = visible.matching(
        department=department,
        model_name=filters.model or "",
        state=filters.state or "",
        scope=filters.kind or "",
        drift_only=filters.drift,
        with_decommissioned=filters.decommissioned,
    ).select_related("department")
    chunk = page_of(
        deployments,
        order=filters.sort,
        list_name=f"deployments?{filters.model_dump_json()}",
        cursor=page.cursor,
        limit=page.limit,
    )
    items = [DeploymentOut(**_deployment_fields(deployment)) for deployment in chunk.rows]  # type: ignore[arg-type]
    return {"items": items, "next_cursor": chunk.next_cursor}


def _deployment_detail(deployment: ModelDeployment) -> DeploymentDetailOut:
    return DeploymentDetailOut(
        **_deployment_fields(deployment),  # type: ignore[arg-type]
        status_message=deployment.status_message,
        region_label=region_label(deployment.region),
        data_zone=region_data_zone(deployment.region),
        network_mode=NetworkMode(deployment.network_mode),
        data_classification=DataClassification(deployment.data_classification),
        access_mode=ModelDeployment.AccessMode(deployment.access_mode),
        content_filter=deployment.content_filter,
        fallbacks=[fallback.gateway_name for fallback in fallbacks_of(deployment)],
        granted_departments=deployment.grants.count(),
        created_at=utc(deployment.created_at),
    )


@router.get("/deployments/{deployment_id}", response=DeploymentDetailOut, summary="One deployment")
def get_deployment(request: HttpRequest, deployment_id: Id, response: HttpResponse) -> DeploymentDetailOut:
    """The deployment with its state, model, SKU, capacity, region and data zone, classification,
    gateway name, access mode and fallbacks. Answers with an `ETag`."""
    deployment = get_deployment_for(user_of(request), deployment_id)
    return tagged(response, _deployment_detail(deployment))  # type: ignore[return-value]


@router.get("/deployments/{deployment_id}/how-to-call", response=HowToCallOut, summary="How to call it")
def get_how_to_call(request: HttpRequest, deployment_id: Id) -> HowToCallOut:
    """What an application needs to call the deployment through Switchyard's gateway with the
    unchanged openai SDK: its gateway name, the base URL of the v1-style API and the Azure-style
    endpoint with an api-version, and the snippets the deployment page shows (Python with the
    OpenAI and AzureOpenAI clients, and curl). A department lead creates the API key the snippets
    read from `SWITCHYARD_API_KEY` (see `api_keys_from`)."""
    user = user_of(request)
    deployment = get_deployment_for(user, deployment_id)
    grants = grants_visible_to(user).filter(deployment=deployment).select_related("department")
    calling = how_to_call(deployment, base_url=gateway_url(request))
    return HowToCallOut(
        gateway_name=calling.gateway_name,
        v1_base_url=calling.v1_base_url,
        azure_endpoint=calling.azure_endpoint,
        api_version=calling.api_version,
        api_keys_from=[
            _department_ref(department)
            for department in key_departments(deployment, grants.order_by("department__name"))
        ],
        entra_audience=entra_audience(),
        active=deployment.state == State.ACTIVE,
        snippets=[
            SnippetOut(label=snippet.label, language=snippet.language, code=snippet.code)  # type: ignore[arg-type]
            for snippet in calling.snippets
        ],
    )


# Fallbacks ---------------------------------------------------------------------------------------


def _fallbacks_out(deployment: ModelDeployment, user: User) -> FallbacksOut:
    return FallbacksOut(
        deployment=deployment.pk,
        fallbacks=[
            FallbackOut(
                id=row.deployment.pk if row.visible else None,
                gateway_name=row.deployment.gateway_name,
                display_name=row.deployment.display_name,
                region=row.deployment.region,
                sku=ModelDeployment.Sku(row.deployment.sku),
                capacity=row.deployment.capacity,
                capacity_unit=_capacity_unit(row.deployment),
                state=State(row.deployment.state),
                tried=row.tried,
                note=row.note or None,
            )
            for row in fallback_rows(deployment, seen_by=user)
        ],
    )


@router.get("/deployments/{deployment_id}/fallbacks", response=FallbacksOut, summary="Its fallbacks")
def get_fallbacks(request: HttpRequest, deployment_id: Id, response: HttpResponse) -> FallbacksOut:
    """Where the deployment's calls go when Azure answers 429 or 503 before the first token, in
    the order they are tried, each with whether the gateway tries it now and why not. Answers with
    the `ETag` to send as `If-Match` when changing them."""
    user = user_of(request)
    deployment = get_deployment_for(user, deployment_id)
    return tagged(response, _fallbacks_out(deployment, user))  # type: ignore[return-value]


@router.put("/deployments/{deployment_id}/fallbacks", response=FallbacksOut, summary="Set its fallbacks")
def set_fallbacks(
    request: HttpRequest, deployment_id: Id, body: FallbacksIn, response: HttpResponse
) -> FallbacksOut:
    """Make these deployments, in this order, the deployment's fallbacks (platform admins). Each
    must be the same model, process prompts within the deployment's data zone (anywhere only for
    a Global one), be cleared for its data classification, stay private when it is, and be usable
    by every department that uses it. A fallback that breaks a rule is refused with a 400 naming
    the rule, and nothing changes. Send the `ETag` of GET …/fallbacks as `If-Match`."""
    user = user_of(request)
    deployment = get_deployment_for_admin(user, deployment_id)
    require_match(request, _fallbacks_out(deployment, user))
    chosen = ModelDeployment.objects.in_bulk(body.fallbacks)
    missing = [str(pk) for pk in body.fallbacks if pk not in chosen]
    if missing:
        raise _refused(f"No deployment with the id {', '.join(missing)}.")
    try:
        fallbacks_set(deployment=deployment, fallbacks=[chosen[pk] for pk in body.fallbacks], actor=user)
    except FallbackRefused as refusal:
        raise _refused(str(refusal)) from None
    return tagged(response, _fallbacks_out(deployment, user))  # type: ignore[return-value]


def _refused(message: str) -> Problem:
    return refused(message, {"fallbacks": [message]}, title="Fallback refused")


# Grants ------------------------------------------------------------------------------------------


def _grant_out(grant: AccessGrant) -> GrantOut:
    deployment = grant.deployment
    return GrantOut(
        id=grant.pk,
        deployment=GrantDeploymentRef(
            id=deployment.pk,
            display_name=deployment.display_name,
            gateway_name=deployment.gateway_name,
            model_name=deployment.model_name,
            state=State(deployment.state),
        ),
        department=_department_ref(grant.department),
        tpm_cap=grant.tpm_cap,
        monthly_budget_cap=None if grant.monthly_budget_cap is None else Money.of(grant.monthly_budget_cap),
        created_at=utc(grant.created_at),
    )


@router.get("/grants", response=Page[GrantOut], summary="Shared-service grants")
def list_grants(
    request: HttpRequest, filters: Query[GrantFilters], page: Query[PageParams]
) -> dict[str, object]:
    """Which departments may use which shared services, with their caps: every grant for platform
    admins and finance approvers, those of the departments they lead for a lead. Grants on
    decommissioned services are left out unless `decommissioned=true`."""
    user = user_of(request)
    grants = grants_visible_to(user).select_related("department", "deployment")
    if filters.department:
        grants = grants.filter(department=get_department_for(user, filters.department, lead_only=True))
    if filters.deployment:
        grants = grants.filter(deployment_id=filters.deployment)
    if not filters.decommissioned:
        grants = grants.exclude(deployment__state=State.DECOMMISSIONED)
    chunk = page_of(
        grants,
        order=filters.sort,
        list_name=f"grants?{filters.model_dump_json()}",
        cursor=page.cursor,
        limit=page.limit,
    )
    return {"items": [_grant_out(grant) for grant in chunk.rows], "next_cursor": chunk.next_cursor}


@router.get("/grants/{grant_id}", response=GrantOut, summary="One grant")
def get_grant(request: HttpRequest, grant_id: Id) -> GrantOut:
    """A department's access to a shared service, with its caps. Another department's grant is a
    404 for a lead."""
    return _grant_out(get_grant_for(user_of(request), grant_id))
