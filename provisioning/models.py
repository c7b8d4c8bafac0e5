"""Switchyard's picture of the Azure estate: where deployments live, what they are, and every
step the provisioning engine took."""

import hashlib
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.text import slugify

from base.limits import fits_integer_column
from base.text import validate_single_line
from org.models import Department, User


class DataClassification(models.TextChoices):
    PUBLIC = "public", "Public"
    INTERNAL = "internal", "Internal"
    CONFIDENTIAL = "confidential", "Confidential"
    RESTRICTED = "restricted", "Restricted"


class NetworkMode(models.TextChoices):
    PUBLIC = "public", "Public endpoint"
    PRIVATE = "private", "Private network"


def validate_region_names(value: object) -> None:
    """Allowed regions are a list of Azure region names ("swedencentral"), nothing else."""
    if not isinstance(value, list) or not all(
        isinstance(region, str) and re.fullmatch(r"[a-z0-9]+", region) for region in value
    ):
        raise ValidationError(
            'Enter a list of Azure region names, for example ["swedencentral", "eastus2"].', code="regions"
        )


class LandingZone(models.Model):
    """An Azure subscription + resource group Switchyard may deploy into: a billing boundary.

    Central IT's shared zone has no owner; a department's own subscription names it as owner.
    """

    name = models.CharField(max_length=120, unique=True, validators=[validate_single_line])
    slug = models.SlugField(max_length=40, unique=True, help_text="Short; goes into Azure resource names.")
    subscription_id = models.CharField("subscription id", max_length=36)
    resource_group = models.CharField(max_length=90)
    allowed_regions = models.JSONField(
        default=list,
        validators=[validate_region_names],
        help_text='Azure region names, e.g. ["swedencentral"].',
    )
    owner_department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="landing_zones",
        help_text="Empty for central IT's shared zone.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription_id", "resource_group"], name="one_zone_per_resource_group"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def for_department(cls, department: Department) -> "LandingZone | None":
        """The department's own subscription if it has one, else central IT's shared zone."""
        return (
            cls.objects.filter(Q(owner_department=department) | Q(owner_department__isnull=True))
            # Its own zone first; NULLs sort first on SQLite and last on PostgreSQL unless told.
            .order_by(F("owner_department").asc(nulls_last=True))
            .first()
        )


def _short_hash(*parts: str, length: int = 6) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


