"""Deployment pages for platform admins, finance approvers and department leads."""

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from base.redirects import same_site_path
from base.tables import SortOrder, is_htmx_for, lifecycle_order, query_with, render_page_or_fragment
from org.models import Department, User
from provisioning import leftovers
from provisioning.access import (
    deployments_visible_to,
    get_deployment_for,
    get_deployment_for_admin,
    get_leftover_for_removal,
    grants_visible_to,
    led_department_ids,
    leftovers_visible_to,
)
from provisioning.calling import entra_audience, gateway_url, how_to_call, key_departments
from provisioning.direct_access import AccessModeRefused, access_mode_set, direct_access_refusal
from provisioning.fallbacks import (
    FallbackRefused,
    fallback_candidates,
    fallback_rows,
    fallbacks_of,
    fallbacks_set,
)
from provisioning.forms import AccessModeForm, FallbacksForm
from provisioning.models import ModelDeployment, ModelDeploymentQuerySet

PAGE_SIZE = 25

SORTS: dict[str, tuple[Any, ...]] = {
    "name": ("display_name",),
    "department": ("department__name", "display_name"),
    "model": ("model_name", "model_version", "display_name"),
    "state": (lifecycle_order(ModelDeployment.State.values), "display_name"),
    "updated": ("updated_at",),
}
DEFAULT_SORT = "name"


class DeploymentFilterForm(forms.Form):
    department = forms.ModelChoiceField(
        queryset=Department.objects.none(),
        to_field_name="slug",
        required=False,
        empty_label="All departments",
    )
    model = forms.ChoiceField(required=False)
    state = forms.ChoiceField(required=False, choices=[("", "Any state"), *ModelDeployment.State.choices])
    # Checkboxes send "yes", so a filtered address reads ?drift=yes.
    drift = forms.BooleanField(
        required=False, label="Drift only", widget=forms.CheckboxInput({"value": "yes"})
    )
    decommissioned = forms.BooleanField(
        required=False, label="Show decommissioned", widget=forms.CheckboxInput({"value": "yes"})
    )

    def __init__(self, data: QueryDict, *, user: User, visible: ModelDeploymentQuerySet) -> None:
        super().__init__(data)
        departments = Department.objects.all()
        if not user.sees_all_departments:
            departments = departments.filter(pk__in=led_department_ids(user))
        self.departments = departments
        self.fields["department"].queryset = departments  # type: ignore[attr-defined]
        model_names = sorted(set(visible.order_by().values_list("model_name", flat=True)))
        self.fields["model"].choices = [("", "All models"), *((name, name) for name in model_names)]  # type: ignore[attr-defined]

    def filter(self, deployments: ModelDeploymentQuerySet) -> ModelDeploymentQuerySet:
        # Invalid values (a stale link, a hand-edited URL) are ignored rather than refused.
        self.is_valid()
        wanted = self.cleaned_data
        return deployments.matching(
            department=wanted.get("department"),
            model_name=wanted.get("model") or "",
            state=wanted.get("state") or "",
            drift_only=bool(wanted.get("drift")),
            with_decommissioned=bool(wanted.get("decommissioned")),
        )

    @property
    def is_filtered(self) -> bool:
        return any(self.cleaned_data.get(name) for name in ("department", "model", "state", "drift"))


@dataclass(frozen=True)
class DriftDifference:
    label: str
    azure: str | None = None
    switchyard: str | None = None
    note: str = ""

    def __str__(self) -> str:
        if self.note:
            return f"{self.label}: {self.note}"
        return f"{self.label}: Azure says {self.azure}, Switchyard says {self.switchyard}"


_DRIFT_LABELS = {
    "state": "State",
    "capacity": "Capacity",
    "model_name": "Model",
    "model_version": "Model version",
    "sku": "SKU",
    "content_filter": "Content filter",
}


def drift_differences(drift: Any) -> list[DriftDifference]:
    """What the drift check recorded (`{"capacity": {"azure": 10, "switchyard": 20}}`, or
    `{"exists": {"azure": false, ...}}` for a deployment deleted behind Switchyard's back), one
    line per field; anything else is shown as written."""
    if not drift:
        return []
    if not isinstance(drift, dict):
        return [DriftDifference("Drift", note=str(drift))]
    differences = []
    for field, value in drift.items():
        label = _DRIFT_LABELS.get(field, field.replace("_", " ").capitalize())
        if field == "exists" and isinstance(value, dict) and not value.get("azure"):
            differences.append(DriftDifference("Deployment", note="Azure has no deployment by this name"))
        elif isinstance(value, dict) and {"azure", "switchyard"} <= value.keys():
            differences.append(
                DriftDifference(label, azure=str(value["azure"]), switchyard=str(value["switchyard"]))
            )
        else:
            differences.append(DriftDifference(label, note=str(value)))
    return differences


@dataclass(frozen=True)
class DeploymentRow:
    deployment: ModelDeployment
    drift: list[DriftDifference]

    @property
    def drift_summary(self) -> str:
        return "; ".join(str(difference) for difference in self.drift)


