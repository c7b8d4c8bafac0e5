"""The request form: choices from the synced catalog, checks against quota and budget."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cached_property
from typing import Any

from django import forms
from django.db.models import Q
from django.utils import timezone

from chat.metering import BudgetStatus, budget_status
from portal.approvals.estimates import Estimate, monthly_cost_estimate
from portal.approvals.models import ApprovalPolicy, ApprovalStep, DataClassification, DeploymentRequest
from portal.approvals.policy import PlannedStep, approval_plan
from portal.org.models import Department, Membership, User
from provisioning.catalog import catalog_offers, quota_left
from provisioning.models import AccessGrant, CatalogEntry, LandingZone, ModelDeployment
from provisioning.services import region_label

Kind = DeploymentRequest.Kind
EXPECTED_USE_HELP = (
    "What the department expects to use in a month, in millions of tokens; it prices the estimate."
)


def departments_for_author(user: User) -> list[Department]:
    if user.is_platform_admin:
        return list(Department.objects.order_by("name"))
    return [m.department for m in user.memberships_with_departments if m.role == Membership.Role.LEAD]


@dataclass(frozen=True)
class Assessment:
    """What the form shows beside the choices: bounds, quota left, the estimate and the budget."""

    entry: CatalogEntry | None
    quota_left: Decimal | None
    quota_needed: int | None
    estimate: Estimate
    budget: BudgetStatus | None
    approvals: list[PlannedStep]

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


class DeploymentRequestForm(forms.Form):
    department = forms.ModelChoiceField(
        queryset=Department.objects.none(), to_field_name="slug", empty_label=None
    )
    target = forms.ModelChoiceField(queryset=ModelDeployment.objects.none(), empty_label="Choose…")
    display_name = forms.CharField(
        label="Name in the chat",
        max_length=120,
        help_text="What employees see, e.g. “Marketing copy assistant”.",
    )
    purpose = forms.CharField(
        label="Purpose and use case",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=4000,
        help_text="What the department will do with it; approvers read this first.",
    )
    system_prompt = forms.CharField(
        required=False,
        max_length=8000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="The flavor: instructions applied to every chat with this assistant.",
    )
    data_classification = forms.ChoiceField(
        choices=DataClassification.choices,
        initial=DataClassification.INTERNAL,
        help_text="The most sensitive data people will paste into it. "
        "Restricted data needs a second approval.",
    )
    private_network = forms.BooleanField(
        required=False,
        label="Private network only",
        help_text="A private endpoint with public network access disabled.",
    )
    expires_on = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. Switchyard warns 14 days ahead and asks to decommission it on that day.",
    )
    # Plain text fields with a select: the catalog checks below explain a choice that does not
    # fit ("gpt-4o is not offered in East US 2") better than "Select a valid choice" would.
    region = forms.CharField(widget=forms.Select)
    model_name = forms.CharField(label="Model", widget=forms.Select)
    model_version = forms.CharField(label="Version", widget=forms.Select)
    sku = forms.CharField(label="SKU", widget=forms.Select)
    capacity = forms.IntegerField(min_value=1, widget=forms.NumberInput(attrs={"inputmode": "numeric"}))
    tpm_cap = forms.IntegerField(
        label="TPM cap (thousands)",
        required=False,
        min_value=1,
        help_text="Optional: the most tokens per minute your department may use of it.",
    )
    input_tokens_per_month = forms.DecimalField(
        label="Input tokens a month (millions)",
        min_value=Decimal(0),
        max_digits=12,
        decimal_places=3,
        initial=Decimal(0),
        required=False,
        help_text=EXPECTED_USE_HELP,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
    )
    output_tokens_per_month = forms.DecimalField(
        label="Output tokens a month (millions)",
        min_value=Decimal(0),
        max_digits=12,
        decimal_places=3,
        initial=Decimal(0),
        required=False,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
    )

    FIELDS_BY_KIND = {
        Kind.NEW_DEPLOYMENT: [
            "department", "display_name", "purpose", "system_prompt", "data_classification",
            "private_network", "expires_on", "region", "model_name", "model_version", "sku", "capacity",
            "input_tokens_per_month", "output_tokens_per_month",
        ],
        Kind.SHARED_ACCESS: [
            "department", "target", "purpose", "data_classification", "tpm_cap",
            "input_tokens_per_month", "output_tokens_per_month",
        ],
        Kind.CAPACITY_CHANGE: [
            "department", "target", "capacity", "purpose",
            "input_tokens_per_month", "output_tokens_per_month",
        ],
        Kind.DECOMMISSION: ["department", "target", "purpose"],
    }  # fmt: skip
    # The choices that depend on each other: a change to one re-renders the rest live.
    SPEC_FIELDS = ("region", "model_name", "model_version", "sku", "capacity", "target")

    def __init__(
        self,
        data: Any = None,
        *,
        kind: str,
        user: User,
        instance: DeploymentRequest | None = None,
        today: date | None = None,
        preview: bool = False,
    ) -> None:
        initial = self._initial_from(instance) if instance else {}
        if preview and data is not None:
            data = data.copy()  # choices that no longer fit the region or model move to the first that does
        super().__init__(data, initial=initial)
        self.preview = preview
        self.kind, self.user, self.instance = kind, user, instance
        self.today = today or timezone.localdate()
        for name in list(self.fields):
            if name not in self.FIELDS_BY_KIND[Kind(kind)]:
                del self.fields[name]
        departments = departments_for_author(user)
        if instance is not None:
            departments = [instance.department]
        self.fields["department"].queryset = Department.objects.filter(  # type: ignore[attr-defined]
            pk__in=[department.pk for department in departments]
        )
        self.single_department = len(departments) == 1
        if self.single_department:
            self.fields["department"].initial = departments[0].slug
        self.chosen_department = self._chosen_department(departments)
        if "target" in self.fields:
            self.fields["target"].queryset = self._targets()  # type: ignore[attr-defined]
            self.fields["target"].label = {
                Kind.SHARED_ACCESS: "Shared service",
                Kind.CAPACITY_CHANGE: "Deployment to resize",
                Kind.DECOMMISSION: "Deployment to decommission",
            }[Kind(kind)]
            self.fields["target"].label_from_instance = self._target_label  # type: ignore[attr-defined]
        if kind == Kind.CAPACITY_CHANGE:
            self.fields["capacity"].label = "New capacity"
        if kind == Kind.DECOMMISSION:
            self.fields["purpose"].label = "Why it can go"
            self.fields["purpose"].help_text = "Approvers check nobody still relies on it."
        if kind == Kind.NEW_DEPLOYMENT:
            self._set_catalog_choices()

    # Choices ---------------------------------------------------------------------------------

    @staticmethod
    def _initial_from(instance: DeploymentRequest) -> dict[str, Any]:
        values = {
            field: getattr(instance, field)
            for field in [
                "display_name", "purpose", "system_prompt", "data_classification", "private_network",
                "expires_on", "region", "model_name", "model_version", "sku", "capacity", "tpm_cap",
                "input_tokens_per_month", "output_tokens_per_month",
            ]
        }  # fmt: skip
        values["department"] = instance.department.slug
        values["target"] = instance.target_id
        return values

    def _chosen_department(self, departments: list[Department]) -> Department | None:
        slug = self.data.get("department") if self.is_bound else self.initial.get("department")
        if slug is None and departments:
            slug = departments[0].slug
        return next((department for department in departments if department.slug == slug), None)

    def value(self, name: str) -> Any:
        """What the field holds now: typed in (bound) or from the request being edited."""
        if name not in self.fields:
            return None
        if not self.is_bound:
            # Not the bound field: it caches its initial value at first use, before the
            # dependent choices below are settled.
            return self.initial.get(name, self.fields[name].initial)
        return self[name].value()

    def _targets(self) -> Any:
        if self.chosen_department is None:
            return ModelDeployment.objects.none()
        deployments = ModelDeployment.objects.select_related("department")
        if self.kind == Kind.SHARED_ACCESS:
            granted = AccessGrant.objects.filter(department=self.chosen_department).values("deployment_id")
            return deployments.filter(
                scope=ModelDeployment.Scope.SHARED, state=ModelDeployment.State.ACTIVE
            ).exclude(pk__in=granted)
        dedicated = deployments.filter(
            department=self.chosen_department, scope=ModelDeployment.Scope.DEDICATED
        )
        if self.kind == Kind.CAPACITY_CHANGE:
            return dedicated.filter(state__in=[ModelDeployment.State.ACTIVE, ModelDeployment.State.FAILED])
        return dedicated.filter(Q(state=ModelDeployment.State.ACTIVE) | Q(state=ModelDeployment.State.FAILED))

    def _target_label(self, deployment: ModelDeployment) -> str:
        return f"{deployment.display_name} · {deployment.model_name} · {deployment.capacity_label}"

    @property
    def landing_zone(self) -> LandingZone | None:
        return LandingZone.for_department(self.chosen_department) if self.chosen_department else None

    def _set_catalog_choices(self) -> None:
        zone = self.landing_zone
        regions = list(zone.allowed_regions) if zone else []
        # Retired versions stay on offer: Azure keeps serving them a while, and the form warns instead.
        self.offers = list(catalog_offers(regions=regions))
        offered_regions = [region for region in regions if any(o.region == region for o in self.offers)]
        self.catalog_missing = not self.offers
        region = self._pick("region", offered_regions or regions, "")
        in_region = [o for o in self.offers if o.region == region]
        models = sorted({o.model_name for o in in_region})
        model = self._pick("model_name", models, "gpt-4o-mini")
        versions = sorted({o.model_version for o in in_region if o.model_name == model}, reverse=True)
        version = self._pick("model_version", versions, "")
        skus = sorted({o.sku for o in in_region if o.model_name == model and o.model_version == version})
        sku = self._pick("sku", skus, "GlobalStandard")
        labels = dict(ModelDeployment.Sku.choices)
        self._set_choices("region", region, [(r, region_label(r)) for r in (offered_regions or regions)], "")
        self._set_choices("model_name", model, [(m, m) for m in models], "No model offered here")
        self._set_choices("model_version", version, [(v, v) for v in versions], "—")
        self._set_choices("sku", sku, [(s, labels.get(s, s)) for s in skus], "—")
        entry = next(
            (o for o in in_region if (o.model_name, o.model_version, o.sku) == (model, version, sku)), None
        )
        provisioned = sku.endswith("ProvisionedManaged")
        self.fields["capacity"].label = "Capacity (PTU)" if provisioned else "Capacity (K TPM)"
        self.fields["capacity"].help_text = (
            "Provisioned throughput units, billed by the hour whether used or not."
            if provisioned
            else "Thousands of tokens per minute; the deployment's rate limit."
        )
        if entry is not None:
            self.fields["capacity"].widget.attrs.update(
                min=entry.capacity_minimum, step=entry.capacity_step or 1, max=entry.capacity_maximum or ""
            )
            if not self.is_bound and entry.capacity_default:
                self.initial.setdefault("capacity", min(entry.capacity_default, 20))

    def _set_choices(self, name: str, chosen: str, choices: list[tuple[str, str]], empty: str) -> None:
        """The select's options; a submitted value that does not fit stays selected, marked, so
        the person sees what they chose next to the message that explains it."""
        if chosen and chosen not in {value for value, _ in choices}:
            choices = [(chosen, f"{chosen} (not available)"), *choices]
        self.fields[name].widget.choices = choices or [("", empty)]

    def _pick(self, name: str, options: list[str], preferred: str) -> str:
        """The value of a dependent choice: as typed when it fits (or when the person submits, so
        the check can explain it), else the preferred or first option."""
        current = self.value(name)
        if current and (current in options or (self.is_bound and not self.preview)):
            return str(current)
        chosen = preferred if preferred in options else (options[0] if options else "")
        if self.is_bound:
            # The preview works on a copy of the submitted data (see __init__).
            self.data[name] = chosen  # type: ignore[index]
        else:
            self.initial[name] = chosen
        return chosen

    # What the choices mean -------------------------------------------------------------------

    # Cached: the submitted data is settled once __init__ is done, and the checks, the view and
    # the template all ask (each asking would repeat the catalog, quota and budget queries).
    @cached_property
    def _spec(self) -> dict[str, Any]:
        """The model, SKU and capacity as chosen so far, whether or not they are valid yet."""
        target = self._target_value()
        source: dict[str, Any] = {}
        if target is not None:
            source = {
                "region": target.region,
                "model_name": target.model_name,
                "model_version": target.model_version,
                "sku": target.sku,
            }
        else:
            source = {
                name: self.value(name) or "" for name in ("region", "model_name", "model_version", "sku")
            }
        source["capacity"] = _as_int(self.value("capacity"))
        source["target"] = target
        return source

    def _target_value(self) -> ModelDeployment | None:
        if "target" not in self.fields:
            return None
        raw = self.value("target")
        if raw in (None, ""):
            return None
        try:
            target: ModelDeployment | None = self.fields["target"].queryset.filter(pk=int(raw)).first()  # type: ignore[attr-defined]
            return target
        except (TypeError, ValueError):
            return None

    @cached_property
    def assessment(self) -> Assessment:
        spec = self._spec
        target = spec["target"]
        zone = target.landing_zone if target is not None else self.landing_zone
        entry = None
        if spec["model_name"] and spec["sku"]:
            entry = CatalogEntry.objects.filter(
                region=spec["region"],
                model_name=spec["model_name"],
                model_version=spec["model_version"],
                sku=spec["sku"],
            ).first()
        left = None
        if entry is not None and zone is not None:
            left = quota_left(
                subscription_id=zone.subscription_id, region=spec["region"], usage_name=entry.usage_name
            )
        needed = spec["capacity"]
        if needed is not None and target is not None and self.kind == Kind.CAPACITY_CHANGE:
            needed = needed - target.capacity if target.state == ModelDeployment.State.ACTIVE else needed
        estimate = Estimate(Decimal(0), "Decommissioning ends this deployment's cost.")
        if self.kind != Kind.DECOMMISSION:
            estimate = monthly_cost_estimate(
                model_name=spec["model_name"],
                model_version=spec["model_version"],
                sku=spec["sku"],
                capacity=spec["capacity"],
                input_millions=_as_decimal(self.value("input_tokens_per_month")),
                output_millions=_as_decimal(self.value("output_tokens_per_month")),
                on=self.today,
            )
        budget = (
            budget_status(department=self.chosen_department, on=self.today)
            if self.chosen_department
            else None
        )
        # The approvals the policy would ask for if it were submitted now, so the lead knows.
        draft = DeploymentRequest(
            kind=self.kind,
            sku=spec["sku"],
            capacity=spec["capacity"],
            data_classification=self.value("data_classification") or DataClassification.INTERNAL,
            estimated_monthly_cost=estimate.monthly_cost,
        )
        approvals = approval_plan(
            request=draft,
            policy=ApprovalPolicy.current(),
            budget_left=max(budget.budget - budget.spent, Decimal(0)) if budget else Decimal(0),
        )
        return Assessment(
            entry=entry,
            quota_left=left,
            quota_needed=needed,
            estimate=estimate,
            budget=budget,
            approvals=approvals,
        )

    @property
    def uses_tokens(self) -> bool:
        """Token SKUs are priced by expected use; provisioned ones by the hour."""
        return not str(self._spec["sku"]).endswith("ProvisionedManaged")

    # Validation ------------------------------------------------------------------------------

    def clean_expires_on(self) -> date | None:
        expires_on: date | None = self.cleaned_data.get("expires_on")
        if expires_on is not None and expires_on <= self.today:
            raise forms.ValidationError("The expiry date must be in the future.")
        return expires_on

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in ("input_tokens_per_month", "output_tokens_per_month"):
            if name in self.fields and cleaned.get(name) is None and name not in self.errors:
                cleaned[name] = Decimal(0)
        if self.kind == Kind.NEW_DEPLOYMENT:
            self._check_offer(cleaned)
        if self.kind in {Kind.NEW_DEPLOYMENT, Kind.CAPACITY_CHANGE} and not self.errors:
            self._check_capacity(cleaned)
        if self.kind != Kind.DECOMMISSION and not self.errors:
            self._check_budget()
        return cleaned

    def _check_offer(self, cleaned: dict[str, Any]) -> None:
        if self.catalog_missing:
            raise forms.ValidationError(
                "The model catalog for this landing zone has not been synced yet, so nothing can be "
                "checked. A platform admin can sync it from Administration → Catalog entries."
            )
        region, model = cleaned.get("region"), cleaned.get("model_name")
        version, sku = cleaned.get("model_version"), cleaned.get("sku")
        zone = self.landing_zone
        if region and zone is not None and region not in zone.allowed_regions:
            self.add_error("region", f"{zone.name} does not allow {region_label(region)}.")
            return
        offers = [o for o in self.offers if o.region == region]
        if model and not any(o.model_name == model for o in offers):
            self.add_error("model_name", f"{model} is not offered in {region_label(region or '')}.")
        elif version and not any(o.model_name == model and o.model_version == version for o in offers):
            self.add_error(
                "model_version", f"{model} {version} is not offered in {region_label(region or '')}."
            )
        elif sku and not any(
            o.model_name == model and o.model_version == version and o.sku == sku for o in offers
        ):
            self.add_error(
                "sku", f"{model} {version} is not offered as {sku} in {region_label(region or '')}."
            )

    def _check_capacity(self, cleaned: dict[str, Any]) -> None:
        capacity = cleaned.get("capacity")
        if capacity is None:
            return
        assessment = self.assessment
        entry = assessment.entry
        unit = "PTU" if not self.uses_tokens else "K TPM"
        if entry is not None:
            lowest, step = entry.capacity_minimum, entry.capacity_step or 1
            highest = entry.capacity_maximum
            if capacity < lowest or (highest is not None and capacity > highest):
                bounds = f"{lowest} to {highest} {unit}" if highest else f"at least {lowest} {unit}"
                self.add_error("capacity", f"Capacity for this model and SKU is {bounds}.")
                return
            if capacity % step:
                self.add_error(
                    "capacity",
                    f"Capacity moves in steps of {step} {unit}: try {capacity - capacity % step or step}.",
                )
                return
        target = cleaned.get("target")
        if (
            target is not None
            and capacity == target.capacity
            and target.state == ModelDeployment.State.ACTIVE
        ):
            self.add_error("capacity", f"{target.display_name} already has {target.capacity_label}.")
            return
        needed, left = assessment.quota_needed, assessment.quota_left
        if needed is not None and left is not None and needed > left:
            spec = self._spec
            self.add_error(
                "capacity",
                f"{region_label(spec['region'])} has {left.normalize():f} {unit} of {spec['model_name']} "
                f"({spec['sku']}) left in this subscription; this asks for {needed} {unit} more.",
            )

    def _check_budget(self) -> None:
        assessment = self.assessment
        if not assessment.over_budget or assessment.budget is None:
            return
        budget = assessment.budget
        field = "input_tokens_per_month" if self.uses_tokens else "capacity"
        if field not in self.fields:
            field = "target"
        self.add_error(
            field,
            f"This would exceed {budget.department.name}'s monthly budget: "
            f"${budget.spent:,.2f} spent this month + about ${assessment.estimate.monthly_cost:,.2f} "
            f"a month for this request is more than ${budget.budget:,.2f}.",
        )

    def spec(self) -> dict[str, Any]:
        """The cleaned values the services take."""
        values = {name: value for name, value in self.cleaned_data.items() if name != "department"}
        return values

    def preview_errors(self) -> dict[str, list[str]]:
        """Errors worth showing while the person is still choosing: not "this field is required"."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {
            name: [str(error) for error in errors]
            for name, errors in self.errors.items()
            if name in (*self.SPEC_FIELDS, "input_tokens_per_month", "output_tokens_per_month", "__all__")
            and self.value(name if name != "__all__" else "region") not in (None, "")
            and not any(error == forms.Field.default_error_messages["required"] for error in errors)
        }


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_decimal(value: Any) -> Decimal:
    try:
        return max(Decimal(str(value)), Decimal(0)) if value not in (None, "") else Decimal(0)
    except ArithmeticError:
        return Decimal(0)