class OpenAIAccount(models.Model):
    """A Microsoft.CognitiveServices/accounts resource of kind OpenAI."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Failed"
        DELETED = "deleted", "Deleted"

    landing_zone = models.ForeignKey(LandingZone, on_delete=models.PROTECT, related_name="accounts")
    region = models.CharField(max_length=40)
    network_mode = models.CharField(max_length=10, choices=NetworkMode.choices, default=NetworkMode.PUBLIC)
    name = models.CharField(max_length=64, unique=True)
    custom_subdomain = models.CharField(max_length=64, unique=True)
    arm_id = models.CharField("ARM id", max_length=400, blank=True)
    endpoint = models.URLField(max_length=300, blank=True)
    local_auth_disabled = models.BooleanField(default=True, help_text="Keyless: Entra ID tokens only.")
    content_logging_disabled = models.BooleanField(
        default=False, help_text="Microsoft approved the abuse-monitoring opt-out (ContentLogging=false)."
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    drift = models.JSONField(
        null=True,
        blank=True,
        help_text="Deployments Azure has on this account that Switchyard does not know.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["landing_zone", "region", "network_mode"]
        constraints = [
            models.UniqueConstraint(
                fields=["landing_zone", "region", "network_mode"], name="one_account_per_zone_region_network"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def deterministic_name(landing_zone: LandingZone, region: str, network_mode: str) -> str:
        """The same zone, region and network mode always give the same name, so a re-run PUTs
        the same resource instead of creating a second one. A hash keeps it globally unique
        (custom subdomains are global on Azure)."""
        suffix = _short_hash(landing_zone.subscription_id, landing_zone.resource_group, region, network_mode)
        mode = "prv" if network_mode == NetworkMode.PRIVATE else "pub"
        base = re.sub(r"[^a-z0-9-]", "", f"oai-{landing_zone.slug}-{region}-{mode}".lower())[:56]
        return f"{base}-{suffix}"


class ModelDeploymentQuerySet(models.QuerySet["ModelDeployment"]):
    def usable_by(self, user: User) -> "ModelDeploymentQuerySet":
        """Active deployments the user's departments may chat with: their dedicated ones and the
        shared ones granted to them."""
        departments = user.memberships.values("department_id")
        return self.filter(state=ModelDeployment.State.ACTIVE).of_departments(departments)

    def of_departments(
        self, departments: "Iterable[int] | models.QuerySet[Any]"
    ) -> "ModelDeploymentQuerySet":
        """The deployments these departments (ids, or a query of them) may use, in any state:
        their dedicated ones and the shared ones granted to them."""
        granted = AccessGrant.objects.filter(department_id__in=departments).values("deployment_id")
        return self.filter(
            Q(scope=ModelDeployment.Scope.DEDICATED, department_id__in=departments)
            | Q(scope=ModelDeployment.Scope.SHARED, pk__in=granted)
        )

    def live(self) -> "ModelDeploymentQuerySet":
        return self.exclude(state=ModelDeployment.State.DECOMMISSIONED)

    def matching(
        self,
        *,
        department: Department | None = None,
        model_name: str = "",
        state: str = "",
        scope: str = "",
        drift_only: bool = False,
        with_decommissioned: bool = False,
    ) -> "ModelDeploymentQuerySet":
        """The deployment list's filters (the page's and the API's). Decommissioned deployments
        are left out unless asked for, or unless `state` names a state."""
        deployments = self
        if department is not None:
            # "Marketing's deployments" means what Marketing pays for: its own and its shares.
            granted = AccessGrant.objects.filter(department=department).values("deployment_id")
            deployments = deployments.filter(Q(department=department) | Q(pk__in=granted))
        if model_name:
            deployments = deployments.filter(model_name=model_name)
        if scope:
            deployments = deployments.filter(scope=scope)
        if state:
            deployments = deployments.filter(state=state)
        elif not with_decommissioned:
            deployments = deployments.live()
        if drift_only:
            deployments = deployments.exclude(drift__isnull=True).exclude(drift={})
        return deployments

    def in_flight(self) -> "ModelDeploymentQuerySet":
        return self.filter(state__in=ModelDeployment.State.in_flight())

    def on_account(self, account: "OpenAIAccount") -> "ModelDeploymentQuerySet":
        """Deployments that live on the account, or are on their way to it (a run that has not
        reached its account step yet has no account, but will take this one)."""
        State = ModelDeployment.State
        living = Q(account=account) & ~Q(state__in=[State.DECOMMISSIONED, State.FAILED])
        coming = Q(
            account__isnull=True,
            landing_zone_id=account.landing_zone_id,
            region=account.region,
            network_mode=account.network_mode,
            state__in=[State.REQUESTED, State.PROVISIONING],
        )
        return self.filter(living | coming)

    def runs_under_way(self) -> "ModelDeploymentQuerySet":
        """Deployments whose run a worker still has to advance: provisioning, decommissioning, or
        removing what a failed run left in Azure."""
        State = ModelDeployment.State
        return self.filter(
            Q(state__in=[State.PROVISIONING, State.DECOMMISSIONING])
            | (Q(state=State.FAILED) & ~Q(run_token=""))
        )


class ModelDeployment(models.Model):
    """A model deployment on an account: dedicated to one department or shared by several."""

    class Scope(models.TextChoices):
        DEDICATED = "dedicated", "Dedicated"
        SHARED = "shared", "Shared"

    class Sku(models.TextChoices):
        STANDARD = "Standard", "Standard"
        GLOBAL_STANDARD = "GlobalStandard", "Global Standard"
        DATA_ZONE_STANDARD = "DataZoneStandard", "Data Zone Standard"
        PROVISIONED = "ProvisionedManaged", "Provisioned (regional)"
        GLOBAL_PROVISIONED = "GlobalProvisionedManaged", "Provisioned (global)"
        DATA_ZONE_PROVISIONED = "DataZoneProvisionedManaged", "Provisioned (data zone)"

    class AccessMode(models.TextChoices):
        GATEWAY = "gateway", "Through Switchyard only"
        DIRECT = "direct", "Direct calls allowed for the department's group"

    class State(models.TextChoices):
        REQUESTED = "requested", "Requested"
        PROVISIONING = "provisioning", "Provisioning"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Failed"
        DECOMMISSIONING = "decommissioning", "Decommissioning"
        DECOMMISSIONED = "decommissioned", "Decommissioned"

        @classmethod
        def in_flight(cls) -> list[str]:
            return [cls.REQUESTED, cls.PROVISIONING, cls.DECOMMISSIONING]

    department = models.ForeignKey(
        Department,
        on_delete=models.PROTECT,
        related_name="deployments",
        help_text="Dedicated: the department that owns and pays. Shared: the department that runs it.",
    )
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.DEDICATED)
    display_name = models.CharField(
        max_length=120, validators=[validate_single_line], help_text="What employees see in the chat."
    )
    system_prompt = models.TextField(blank=True, help_text="The flavor: instructions applied to every chat.")
    gateway_name = models.SlugField(
        max_length=63,
        unique=True,
        help_text="What applications call it by through the gateway (the `model`, or the deployment in "
        "an Azure-style URL). Stable: set once, when the deployment is made.",
    )
    data_classification = models.CharField(
        max_length=20, choices=DataClassification.choices, default=DataClassification.INTERNAL
    )
    access_mode = models.CharField(
        max_length=10,
        choices=AccessMode.choices,
        default=AccessMode.GATEWAY,
        help_text="Whether the department's Entra group may also call Azure directly (only on an account "
        "that belongs to the department alone).",
    )
    landing_zone = models.ForeignKey(LandingZone, on_delete=models.PROTECT, related_name="deployments")
    region = models.CharField(max_length=40)
    network_mode = models.CharField(max_length=10, choices=NetworkMode.choices, default=NetworkMode.PUBLIC)
    account = models.ForeignKey(
        OpenAIAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="deployments"
    )
    name = models.CharField("deployment name", max_length=64)
    model_name = models.CharField(max_length=60)
    model_version = models.CharField(max_length=30)
    sku = models.CharField(max_length=30, choices=Sku.choices, default=Sku.GLOBAL_STANDARD)
    capacity = models.PositiveIntegerField(
        validators=[fits_integer_column],
        help_text="Thousands of tokens per minute, or PTUs for provisioned SKUs.",
    )
    content_filter = models.CharField(max_length=80, default="Microsoft.DefaultV2")
    state = models.CharField(max_length=16, choices=State.choices, default=State.REQUESTED, db_index=True)
    status_message = models.TextField(blank=True)
    drift = models.JSONField(null=True, blank=True, help_text="What Azure reports differently, when it does.")
    drift_checked_at = models.DateTimeField(null=True, blank=True)
    # Each provisioning or decommissioning run has a number (the operation log groups by it) and
    # a token: only the task message carrying the current token may advance the run, so a
    # duplicate or superseded message does nothing. Each message that schedules the next step
    # gets a fresh token. A failed run that is still removing what it created keeps a token.
    run = models.PositiveIntegerField(default=0)
    run_token = models.CharField(max_length=32, blank=True)
    # When the run's next step is due. A step long overdue was lost with the worker that held
    # its message (a countdown task lives in the worker's memory until it is due).
    next_step_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ModelDeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["display_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["landing_zone", "region", "network_mode", "name"],
                condition=~Q(state="decommissioned"),
                name="one_live_deployment_name_per_account",
            )
        ]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.gateway_name:
            self.gateway_name = gateway_name_for(self.display_name or self.model_name)
        super().save(*args, **kwargs)

    @property
    def is_cleaning_up(self) -> bool:
        """A failed run is removing what it created in Azure."""
        return self.state == self.State.FAILED and bool(self.run_token)

    @property
    def is_provisioned_sku(self) -> bool:
        return self.sku.endswith("ProvisionedManaged")

    @property
    def capacity_label(self) -> str:
        return f"{self.capacity} PTU" if self.is_provisioned_sku else f"{self.capacity}K TPM"

    def paying_departments(self, user: User) -> list[Department]:
        """The user's departments that may use this deployment (and so pay for their use)."""
        departments = [membership.department for membership in user.memberships_with_departments]
        if self.scope == self.Scope.DEDICATED:
            return [department for department in departments if department.pk == self.department_id]
        granted = set(self.grants.values_list("department_id", flat=True))
        return [department for department in departments if department.pk in granted]


