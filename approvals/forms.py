"""The request form: choices from the synced catalog, the estimate beside them, and the rules of
`approvals.spec` (the ones submission checks again) with each message next to its field."""

from dataclasses import replace
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from django import forms
from django.http import QueryDict
from django.utils import timezone

from approvals.models import (
    MAX_CAPACITY,
    MAX_TOKENS_MILLIONS,
    DataClassification,
    DeploymentRequest,
    cap_label,
)
from approvals.spec import (
    TEXT_LIMITS,
    WHOLE_REQUEST,
    Assessment,
    FieldErrors,
    RequestSpec,
    eligible_targets,
    request_assessment,
    request_spec_errors,
)
from org.models import Department, Membership, User
from provisioning.catalog import catalog_offers, region_label
from provisioning.models import AccessGrant, LandingZone, ModelDeployment

Kind = DeploymentRequest.Kind
EXPECTED_USE_HELP = (
    "What the department expects to use in a month, in millions of tokens; it prices the estimate."
)


def departments_for_author(user: User) -> list[Department]:
    if user.is_platform_admin:
        return list(Department.objects.order_by("name"))
    return [m.department for m in user.memberships_with_departments if m.role == Membership.Role.LEAD]


class DeploymentRequestForm(forms.Form):
    department = forms.ModelChoiceField(
        queryset=Department.objects.none(), to_field_name="slug", empty_label=None
    )
    target = forms.ModelChoiceField(queryset=ModelDeployment.objects.none(), empty_label="Choose…")
    display_name = forms.CharField(
        label="Name in the chat",
        max_length=TEXT_LIMITS["display_name"],
        help_text="What employees see, e.g. “Marketing copy assistant”.",
    )
    purpose = forms.CharField(
        label="Purpose and use case",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=TEXT_LIMITS["purpose"],
        help_text="What the department will do with it; approvers read this first.",
    )
    system_prompt = forms.CharField(
        required=False,
        max_length=TEXT_LIMITS["system_prompt"],
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
    region = forms.CharField(max_length=TEXT_LIMITS["region"], widget=forms.Select)
    model_name = forms.CharField(label="Model", max_length=TEXT_LIMITS["model_name"], widget=forms.Select)
    model_version = forms.CharField(
        label="Version", max_length=TEXT_LIMITS["model_version"], widget=forms.Select
    )
    sku = forms.CharField(label="SKU", max_length=TEXT_LIMITS["sku"], widget=forms.Select)
    capacity = forms.IntegerField(
        min_value=1, max_value=MAX_CAPACITY, widget=forms.NumberInput(attrs={"inputmode": "numeric"})
    )
    tpm_cap = forms.IntegerField(
        label="TPM cap (thousands)",
        required=False,
        min_value=1,
        max_value=MAX_CAPACITY,
        help_text="Optional: the most tokens per minute your department may use of it.",
    )
    input_tokens_per_month = forms.DecimalField(
        label="Input tokens a month (millions)",
        min_value=Decimal(0),
        max_value=MAX_TOKENS_MILLIONS,
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
        max_value=MAX_TOKENS_MILLIONS,
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
            self._set_targets()
        if kind == Kind.CAPACITY_CHANGE:
            self.fields["capacity"].label = "New capacity"
        if kind == Kind.DECOMMISSION:
            self.fields["purpose"].label = "Why it can go"
            self.fields["purpose"].help_text = "Approvers check nobody still relies on it."
        if kind == Kind.NEW_DEPLOYMENT:
            self._set_catalog_choices()

    @classmethod
    def resubmission(cls, instance: DeploymentRequest, *, user: User) -> "DeploymentRequestForm":
        """The request's saved values as if typed in again, so the checks mark each field that
        no longer fits."""
        data = QueryDict(mutable=True)
        for name, value in cls._initial_from(instance).items():
            if value is True:
                data[name] = "on"
            elif value not in (None, False):
                data[name] = value.isoformat() if isinstance(value, date) else str(value)
        return cls(data, kind=instance.kind, user=user, instance=instance)

    # Choices ---------------------------------------------------------------------------------

    @staticmethod
    def _initial_from(instance: DeploymentRequest) -> dict[str, Any]:
        values: dict[str, Any] = {
            name: getattr(instance, name) for name in RequestSpec.field_names() if name != "target"
        }
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

    def _set_targets(self) -> None:
        targets = eligible_targets(kind=self.kind, department=self.chosen_department)
        if self.instance is not None and self.instance.target_id is not None:
            # The deployment a saved request is about stays choosable, so that a check can say
            # why it no longer fits rather than "Select a valid choice".
            targets = targets | ModelDeployment.objects.filter(pk=self.instance.target_id)
        self._granted: dict[int, int | None] = {}
        if self.kind == Kind.SHARED_ACCESS and self.chosen_department is not None:
            self._granted = dict(
                AccessGrant.objects.filter(department=self.chosen_department).values_list(
                    "deployment_id", "tpm_cap"
                )
            )
        field = self.fields["target"]
        field.queryset = targets.distinct()  # type: ignore[attr-defined]
        field.label = {
            Kind.SHARED_ACCESS: "Shared service",
            Kind.CAPACITY_CHANGE: "Deployment to resize",
            Kind.DECOMMISSION: "Deployment to decommission",
        }[Kind(self.kind)]
        field.label_from_instance = self._target_label  # type: ignore[attr-defined]

    def _target_label(self, deployment: ModelDeployment) -> str:
        label = f"{deployment.display_name} · {deployment.model_name} · {deployment.capacity_label}"
        if deployment.pk in self._granted:
            label += f" (in use, cap {cap_label(self._granted[deployment.pk])})"
        return label

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
        """The value of a dependent choice: as typed when it fits or when the person submits (so
        the check can explain it, or say it is missing), else the preferred or first option."""
        current = self.value(name)
        if self.is_bound and not self.preview:
            return _text(current, TEXT_LIMITS[name])
        if current and current in options:
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
    def draft_spec(self) -> RequestSpec:
        """The request as chosen so far, whether or not it is valid yet: values that cannot be
        read (or lie beyond every limit) count as not chosen, so the estimate stays sensible."""
        return RequestSpec(
            data_classification=str(self.value("data_classification") or DataClassification.INTERNAL),
            region=_text(self.value("region"), TEXT_LIMITS["region"]),
            model_name=_text(self.value("model_name"), TEXT_LIMITS["model_name"]),
            model_version=_text(self.value("model_version"), TEXT_LIMITS["model_version"]),
            sku=_text(self.value("sku"), TEXT_LIMITS["sku"]),
            capacity=_bounded_int(self.value("capacity")),
            tpm_cap=_bounded_int(self.value("tpm_cap")),
            input_tokens_per_month=_bounded_millions(self.value("input_tokens_per_month")),
            output_tokens_per_month=_bounded_millions(self.value("output_tokens_per_month")),
            target=self._target_value(),
        ).following_target(self.kind)

    def _target_value(self) -> ModelDeployment | None:
        if "target" not in self.fields:
            return None
        pk = _bounded_int(self.value("target"), highest=None)
        if pk is None:
            return None
        target: ModelDeployment | None = self.fields["target"].queryset.filter(pk=pk).first()  # type: ignore[attr-defined]
        return target

    @cached_property
    def assessment(self) -> Assessment:
        return request_assessment(
            kind=self.kind, department=self.chosen_department, spec=self.draft_spec, today=self.today
        )

    @property
    def uses_tokens(self) -> bool:
        """Token SKUs are priced by expected use; provisioned ones by the hour."""
        return self.draft_spec.uses_tokens

    # Validation ------------------------------------------------------------------------------

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in ("input_tokens_per_month", "output_tokens_per_month"):
            if name in self.fields and cleaned.get(name) is None and name not in self.errors:
                cleaned[name] = Decimal(0)
        if self.kind == Kind.NEW_DEPLOYMENT and self.catalog_missing:
            raise forms.ValidationError(
                "The model catalog for this landing zone has not been synced yet, so nothing can be "
                "checked. A platform admin can sync it from Administration → Catalog entries."
            )
        if self.chosen_department is not None:
            self.add_rule_errors(
                request_spec_errors(
                    kind=self.kind, department=self.chosen_department, spec=self.spec(), today=self.today
                )
            )
        return cleaned

    def add_rule_errors(self, errors: FieldErrors) -> None:
        """The rules' messages next to their fields; a field that already has a message (it could
        not be read, say) keeps that one."""
        for name, messages in errors.items():
            field: str | None = name
            if name == WHOLE_REQUEST:
                field = None
            elif name not in self.fields:
                field = "target" if "target" in self.fields else None
            if field is not None and field in self.errors:
                continue
            for message in messages:
                self.add_error(field, message)

    def spec(self) -> RequestSpec:
        """The cleaned values, typed, as the services take them. What this kind of form does not
        ask (a decommission's data classification, say) stays as the request being edited has it."""
        base = RequestSpec.of(self.instance) if self.instance is not None else RequestSpec()
        cleaned = self.cleaned_data
        return replace(base, **{name: cleaned[name] for name in RequestSpec.field_names() if name in cleaned})

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


def _text(value: Any, limit: int) -> str:
    """A typed-in choice, or "" when it cannot be one (not text, too long, a null character)."""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        return ""
    return value


def _bounded_int(value: Any, *, highest: int | None = MAX_CAPACITY) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    if number < 1 or (highest is not None and number > highest):
        return None
    return number


def _bounded_millions(value: Any) -> Decimal:
    try:
        millions = Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
    if not millions.is_finite() or not Decimal(0) <= millions <= MAX_TOKENS_MILLIONS:
        return Decimal(0)
    return millions
