"""Keyword-only builders for test data."""

import uuid
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from django.contrib.auth.models import Group
from django.utils import timezone

from approvals.models import DeploymentRequest
from approvals.services import request_create
from approvals.spec import RequestSpec
from money.models import UsageRecord
from money.usage import usage_rollup_add
from org.models import Department, Membership, PlatformGroup, User
from org.roles import ensure_platform_groups
from provisioning.models import (
    AccessGrant,
    CatalogEntry,
    LandingZone,
    ModelDeployment,
    NetworkMode,
    OpenAIAccount,
    ProvisioningOperation,
    Quota,
)

PASSWORD = "correct-horse-battery-staple"
_sequence = count(1)


def make_department(
    *,
    name: str | None = None,
    slug: str | None = None,
    cost_center: str | None = None,
    monthly_budget: Decimal = Decimal("1000.00"),
    chat_retention_days: int = 30,
    entra_member_group_id: str = "",
    entra_lead_group_id: str = "",
) -> Department:
    number = next(_sequence)
    name = name or f"Department {number}"
    return Department.objects.create(
        name=name,
        slug=slug or name.lower().replace(" ", "-"),
        cost_center=cost_center or f"CC-{9000 + number}",
        monthly_budget=monthly_budget,
        chat_retention_days=chat_retention_days,
        entra_member_group_id=entra_member_group_id,
        entra_lead_group_id=entra_lead_group_id,
    )


def make_user(
    *,
    email: str | None = None,
    first_name: str = "Test",
    department: Department | None = None,
    role: str = Membership.Role.MEMBER,
    platform_group: PlatformGroup | None = None,
) -> User:
    user = User.objects.create_user(
        email or f"person{next(_sequence)}@example.com", PASSWORD, first_name=first_name
    )
    if department is not None:
        Membership.objects.create(user=user, department=department, role=role)
    if platform_group is not None:
        ensure_platform_groups()
        user.groups.add(Group.objects.get(name=platform_group.value))
        user.is_staff = platform_group == PlatformGroup.ADMINS
        user.save(update_fields=["is_staff"])
    return user


def make_landing_zone(
    *,
    name: str | None = None,
    slug: str | None = None,
    owner_department: Department | None = None,
    allowed_regions: list[str] | None = None,
    subscription_id: str | None = None,
    resource_group: str | None = None,
) -> LandingZone:
    number = next(_sequence)
    name = name or f"Landing zone {number}"
    return LandingZone.objects.create(
        name=name,
        slug=slug or f"lz{number}",
        subscription_id=subscription_id or str(uuid.UUID(int=number)),
        resource_group=resource_group or f"rg-switchyard-{number}",
        allowed_regions=allowed_regions if allowed_regions is not None else ["swedencentral", "eastus2"],
        owner_department=owner_department,
    )


def make_account(
    *,
    landing_zone: LandingZone,
    region: str = "swedencentral",
    network_mode: str = NetworkMode.PUBLIC,
    state: str = OpenAIAccount.State.ACTIVE,
    local_auth_disabled: bool = True,
) -> OpenAIAccount:
    name = OpenAIAccount.deterministic_name(landing_zone, region, network_mode)
    return OpenAIAccount.objects.create(
        landing_zone=landing_zone,
        region=region,
        network_mode=network_mode,
        name=name,
        custom_subdomain=name,
        endpoint=f"https://{name}.openai.azure.com/",
        state=state,
        local_auth_disabled=local_auth_disabled,
    )


def make_deployment(
    *,
    department: Department,
    display_name: str | None = None,
    name: str | None = None,
    scope: str = ModelDeployment.Scope.DEDICATED,
    shared_with: Iterable[Department] = (),
    state: str = ModelDeployment.State.ACTIVE,
    landing_zone: LandingZone | None = None,
    account: OpenAIAccount | None = None,
    region: str = "swedencentral",
    network_mode: str = NetworkMode.PUBLIC,
    model_name: str = "gpt-4o-mini",
    model_version: str = "2024-07-18",
    sku: str = ModelDeployment.Sku.GLOBAL_STANDARD,
    capacity: int = 20,
    system_prompt: str = "",
    status_message: str = "",
    drift: dict[str, object] | None = None,
) -> ModelDeployment:
    """A deployment row as provisioning would leave it; `shared_with` grants a shared one."""
    number = next(_sequence)
    deployment = ModelDeployment.objects.create(
        department=department,
        scope=ModelDeployment.Scope.SHARED if shared_with else scope,
        display_name=display_name or f"Assistant {number}",
        system_prompt=system_prompt,
        landing_zone=landing_zone or make_landing_zone(),
        region=region,
        network_mode=network_mode,
        account=account,
        name=name or f"{model_name}-{number}",
        model_name=model_name,
        model_version=model_version,
        sku=sku,
        capacity=capacity,
        state=state,
        status_message=status_message,
        drift=drift,
    )
    for grantee in shared_with:
        AccessGrant.objects.create(deployment=deployment, department=grantee)
    return deployment