def gateway_name_for(display_name: str) -> str:
    """A gateway name free to take, from a display name: "Company assistant" -> company-assistant,
    then company-assistant-2 and so on."""
    base = slugify(display_name)[:56].strip("-") or "deployment"
    taken = set(
        ModelDeployment.objects.filter(gateway_name__startswith=base).values_list("gateway_name", flat=True)
    )
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}-{number}"
    return name


class Fallback(models.Model):
    """Where a deployment's calls go when Azure answers 429 or 503 before the first byte: tried in
    order of `position`. `provisioning.fallbacks` says which deployments may be one."""

    deployment = models.ForeignKey(ModelDeployment, on_delete=models.CASCADE, related_name="fallback_links")
    fallback = models.ForeignKey(ModelDeployment, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["deployment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "fallback"], name="one_fallback_link_per_pair"),
            models.CheckConstraint(
                condition=~Q(deployment=F("fallback")), name="fallback_is_another_deployment"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.deployment} → {self.fallback} ({self.position})"


class AccessGrant(models.Model):
    """A department may use a shared deployment, optionally capped."""

    deployment = models.ForeignKey(ModelDeployment, on_delete=models.CASCADE, related_name="grants")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="access_grants")
    tpm_cap = models.PositiveIntegerField(
        "TPM cap (thousands)",
        null=True,
        blank=True,
        validators=[fits_integer_column],
        help_text="Empty: no cap beyond the deployment's own.",
    )
    monthly_budget_cap = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deployment", "department"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "department"], name="one_grant_per_department")
        ]

    def __str__(self) -> str:
        return f"{self.department} → {self.deployment}"


