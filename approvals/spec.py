"""What a request asks for, typed, and the rules it must meet now: one place for the form (while
the lead types, and when it is saved) and for submission, which checks the request again against
the catalog, quota, deployments, grants and budget as they are at that moment."""

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from approvals.estimates import Estimate, monthly_cost_estimate
from approvals.models import (
    MAX_CAPACITY,
    MAX_MONTHLY_ESTIMATE,
    MAX_TOKENS_MILLIONS,
    ApprovalPolicy,
    ApprovalStep,
    DeploymentRequest,
    cap_label,
)
from approvals.policy import PlannedStep, approval_plan
from money.budgets import BudgetStatus, budget_status
from org.models import Department
from provisioning.catalog import catalog_entry_get, catalog_offers, price_in_force, quota_left, region_label
from provisioning.models import (
    AccessGrant,
    CatalogEntry,
    DataClassification,
    LandingZone,
    ModelDeployment,
    Price,
)
from provisioning.spillover import SpilloverPlan, SpilloverRefused, spillover_plan, spillover_twin_of

Kind = DeploymentRequest.Kind
DeploymentState = ModelDeployment.State
WHOLE_REQUEST = "__all__"
REQUIRED = "This field is required."
# The longest text each field keeps (the model's columns, and what approvers will read).
TEXT_LIMITS = {
    "display_name": 120,
    "purpose": 4000,
    "system_prompt": 8000,
    "region": 40,
    "model_name": 60,
    "model_version": 30,
    "sku": 30,
}
REQUIRED_BY_KIND = {
    Kind.NEW_DEPLOYMENT: (
        "purpose",
        "display_name",
        "region",
        "model_name",
        "model_version",
        "sku",
        "capacity",
    ),
    Kind.SHARED_ACCESS: ("purpose", "target"),
    Kind.CAPACITY_CHANGE: ("purpose", "target", "capacity"),
    Kind.DECOMMISSION: ("purpose", "target"),
    Kind.API_KEY: ("purpose",),
    Kind.GROUNDING: ("purpose",),
}

# The fields whose values the weighing checks (capacity, quota, grant, cost, budget) build on.
CHOICE_FIELDS = (
    "target",
    "region",
    "model_name",
    "model_version",
    "sku",
    "capacity",
    "tpm_cap",
    "input_tokens_per_month",
    "output_tokens_per_month",
)

FieldErrors = dict[str, list[str]]


@dataclass(frozen=True)
class RequestSpec:
    """What a request asks for, as its author set it. A request about an existing deployment
    (shared access, capacity change, decommission) takes the model fields from its target."""

    purpose: str = ""
    display_name: str = ""
    system_prompt: str = ""
    data_classification: str = DataClassification.INTERNAL
    private_network: bool = False
    spillover_twin: bool = False
    expires_on: date | None = None
    region: str = ""
    model_name: str = ""
    model_version: str = ""
    sku: str = ""
    capacity: int | None = None
    tpm_cap: int | None = None
    input_tokens_per_month: Decimal = Decimal(0)
    output_tokens_per_month: Decimal = Decimal(0)
    target: ModelDeployment | None = None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in fields(cls))

    @classmethod
    def of(cls, request: DeploymentRequest) -> "RequestSpec":
        """What `request` asks for now."""
        return cls(**{name: getattr(request, name) for name in cls.field_names()})

    @classmethod
    def draft(cls, values: Mapping[str, Any], *, target: ModelDeployment | None) -> "RequestSpec":
        """The request as chosen so far (`values` by field name, as typed), whether or not it is
        valid yet: values that cannot be read (or lie beyond every limit) count as not chosen, so
        the estimate stays sensible."""
        return cls(
            data_classification=str(values.get("data_classification") or DataClassification.INTERNAL),
            region=readable_text(values.get("region"), TEXT_LIMITS["region"]),
            model_name=readable_text(values.get("model_name"), TEXT_LIMITS["model_name"]),
            model_version=readable_text(values.get("model_version"), TEXT_LIMITS["model_version"]),
            sku=readable_text(values.get("sku"), TEXT_LIMITS["sku"]),
            capacity=bounded_int(values.get("capacity")),
            tpm_cap=bounded_int(values.get("tpm_cap")),
            input_tokens_per_month=bounded_millions(values.get("input_tokens_per_month")),
            output_tokens_per_month=bounded_millions(values.get("output_tokens_per_month")),
            spillover_twin=values.get("spillover_twin") in (True, "on", "true", "1"),
            target=target,
        )

    def following_target(self, kind: str) -> "RequestSpec":
        if kind == Kind.NEW_DEPLOYMENT or self.target is None:
            return self
        target = self.target
        return replace(
            self,
            region=target.region,
            model_name=target.model_name,
            model_version=target.model_version,
            sku=target.sku,
        )

    @property
    def uses_tokens(self) -> bool:
        """Token SKUs are priced by expected use; provisioned ones by the hour."""
        return not self.sku.endswith("ProvisionedManaged")