def make_operation(
    *,
    deployment: ModelDeployment,
    step: str = ProvisioningOperation.Step.ENSURE_ACCOUNT,
    run: int | None = None,
    status: str = ProvisioningOperation.Status.SUCCEEDED,
    attempt: int = 1,
    error: str = "",
    duration: timedelta | None = timedelta(seconds=1.5),
) -> ProvisioningOperation:
    """One step of the deployment's current run (unless `run` says otherwise); finished
    `duration` after it started unless it is still running."""
    operation = ProvisioningOperation.objects.create(
        deployment=deployment,
        run=run if run is not None else max(deployment.run, 1),
        step=step,
        status=status,
        attempt=attempt,
        error=error,
    )
    finished = status in {ProvisioningOperation.Status.SUCCEEDED, ProvisioningOperation.Status.FAILED}
    if finished and duration is not None:
        operation.finished_at = operation.started_at + duration
        operation.save(update_fields=["finished_at"])
    return operation


def make_offer(
    *,
    region: str = "swedencentral",
    model_name: str = "gpt-4o-mini",
    model_version: str = "2024-07-18",
    sku: str = ModelDeployment.Sku.GLOBAL_STANDARD,
    minimum: int = 1,
    maximum: int | None = 500,
    step: int = 1,
    quota_left: int | None = 100,
    subscription_id: str | None = None,
) -> CatalogEntry:
    """A catalog offer as the hourly sync leaves it, with the quota left in `subscription_id`."""
    now = timezone.now()
    usage_name = f"OpenAI.{sku}.{model_name}"
    entry = CatalogEntry.objects.create(
        region=region,
        model_name=model_name,
        model_version=model_version,
        sku=sku,
        usage_name=usage_name,
        capacity_minimum=minimum,
        capacity_maximum=maximum,
        capacity_step=step,
        capacity_default=min(10, maximum or 10),
        synced_at=now,
    )
    if quota_left is not None and subscription_id is not None:
        Quota.objects.update_or_create(
            subscription_id=subscription_id,
            region=region,
            usage_name=usage_name,
            defaults={"current_value": Decimal(0), "limit": Decimal(quota_left), "synced_at": now},
        )
    return entry


def make_request(
    *,
    department: Department,
    requester: User | None,
    kind: str = "new_deployment",
    submit: bool = True,
    **spec: Any,
) -> DeploymentRequest:
    """A request made through the service, as the form would (spec values as cleaned data)."""
    values: dict[str, Any] = {
        "purpose": "Drafting campaign copy",
        "data_classification": "internal",
        "input_tokens_per_month": Decimal(0),
        "output_tokens_per_month": Decimal(0),
    }
    if kind == "new_deployment":
        values.update(
            display_name="Copy assistant",
            region="swedencentral",
            model_name="gpt-4o-mini",
            model_version="2024-07-18",
            sku=ModelDeployment.Sku.GLOBAL_STANDARD,
            capacity=10,
        )
    values.update(spec)
    assert requester is not None
    return request_create(
        actor=requester, department=department, kind=kind, spec=RequestSpec(**values), submit=submit
    )


def make_spend(department: Department, deployment: ModelDeployment, amount: Decimal) -> UsageRecord:
    """Usage at a round cost, metered into the rollups that budgets and reports read."""
    record = UsageRecord.objects.create(
        department=department,
        deployment=deployment,
        input_tokens=1000,
        output_tokens=1000,
        cost=amount,
        created_at=timezone.now(),
    )
    usage_rollup_add(record=record)
    return record