class CatalogEntry(models.Model):
    """A model version in a SKU that a region offers (synced from Azure's models.list)."""

    region = models.CharField(max_length=40)
    model_name = models.CharField(max_length=60)
    model_version = models.CharField(max_length=30)
    sku = models.CharField(max_length=30)
    usage_name = models.CharField(max_length=100)
    lifecycle_status = models.CharField(max_length=30, blank=True)
    is_default_version = models.BooleanField(default=False)
    capacity_minimum = models.PositiveIntegerField(default=1)
    capacity_maximum = models.PositiveIntegerField(null=True, blank=True)
    capacity_step = models.PositiveIntegerField(default=1)
    capacity_default = models.PositiveIntegerField(null=True, blank=True)
    requests_per_minute_per_unit = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    # The model's limits as Azure states them (capabilities maxContextToken / maxOutputToken).
    max_context_tokens = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    retirement_date = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["region", "model_name", "model_version", "sku"]
        verbose_name_plural = "catalog entries"
        constraints = [
            models.UniqueConstraint(
                fields=["region", "model_name", "model_version", "sku"], name="one_catalog_row"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_name} {self.model_version} {self.sku} in {self.region}"


class Quota(models.Model):
    """Quota used and limit per subscription, region and quota name (synced from usages.list)."""

    subscription_id = models.CharField(max_length=36)
    region = models.CharField(max_length=40)
    usage_name = models.CharField(max_length=100)
    display_name = models.CharField(max_length=200, blank=True)
    current_value = models.DecimalField(max_digits=12, decimal_places=2)
    limit = models.DecimalField(max_digits=12, decimal_places=2)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["subscription_id", "region", "usage_name"]
        constraints = [
            models.UniqueConstraint(fields=["subscription_id", "region", "usage_name"], name="one_quota_row")
        ]

    def __str__(self) -> str:
        return f"{self.usage_name} in {self.region}: {self.current_value}/{self.limit}"

    @property
    def available(self) -> Decimal:
        return max(self.limit - self.current_value, Decimal(0))


class Price(models.Model):
    """USD prices in force from `valid_from`: per 1M tokens, or per PTU-hour for provisioned SKUs."""

    model_name = models.CharField(max_length=60, blank=True, help_text="Empty: every model (PTU pools).")
    model_version = models.CharField(max_length=30, blank=True)
    sku = models.CharField(max_length=30)
    input_per_million = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    cached_input_per_million = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    output_per_million = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    ptu_per_hour = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    valid_from = models.DateField()
    source = models.TextField(blank=True, help_text="Where the figure comes from.")

    class Meta:
        ordering = ["model_name", "model_version", "sku", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_name", "model_version", "sku", "valid_from"], name="one_price_per_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_name or 'any model'} {self.model_version} {self.sku} from {self.valid_from}"


class LeftoverResource(models.Model):
    """Something in a landing zone's resource group that holds quota (or one of the region's
    account slots) while no Switchyard deployment uses it: a deployment Azure failed to create,
    one nobody knows, an account nothing uses, a deleted account not purged. The drift check
    finds them; a platform admin removes them."""

    class Kind(models.TextChoices):
        DEPLOYMENT = "deployment", "Model deployment"
        ACCOUNT = "account", "Azure OpenAI account"
        DELETED_ACCOUNT = "deleted_account", "Deleted account"

    class Reason(models.TextChoices):
        FAILED = "failed", "Failed in Azure"
        UNUSED = "unused", "No Switchyard deployment uses it"
        NOT_PURGED = "not_purged", "Deleted but not purged"

    class State(models.TextChoices):
        FOUND = "found", "Found"
        REMOVING = "removing", "Removing"
        REMOVAL_FAILED = "removal_failed", "Removal failed"

    landing_zone = models.ForeignKey(LandingZone, on_delete=models.CASCADE, related_name="leftovers")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    region = models.CharField(max_length=40)
    account_name = models.CharField(max_length=64)
    deployment_name = models.CharField(max_length=64, blank=True)
    azure_state = models.CharField("state in Azure", max_length=30, blank=True)
    model_name = models.CharField(max_length=60, blank=True)
    model_version = models.CharField(max_length=30, blank=True)
    sku = models.CharField(max_length=30, blank=True)
    capacity = models.PositiveIntegerField(null=True, blank=True)
    purge_scheduled_at = models.DateTimeField(null=True, blank=True)
    deployment = models.ForeignKey(
        ModelDeployment,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="leftovers",
        help_text="The Switchyard deployment it was made for, when there is one.",
    )
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.FOUND)
    error = models.TextField(blank=True)
    # The removal runs as a small provisioning run does: its current step, that step's status
    # and attempts, the token of the message allowed to advance it, and when that step is due.
    step = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=10, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    token = models.CharField(max_length=32, blank=True)
    next_step_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["landing_zone", "region", "account_name", "deployment_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["landing_zone", "kind", "account_name", "deployment_name"], name="one_leftover_row"
            )
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.DEPLOYMENT:
            return f"deployment {self.deployment_name} on {self.account_name}"
        return f"{self.get_kind_display().lower()} {self.account_name}"

    @property
    def is_provisioned_sku(self) -> bool:
        return self.sku.endswith("ProvisionedManaged")

    @property
    def holds(self) -> str:
        """What it keeps from others in its region, in the units quota is counted in."""
        if self.kind == self.Kind.DEPLOYMENT:
            unit = "PTU" if self.is_provisioned_sku else "K TPM"
            amount = f"{self.capacity}{unit}" if self.capacity is not None else "Its capacity"
            return f"{amount} of {self.model_name or 'its model'} ({self.sku or 'its SKU'})"
        if self.kind == self.Kind.ACCOUNT:
            return "One of the region's Azure OpenAI accounts"
        return "Its deployments' quota and its name, until it is purged"

    def snapshot(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "landing_zone": self.landing_zone_id,
            "region": self.region,
            "account": self.account_name,
            "deployment": self.deployment_name,
            "azure_state": self.azure_state,
            "holds": self.holds,
            "state": self.state,
            "error": self.error,
        }