def readable_text(value: Any, limit: int) -> str:
    """A typed-in choice, or "" when it cannot be one (not text, too long, a null character)."""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        return ""
    return value


def bounded_int(value: Any, *, highest: int | None = MAX_CAPACITY) -> int | None:
    """A typed-in whole number from 1 to `highest`, or None."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    if number < 1 or (highest is not None and number > highest):
        return None
    return number


def bounded_millions(value: Any) -> Decimal:
    """Typed-in millions of tokens within every limit, or 0."""
    try:
        millions = Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
    if not millions.is_finite() or not Decimal(0) <= millions <= MAX_TOKENS_MILLIONS:
        return Decimal(0)
    return millions


# What the request would mean now ----------------------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    """What the form shows beside the choices, and submission weighs: bounds, quota left, the
    estimate, the budget, the grant a shared access would change and the approvals it needs."""

    entry: CatalogEntry | None
    quota_left: Decimal | None
    quota_needed: int | None
    estimate: Estimate
    budget: BudgetStatus | None
    approvals: list[PlannedStep]
    grant: AccessGrant | None = None
    # The spillover twin asked for, or why there can be none.
    spillover: SpilloverPlan | None = None
    spillover_refusal: str = ""
    spillover_price: Price | None = None

    @property
    def approved_at_once(self) -> bool:
        return [step.kind for step in self.approvals] == [ApprovalStep.Kind.AUTOMATIC]

    @property
    def spent_after(self) -> Decimal | None:
        return None if self.budget is None else self.budget.spent + self.estimate.monthly_cost

    @property
    def share_after(self) -> Decimal | None:
        if self.budget is None or not self.budget.budget:
            return None
        return (self.budget.spent + self.estimate.monthly_cost) / self.budget.budget * 100

    @property
    def region_label(self) -> str:
        return region_label(self.entry.region) if self.entry else ""

    @property
    def spillover_basis(self) -> str:
        """What the twin costs: nothing a month on its own, tokens only for the calls that spill."""
        if self.spillover is None:
            return ""
        price = self.spillover_price
        if price is None:
            return f"{self.spillover.label}: no price is on record; it costs only the calls that spill over."
        return (
            f"{self.spillover.label}: ${price.input_per_million:.2f} per million input and "
            f"${price.output_per_million:.2f} per million output tokens, only for the calls that spill over."
        )

    @property
    def retirement_passed(self) -> bool:
        retires = self.entry.retirement_date if self.entry else None
        return retires is not None and retires <= timezone.now()

    @property
    def over_budget(self) -> bool:
        return (
            self.budget is not None
            and self.budget.budget > 0
            and self.spent_after is not None
            and (self.spent_after > self.budget.budget)
        )


def eligible_targets(*, kind: str, department: Department | None) -> QuerySet[ModelDeployment]:
    """The deployments a request of `kind` may be about: any active shared service (one the
    department uses already makes the request a change of its grant), or one of the department's
    own dedicated deployments that is active or failed."""
    deployments = ModelDeployment.objects.select_related("department", "landing_zone")
    if department is None or kind == Kind.NEW_DEPLOYMENT:
        return deployments.none()
    if kind == Kind.SHARED_ACCESS:
        return deployments.filter(scope=ModelDeployment.Scope.SHARED, state=DeploymentState.ACTIVE)
    return deployments.filter(
        department=department,
        scope=ModelDeployment.Scope.DEDICATED,
        state__in=[DeploymentState.ACTIVE, DeploymentState.FAILED],
    )


def current_grant(*, department: Department, deployment: ModelDeployment) -> AccessGrant | None:
    return AccessGrant.objects.filter(department=department, deployment=deployment).first()


def grant_state(grant: AccessGrant | None) -> dict[str, Any] | None:
    """A grant as a shared-access request records it when submitted and compares at hand-over."""
    if grant is None:
        return None
    budget_cap = grant.monthly_budget_cap
    return {
        "id": grant.pk,
        "tpm_cap": grant.tpm_cap,
        "monthly_budget_cap": None if budget_cap is None else str(budget_cap),
    }


def grant_label(state: dict[str, Any] | None) -> str:
    """A grant state (`grant_state`) in words: "a grant with 5K TPM", "no grant"."""
    if state is None:
        return "no grant"
    label = f"a grant with {cap_label(state.get('tpm_cap'))}"
    if state.get("monthly_budget_cap") is not None:
        label += f" and a ${Decimal(state['monthly_budget_cap']):,.2f} monthly budget cap"
    return label


def spec_estimate(*, kind: str, spec: RequestSpec, today: date) -> Estimate:
    if kind == Kind.DECOMMISSION:
        return Estimate(Decimal(0), "Decommissioning ends this deployment's cost.")
    if kind == Kind.API_KEY:
        return Estimate(Decimal(0), "A key costs nothing itself: its calls are metered against the budget.")
    if kind == Kind.GROUNDING:
        return Estimate(
            Decimal(0), "Grounded answers are metered like any other: retrieval's tokens included."
        )
    spec = spec.following_target(kind)
    return monthly_cost_estimate(
        model_name=spec.model_name,
        model_version=spec.model_version,
        sku=spec.sku,
        capacity=spec.capacity,
        input_millions=spec.input_tokens_per_month,
        output_millions=spec.output_tokens_per_month,
        on=today,
    )


def request_assessment(
    *, kind: str, department: Department | None, spec: RequestSpec, today: date
) -> Assessment:
    spec = spec.following_target(kind)
    target = spec.target
    zone = target.landing_zone if target is not None else _zone(department)
    entry = None
    if spec.model_name and spec.sku:
        entry = catalog_entry_get(
            region=spec.region, model_name=spec.model_name, model_version=spec.model_version, sku=spec.sku
        )
    left = None
    if entry is not None and zone is not None:
        left = quota_left(
            subscription_id=zone.subscription_id, region=spec.region, usage_name=entry.usage_name
        )
    needed = spec.capacity
    if needed is not None and target is not None and kind == Kind.CAPACITY_CHANGE:
        needed = needed - target.capacity if target.state == DeploymentState.ACTIVE else needed
    estimate = spec_estimate(kind=kind, spec=spec, today=today)
    budget = budget_status(department=department, on=today) if department else None
    grant = None
    if kind == Kind.SHARED_ACCESS and department is not None and target is not None:
        grant = current_grant(department=department, deployment=target)
    # The approvals the policy would ask for if it were submitted now, so the lead knows.
    draft = DeploymentRequest(
        kind=kind,
        sku=spec.sku,
        capacity=spec.capacity,
        tpm_cap=spec.tpm_cap,
        data_classification=spec.data_classification,
        estimated_monthly_cost=estimate.monthly_cost,
        grant_at_submission=grant_state(grant),
    )
    approvals = approval_plan(
        request=draft,
        policy=ApprovalPolicy.current(),
        budget_left=max(budget.budget - budget.spent, Decimal(0)) if budget else Decimal(0),
    )
    spillover, refusal, price = _spillover(kind, spec, zone, today)
    return Assessment(
        entry=entry,
        quota_left=left,
        quota_needed=needed,
        estimate=estimate,
        budget=budget,
        approvals=approvals,
        grant=grant,
        spillover=spillover,
        spillover_refusal=refusal,
        spillover_price=price,
    )


SPILLOVER_KINDS = {Kind.NEW_DEPLOYMENT, Kind.CAPACITY_CHANGE}


def _spillover(
    kind: str, spec: RequestSpec, zone: LandingZone | None, today: date
) -> tuple[SpilloverPlan | None, str, Price | None]:
    """The twin the request asks for (with its price), or why there can be none."""
    if not spec.spillover_twin:
        return None, "", None
    if kind not in SPILLOVER_KINDS:
        return None, "Only a new deployment or a capacity change can ask for a spillover twin.", None
    target = spec.target
    if kind == Kind.CAPACITY_CHANGE and target is not None:
        twin = spillover_twin_of(target)
        if twin is not None:
            return None, f"{target.display_name} already spills over to {twin.display_name}.", None
    try:
        plan = spillover_plan(
            region=spec.region,
            model_name=spec.model_name,
            model_version=spec.model_version,
            sku=spec.sku,
            subscription_id=zone.subscription_id if zone else None,
        )
    except SpilloverRefused as refusal:
        return None, str(refusal), None
    price = price_in_force(
        model_name=spec.model_name, model_version=spec.model_version, sku=plan.sku, on=today
    )
    return plan, "", price


def _zone(department: Department | None) -> LandingZone | None:
    return LandingZone.for_department(department) if department is not None else None


# The rules --------------------------------------------------------------------------------------


def request_spec_errors(*, kind: str, department: Department, spec: RequestSpec, today: date) -> FieldErrors:
    """Every rule the request breaks now, by field. The checks that weigh a choice (capacity,
    quota, the grant, cost and budget) run only once the choices themselves are sound, so the
    lead reads the message that matters rather than a cascade."""
    spec = spec.following_target(kind)
    errors: FieldErrors = {}
    _check_values(errors, kind, spec, today)
    if spec.target is not None:
        _check_target(errors, kind, department, spec.target)
    if kind == Kind.NEW_DEPLOYMENT and not _choices_broken(errors):
        _check_offer(errors, department, spec)
    if _choices_broken(errors):
        return errors
    assessment = request_assessment(kind=kind, department=department, spec=spec, today=today)
    if kind in {Kind.NEW_DEPLOYMENT, Kind.CAPACITY_CHANGE}:
        _check_capacity(errors, spec, assessment)
    if kind == Kind.SHARED_ACCESS:
        _check_grant_change(errors, department, spec, assessment)
    if assessment.spillover_refusal:
        _add(errors, "spillover_twin", assessment.spillover_refusal)
    # Nothing to weigh for a key: its calls are admitted against the budget one by one.
    if kind not in {Kind.DECOMMISSION, Kind.API_KEY, Kind.GROUNDING} and not _choices_broken(errors):
        _check_cost(errors, spec, assessment)
    return errors


def _choices_broken(errors: FieldErrors) -> bool:
    return any(name in errors for name in (*CHOICE_FIELDS, WHOLE_REQUEST))


def _add(errors: FieldErrors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def spec_bounds_errors(spec: RequestSpec) -> FieldErrors:
    """The limits every saved request keeps, draft or not: lengths, choices and amounts that fit
    their columns."""
    errors: FieldErrors = {}
    for name, limit in TEXT_LIMITS.items():
        text = getattr(spec, name)
        if len(text) > limit:
            _add(errors, name, f"Ensure this value has at most {limit} characters (it has {len(text)}).")
        elif "\x00" in text:
            _add(errors, name, "Null characters are not allowed.")
    if spec.data_classification not in DataClassification.values:
        _add(errors, "data_classification", "Select a valid choice.")
    for name in ("capacity", "tpm_cap"):
        amount = getattr(spec, name)
        if amount is not None and not 1 <= amount <= MAX_CAPACITY:
            _add(errors, name, f"Ensure this value is between 1 and {MAX_CAPACITY:,}.")
    for name in ("input_tokens_per_month", "output_tokens_per_month"):
        tokens = getattr(spec, name)
        if not (tokens.is_finite() and Decimal(0) <= tokens <= MAX_TOKENS_MILLIONS):
            _add(errors, name, f"Ensure this value is between 0 and {MAX_TOKENS_MILLIONS:,} (millions).")
    return errors


def estimate_errors(spec: RequestSpec, cost: Decimal) -> FieldErrors:
    if cost <= MAX_MONTHLY_ESTIMATE:
        return {}
    field = "input_tokens_per_month" if spec.uses_tokens else "capacity"
    return {
        field: [f"An estimate of ${cost:,.2f} a month is more than Switchyard can record; check the amounts."]
    }


def _check_values(errors: FieldErrors, kind: str, spec: RequestSpec, today: date) -> None:
    for name in REQUIRED_BY_KIND[Kind(kind)]:
        if getattr(spec, name) in (None, ""):
            _add(errors, name, REQUIRED)
    for name, messages in spec_bounds_errors(spec).items():
        errors.setdefault(name, []).extend(messages)
    if spec.expires_on is not None and spec.expires_on <= today:
        _add(errors, "expires_on", "The expiry date must be in the future.")


def _check_target(errors: FieldErrors, kind: str, department: Department, target: ModelDeployment) -> None:
    if eligible_targets(kind=kind, department=department).filter(pk=target.pk).exists():
        return
    state = target.get_state_display().lower()
    if kind == Kind.SHARED_ACCESS:
        if target.scope != ModelDeployment.Scope.SHARED:
            _add(errors, "target", f"{target.display_name} is not a shared service.")
        else:
            _add(
                errors,
                "target",
                f"{target.display_name} is {state}: only an active shared service can be used.",
            )
    elif target.department_id != department.pk or target.scope != ModelDeployment.Scope.DEDICATED:
        _add(
            errors,
            "target",
            f"{target.display_name} is not one of {department.name}'s dedicated deployments.",
        )
    else:
        action = "resized" if kind == Kind.CAPACITY_CHANGE else "decommissioned"
        _add(errors, "target", f"{target.display_name} is {state}: it cannot be {action} now.")


def _check_offer(errors: FieldErrors, department: Department, spec: RequestSpec) -> None:
    """The model, version and SKU must be on offer in an allowed region of the department's
    landing zone, per the synced catalog."""
    zone = LandingZone.for_department(department)
    if zone is None:
        _add(
            errors,
            WHOLE_REQUEST,
            f"{department.name} has no landing zone to deploy into. A platform admin adds one.",
        )
        return
    region, model, version, sku = spec.region, spec.model_name, spec.model_version, spec.sku
    where = region_label(region)
    if region not in zone.allowed_regions:
        _add(errors, "region", f"{zone.name} does not allow {where}.")
        return
    offers = list(catalog_offers(regions=[region]))
    if not offers:
        # Before the very first catalog sync nothing can be checked, and the approvers decide
        # (requests can be seeded before it); once any catalog exists, an empty region is a no.
        if CatalogEntry.objects.exists():
            _add(errors, "region", f"The synced catalog offers no model in {where}.")
        return
    if not any(o.model_name == model for o in offers):
        _add(errors, "model_name", f"{model} is not offered in {where}.")
    elif not any(o.model_name == model and o.model_version == version for o in offers):
        _add(errors, "model_version", f"{model} {version} is not offered in {where}.")
    elif not any((o.model_name, o.model_version, o.sku) == (model, version, sku) for o in offers):
        _add(errors, "sku", f"{model} {version} is not offered as {sku} in {where}.")


def _check_capacity(errors: FieldErrors, spec: RequestSpec, assessment: Assessment) -> None:
    capacity, entry, target = spec.capacity, assessment.entry, spec.target
    if capacity is None:
        return
    unit = "K TPM" if spec.uses_tokens else "PTU"
    if entry is not None:
        lowest, step, highest = entry.capacity_minimum, entry.capacity_step or 1, entry.capacity_maximum
        if capacity < lowest or (highest is not None and capacity > highest):
            bounds = f"{lowest} to {highest} {unit}" if highest else f"at least {lowest} {unit}"
            _add(errors, "capacity", f"Capacity for this model and SKU is {bounds}.")
            return
        if capacity % step:
            _add(
                errors,
                "capacity",
                f"Capacity moves in steps of {step} {unit}: try {capacity - capacity % step or step}.",
            )
            return
    if target is not None and capacity == target.capacity and target.state == DeploymentState.ACTIVE:
        _add(errors, "capacity", f"{target.display_name} already has {target.capacity_label}.")
        return
    needed, left = assessment.quota_needed, assessment.quota_left
    if needed is not None and left is not None and needed > left:
        _add(
            errors,
            "capacity",
            f"{region_label(spec.region)} has {left.normalize():f} {unit} of {spec.model_name} "
            f"({spec.sku}) left in this subscription; this asks for {needed} {unit} more.",
        )


def _check_grant_change(
    errors: FieldErrors, department: Department, spec: RequestSpec, assessment: Assessment
) -> None:
    grant, target = assessment.grant, spec.target
    if grant is not None and target is not None and grant.tpm_cap == spec.tpm_cap:
        _add(
            errors,
            "tpm_cap",
            f"{department.name} already uses {target.display_name} with {cap_label(grant.tpm_cap)}: "
            "ask for a different cap.",
        )


def _check_cost(errors: FieldErrors, spec: RequestSpec, assessment: Assessment) -> None:
    cost = assessment.estimate.monthly_cost
    too_much = estimate_errors(spec, cost)
    if too_much:
        errors.update(too_much)
        return
    budget = assessment.budget
    if budget is not None and assessment.over_budget:
        _add(
            errors,
            "input_tokens_per_month" if spec.uses_tokens else "capacity",
            f"This would exceed {budget.department.name}'s monthly budget: "
            f"${budget.spent:,.2f} spent this month + about ${cost:,.2f} "
            f"a month for this request is more than ${budget.budget:,.2f}.",
        )