def deployment_list(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    visible = deployments_visible_to(user)
    form = DeploymentFilterForm(request.GET, user=user, visible=visible)
    sort = SortOrder.parse(request.GET.get("sort"), SORTS, DEFAULT_SORT)
    deployments = (
        form.filter(visible)
        .select_related("department")
        .annotate(grant_count=Count("grants"))
        .order_by(*sort.ordering(), "pk")
    )
    page = Paginator(deployments, PAGE_SIZE).get_page(request.GET.get("page"))
    context: dict[str, object] = {
        "form": form,
        "led_departments": form.departments,
        "page": page,
        "rows": [DeploymentRow(deployment, drift_differences(deployment.drift)) for deployment in page],
        "columns": sort.headers(request.GET),
        "sort": str(sort),
        "has_decommissioned": not page.paginator.count and visible.exists(),
        "leftovers": leftovers_visible_to(user),
        "previous_url": query_with(request.GET, page=str(page.number - 1)) if page.has_previous() else "",
        "next_url": query_with(request.GET, page=str(page.number + 1)) if page.has_next() else "",
    }
    return render_page_or_fragment(
        request, "provisioning/deployment_list.html", context, target="deployment-results"
    )


def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    deployment = get_deployment_for(user, pk)
    operations = list(deployment.operations.all())
    grants = (
        grants_visible_to(user)
        .filter(deployment=deployment)
        .select_related("department")
        .order_by("department__name")
    )
    context: dict[str, Any] = {
        "deployment": deployment,
        "operations": operations,
        "several_runs": len({operation.run for operation in operations}) > 1,
        "has_errors": any(operation.error for operation in operations),
        "grants": grants,
        "grant_count": deployment.grants.count(),
        "drift": drift_differences(deployment.drift),
        "leftovers": deployment.leftovers.all(),
        "in_flight": deployment.state in ModelDeployment.State.in_flight() or deployment.is_cleaning_up,
    }
    if not is_htmx_for(request, "operation-log"):  # the live poll shows the operation log only
        context.update(_gateway_context(request, user, deployment, grants))
    # The poll also refreshes the state badge, status message and Azure facts, so the page is
    # whole once provisioning ends and the poll stops.
    return render_page_or_fragment(
        request, "provisioning/deployment_detail.html", context, target="operation-log", partial="operations"
    )


def _gateway_context(
    request: HttpRequest, user: User, deployment: ModelDeployment, grants: Any
) -> dict[str, Any]:
    """How to call it, its fallbacks and its access mode; the admins' forms to change them."""
    account = deployment.account
    context: dict[str, Any] = {
        "how_to_call": how_to_call(deployment, base_url=gateway_url(request)),
        "key_departments": key_departments(deployment, grants),
        "entra_audience": entra_audience(),
        "fallback_rows": fallback_rows(deployment, seen_by=user),
        "direct_refusal": direct_access_refusal(deployment),
        "role_drift": (account.drift or {}).get("role_assignments", []) if account else [],
    }
    if user.is_platform_admin:
        candidates = fallback_candidates(deployment)
        context["fallbacks_form"] = FallbacksForm(candidates=candidates, current=fallbacks_of(deployment))
        context["refused_candidates"] = [candidate for candidate in candidates if not candidate.eligible]
    return context


@require_POST
def deployment_fallbacks_set(request: HttpRequest, pk: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    deployment = get_deployment_for_admin(user, pk)
    form = FallbacksForm(request.POST, candidates=[], current=[])
    if not form.is_valid():
        messages.error(request, "Choose each fallback from the list.")
        return redirect("deployment_detail", pk=deployment.pk)
    chosen = ModelDeployment.objects.in_bulk(form.chosen_ids())
    if len(chosen) != len(set(form.chosen_ids())):
        messages.error(request, "One of the chosen deployments no longer exists.")
        return redirect("deployment_detail", pk=deployment.pk)
    try:
        chain = fallbacks_set(
            deployment=deployment, fallbacks=[chosen[pk] for pk in form.chosen_ids()], actor=user
        )
    except FallbackRefused as refusal:
        messages.error(request, str(refusal))
    else:
        names = ", then ".join(fallback.display_name for fallback in chain)
        messages.success(
            request,
            f"{deployment.display_name} falls back to {names}."
            if chain
            else f"{deployment.display_name} has no fallbacks.",
        )
    return redirect("deployment_detail", pk=deployment.pk)


@require_POST
def deployment_access_mode_set(request: HttpRequest, pk: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    deployment = get_deployment_for_admin(user, pk)
    form = AccessModeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose through Switchyard only, or direct calls allowed.")
        return redirect("deployment_detail", pk=deployment.pk)
    mode = form.cleaned_data["access_mode"]
    try:
        changed = access_mode_set(deployment=deployment, mode=mode, actor=user)
    except AccessModeRefused as refusal:
        messages.error(request, str(refusal))
        return redirect("deployment_detail", pk=deployment.pk)
    label = ModelDeployment.AccessMode(mode).label
    if not changed:
        messages.info(request, f"{deployment.display_name} is already set to “{label}”.")
    else:
        others = len(changed) - 1
        also = (
            f" (with {others} other deployment{'s' if others != 1 else ''} on its account)"
            if others > 0
            else ""
        )
        messages.success(
            request,
            f"{deployment.display_name}{also}: {label.lower()}. Azure's role assignments follow in a moment.",
        )
    return redirect("deployment_detail", pk=deployment.pk)


@require_POST
def leftover_remove(request: HttpRequest, pk: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    leftover = get_leftover_for_removal(user, pk)
    try:
        leftovers.leftover_remove(leftover=leftover, actor=user)
    except leftovers.LeftoverRemovalRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(
            request, f"Removing the {leftover} from Azure: it leaves this list once Azure no longer has it."
        )
    return HttpResponseRedirect(
        same_site_path(request, request.POST.get("next", ""), default=reverse("deployment_list"))
    )