class SearchService(models.Model):
    """A landing zone's Azure AI Search service (Microsoft.Search/searchServices) and the
    embeddings deployment beside it: what grounded assistants retrieve from. The engine makes
    both when the zone's first data set needs them; every data set of the zone shares them."""

    class State(models.TextChoices):
        PROVISIONING = "provisioning", "Provisioning"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Failed"

    landing_zone = models.OneToOneField(LandingZone, on_delete=models.PROTECT, related_name="search_service")
    name = models.CharField(max_length=60, unique=True, help_text="The Azure resource name.")
    location = models.CharField(max_length=40)
    sku = models.CharField(max_length=20, default="basic")
    resource_id = models.CharField(max_length=400, blank=True)
    endpoint = models.URLField(blank=True)
    index_name = models.CharField(max_length=128, default="passages")
    embeddings_deployment = models.ForeignKey(
        ModelDeployment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="search_services",
        help_text="The text-embedding deployment that embeds this service's passages and questions.",
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PROVISIONING)
    status_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    provisioned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["landing_zone__name"]

    def __str__(self) -> str:
        return self.name


class SearchStorage(models.Model):
    """What one data set held in a search service's index on a day (its passages' text and
    vectors): the service's hourly price is split across data sets, and so departments, by it.
    Written by grounding after each ingestion and removal and once a day; the data set is named
    by id because data sets live above this layer."""

    service = models.ForeignKey(SearchService, on_delete=models.PROTECT, related_name="storage_days")
    data_set_id = models.PositiveBigIntegerField()
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    stored_bytes = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["day", "data_set_id"]
        constraints = [
            models.UniqueConstraint(fields=["service", "data_set_id", "day"], name="one_storage_row_per_day")
        ]
        indexes = [models.Index(fields=["service", "day"], name="search_storage_by_day")]

    def __str__(self) -> str:
        return f"data set {self.data_set_id} on {self.day}: {self.stored_bytes} bytes"


class ProvisioningOperation(models.Model):
    """One step of a provisioning run, with its attempts, timings and error."""

    class Step(models.TextChoices):
        ENSURE_ACCOUNT = "ensure_account", "Ensure account"
        ENSURE_CONTENT_FILTER = "ensure_content_filter", "Ensure content filter"
        GRANT_ROLE = "grant_role", "Grant data-plane access"
        ENSURE_DEPLOYMENT = "ensure_deployment", "Ensure deployment"
        CHANGE_CAPACITY = "change_capacity", "Change capacity"
        DELETE_DEPLOYMENT = "delete_deployment", "Delete deployment"
        DELETE_ACCOUNT = "delete_account", "Delete account"
        PURGE_ACCOUNT = "purge_account", "Purge account"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for Azure"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    deployment = models.ForeignKey(ModelDeployment, on_delete=models.CASCADE, related_name="operations")
    run = models.PositiveIntegerField(default=1)
    step = models.CharField(max_length=30, choices=Step.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    attempt = models.PositiveSmallIntegerField(default=1)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "run", "step"], name="one_operation_per_step_and_run"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_step_display()} ({self.get_status_display()})"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
