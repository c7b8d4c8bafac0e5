"""Request pages: the lead's requests and form, the request page with its live timeline, and the
approvers' queue."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import prefetch_related_objects
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from approvals import services
from approvals.access import (
    departments_for_author,
    get_grounding_for_removal,
    get_request_for,
    may_change,
    next_step_for,
    require_author_role,
    require_change_role,
    require_decide_role,
    require_queue_role,
    require_request_role,
    require_retry_role,
)
from approvals.forms import DeploymentRequestForm, GroundingAskForm
from approvals.models import DeploymentRequest
from approvals.rounds import describe_edit, round_records, wrote_round
from approvals.spec import current_grant, grant_label, grant_state
from approvals.timeline import request_timeline
from base.redirects import same_site_path
from base.tables import SortOrder, lifecycle_order, query_with, render_page_or_fragment
from grounding.grounding_services import (
    GroundingRefused,
    data_sets_for_grounding,
    grounding_remove,
    grounding_request,
    may_ground,
    not_yours_to_ground,
)
from grounding.models import Grounding
from org.models import Department, User
from provisioning.access import get_deployment_for
from provisioning.models import DataClassification

PAGE_SIZE = 25
Kind = DeploymentRequest.Kind
State = DeploymentRequest.State

SORTS: dict[str, tuple[Any, ...]] = {
    "number": ("pk",),
    "title": ("display_name", "pk"),
    "department": ("department__name", "pk"),
    "state": (lifecycle_order(State.values), "pk"),
    "cost": ("estimated_monthly_cost", "pk"),
    "submitted": ("submitted_at", "pk"),
}
KIND_INTROS = {
    Kind.NEW_DEPLOYMENT: "A dedicated deployment for your department, in its own landing zone.",
    Kind.SHARED_ACCESS: "Use a shared service that central IT runs; your department pays for its share.",
    Kind.CAPACITY_CHANGE: "More (or less) throughput for one of your department's deployments.",
    Kind.DECOMMISSION: "Delete a deployment your department no longer needs; its cost stops.",
}


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


class RequestFilterForm(forms.Form):
    department = forms.ModelChoiceField(
        queryset=Department.objects.none(),
        to_field_name="slug",
        required=False,
        empty_label="All departments",
    )
    state = forms.ChoiceField(required=False, choices=[("", "Any state"), ("open", "Open"), *State.choices])
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *Kind.choices])

    def __init__(self, data: QueryDict, *, user: User) -> None:
        super().__init__(data)
        departments = Department.objects.all()
        if not user.sees_all_departments:
            departments = departments.filter(pk__in=[d.pk for d in departments_for_author(user)])
        self.fields["department"].queryset = departments  # type: ignore[attr-defined]

    def filter(self, requests: Any) -> Any:
        self.is_valid()  # a stale or hand-edited value is ignored, not refused
        wanted = self.cleaned_data
        department = wanted.get("department")
        return requests.matching(
            department_slug=department.slug if department else "",
            state=wanted.get("state") or "",
            kind=wanted.get("kind") or "",
        )

    @property
    def is_filtered(self) -> bool:
        return any(self.cleaned_data.get(name) for name in ("department", "state", "kind"))


def _paged_table(request: HttpRequest, rows: Any, *, default_sort: str) -> dict[str, Any]:
    sort = SortOrder.parse(request.GET.get("sort"), SORTS, default_sort)
    page = Paginator(rows.order_by(*sort.ordering()), PAGE_SIZE).get_page(request.GET.get("page"))
    return {
        "page": page,
        "columns": sort.headers(request.GET),
        "previous_url": query_with(request.GET, page=str(page.number - 1)) if page.has_previous() else "",
        "next_url": query_with(request.GET, page=str(page.number + 1)) if page.has_next() else "",
    }


def request_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_request_role(user)
    visible = DeploymentRequest.objects.visible_to(user).select_related("department", "requester", "target")
    form = RequestFilterForm(request.GET, user=user)
    context: dict[str, Any] = {
        "form": form,
        "has_any": visible.exists(),
        "may_request": bool(departments_for_author(user)),
        **_paged_table(request, form.filter(visible), default_sort="-number"),
    }
    return render_page_or_fragment(request, "approvals/request_list.html", context, target="request-results")


def approval_queue(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_queue_role(user)
    waiting = DeploymentRequest.objects.awaiting(user).select_related(
        "department", "requester", "target__department", "grounding__data_set__department"
    )
    context = {
        "waiting_total": waiting.count(),
        # A data owner who decides only their data sets' groundings is not told about the rest.
        "others_open": DeploymentRequest.objects.filter(state=State.SUBMITTED)
        .exclude(pk__in=waiting.values("pk"))
        .count()
        if user.is_platform_admin or user.is_finance_approver
        else 0,
        **_paged_table(request, waiting, default_sort="submitted"),
    }
    return render_page_or_fragment(request, "approvals/approval_queue.html", context, target="queue-results")


def _kind_from(request: HttpRequest) -> str:
    kind = request.GET.get("kind") or request.POST.get("kind") or Kind.NEW_DEPLOYMENT
    return kind if kind in Kind.on_the_form() else Kind.NEW_DEPLOYMENT


def request_new(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_author_role(user)
    kind = _kind_from(request)
    form = DeploymentRequestForm(request.POST if request.method == "POST" else None, kind=kind, user=user)

    def create(submit: bool) -> DeploymentRequest:
        assert form.chosen_department is not None
        return services.request_create(
            actor=user, department=form.chosen_department, kind=kind, spec=form.spec(), submit=submit
        )

    return _save_or_render(request, form, create, instance=None)


def request_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    instance = get_request_for(user, pk)
    require_change_role(user, instance)
    if not instance.can_be_edited():
        messages.error(request, str(services.state_refusal(instance, "edited")))
        return redirect("approvals:request_detail", instance.pk)
    data = request.POST if request.method == "POST" else None
    form = DeploymentRequestForm(data, kind=instance.kind, user=user, instance=instance)

    def update(submit: bool) -> DeploymentRequest:
        return services.request_update(request=instance, actor=user, spec=form.spec(), submit=submit)

    return _save_or_render(request, form, update, instance=instance)


def _save_or_render(
    request: HttpRequest,
    form: DeploymentRequestForm,
    save: Callable[[bool], DeploymentRequest],
    *,
    instance: DeploymentRequest | None,
) -> HttpResponse:
    """Save a valid form (as a draft or submitted, as the button says) and go to the request;
    otherwise show the form again with every message and everything typed."""
    if form.is_bound and form.is_valid():
        try:
            saved = save(request.POST.get("action") != "draft")
        except services.RequestSpecInvalid as invalid:
            form.add_rule_errors(invalid.errors)
        except services.RequestActionRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            messages.success(request, _created_message(saved))
            return redirect("approvals:request_detail", saved.pk)
    return _render_form(request, form, kind=form.kind, instance=instance)


def _request_pk(value: str) -> int:
    """A request number from a form field; anything else names no request (404)."""
    # A number of more than 18 digits is no row's (and past 4,300 Python refuses to read it).
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise Http404("No such request.")
    return int(value)


@require_POST
def request_preview(request: HttpRequest) -> HttpResponse:
    """The live part of the form: dependent choices, quota left, the estimate and the budget."""
    user = _user(request)
    require_author_role(user)
    instance = None
    if request.POST.get("request"):
        instance = get_request_for(user, _request_pk(request.POST["request"]))
    form = DeploymentRequestForm(
        request.POST, kind=_kind_from(request), user=user, instance=instance, preview=True
    )
    return render(
        request,
        "approvals/request_form.html#spec",
        {
            "form": form,
            "assessment": form.assessment,
            "live_errors": form.preview_errors(),
            "kind": form.kind,
        },
    )


def _render_form(
    request: HttpRequest, form: DeploymentRequestForm, *, kind: str, instance: DeploymentRequest | None
) -> HttpResponse:
    context = {
        "form": form,
        "kind": kind,
        "kinds": [(kind.value, kind.label, KIND_INTROS[kind]) for kind in Kind.on_the_form()]
        if instance is None
        else [],
        "kind_label": Kind(kind).label,
        "kind_intro": KIND_INTROS[Kind(kind)],
        "instance": instance,
        "assessment": form.assessment,
        "live_errors": {},
        "classifications": DataClassification.choices,
    }
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "approvals/request_form.html", context, status=status)


def _created_message(created: DeploymentRequest) -> str:
    if created.state == State.DRAFT:
        return f"Request #{created.pk} is saved as a draft. Submit it when it is ready."
    if created.state in {State.PROVISIONING, State.COMPLETED}:
        return f"Request #{created.pk} was approved by policy and is on its way."
    return f"Request #{created.pk} is submitted; the approvers have been told."


def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_detail(request, get_request_for(_user(request), pk))


def _render_detail(
    request: HttpRequest, deployment_request: DeploymentRequest, *, comment: str = "", status: int = 200
) -> HttpResponse:
    user = _user(request)
    # One read of the steps serves the page and `next_step_for`.
    prefetch_related_objects([deployment_request], "steps__decided_by", "edits__actor")
    steps = list(deployment_request.steps.all())
    context = {
        "req": deployment_request,
        "timeline": request_timeline(deployment_request),
        "steps": [step for step in steps if step.round == deployment_request.round],
        "earlier_steps": [step for step in steps if step.round != deployment_request.round],
        "round_edits": [describe_edit(record) for record in round_records(deployment_request)],
        "grant_changed": _grant_changed(deployment_request),
        "step_to_decide": next_step_for(deployment_request, user),
        "wrote_round": wrote_round(deployment_request, user),
        "is_own": deployment_request.requester_id == user.pk,
        "may_author": may_change(user, deployment_request),
        # Seconds between looks while something may change: quickly while provisioning runs,
        # slowly while the request waits for a person.
        "live": 2
        if deployment_request.in_flight
        else (10 if deployment_request.state == State.SUBMITTED else 0),
        "comment": comment,
    }
    # The poll also refreshes the state badge, the approvals and the actions, so the page is
    # whole when the request settles and the poll stops.
    return render_page_or_fragment(
        request,
        "approvals/request_detail.html",
        context,
        target="request-live",
        partial="live",
        status=status,
    )


def _grant_changed(deployment_request: DeploymentRequest) -> str:
    """For a shared access waiting for a decision: the department's grant as it is now, when it
    is no longer what was submitted (hand-over would then fail the request)."""
    target = deployment_request.target
    if (
        deployment_request.kind != Kind.SHARED_ACCESS
        or target is None
        or deployment_request.state != State.SUBMITTED
    ):
        return ""
    now = grant_state(current_grant(department=deployment_request.department, deployment=target))
    return "" if now == deployment_request.grant_at_submission else grant_label(now)


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("reject", "Reject"), ("send_back", "Send back")]
    )
    comment = forms.CharField(required=False, max_length=4000, strip=False)


@require_POST
def request_decide(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    deployment_request = get_request_for(user, pk)
    require_decide_role(user, deployment_request)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        if "decision" in form.errors:
            messages.error(request, "Choose approve, reject or send back.")
            return redirect("approvals:request_detail", pk)
        messages.error(
            request,
            f"The comment cannot be saved: {' '.join(str(error) for error in form.errors['comment'])}",
        )
        return _render_detail(
            request, deployment_request, comment=request.POST.get("comment", ""), status=400
        )
    decision, comment = form.cleaned_data["decision"], form.cleaned_data["comment"]
    actions = {
        "approve": lambda: services.request_approve(request=deployment_request, actor=user, comment=comment),
        "reject": lambda: services.request_reject(request=deployment_request, actor=user, reason=comment),
        "send_back": lambda: services.request_send_back(
            request=deployment_request, actor=user, comment=comment
        ),
    }
    try:
        decided = actions[decision]()
    except services.RequestActionRefused as refusal:
        # Back to the page with the comment still in the box, so nothing typed is lost.
        messages.error(request, str(refusal))
        return _render_detail(request, get_request_for(user, pk), comment=comment, status=400)
    verbs = {"approve": "approved", "reject": "rejected", "send_back": "sent back to the requester"}
    messages.success(request, f"Request #{decided.pk} {verbs[decision]}.")
    return redirect("approvals:request_detail", pk)


def _simple_action(request: HttpRequest, pk: int, action: Any, done: str) -> HttpResponse:
    user = _user(request)
    deployment_request = get_request_for(user, pk)
    try:
        action(request=deployment_request, actor=user)
    except services.RequestActionRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, done.format(pk=pk))
    return redirect("approvals:request_detail", pk)


@require_POST
def request_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _simple_action(request, pk, services.request_cancel, "Request #{pk} is cancelled.")


@require_POST
def request_submit(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    deployment_request = get_request_for(user, pk)
    try:
        services.request_submit(request=deployment_request, actor=user)
    except services.RequestSpecInvalid:
        # The draft stays as saved; the form shows it with each message next to its field.
        form = DeploymentRequestForm.resubmission(deployment_request, user=user)
        form.is_valid()
        messages.error(
            request,
            f"Request #{pk} no longer fits what is on offer, the quota or the budget now: "
            "change what is marked and submit it again.",
        )
        return _render_form(request, form, kind=deployment_request.kind, instance=deployment_request)
    except services.RequestActionRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, f"Request #{pk} is submitted.")
    return redirect("approvals:request_detail", pk)


@require_POST
def request_retry(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    if not user.is_platform_admin:
        get_request_for(user, pk)  # another department's request is still a 404 first
        require_retry_role(user)
    return _simple_action(request, pk, services.request_retry, "Request #{pk}: provisioning starts again.")


# Grounding an assistant on a data set (from the assistant's page) ------------------------------------


@require_POST
def grounding_ask(request: HttpRequest, deployment_id: int) -> HttpResponse:
    user = _user(request)
    deployment = get_deployment_for(user, deployment_id)
    if not may_ground(user, deployment):
        raise PermissionDenied(not_yours_to_ground(deployment))
    form = GroundingAskForm(request.POST, data_sets=data_sets_for_grounding(deployment, user))
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(str(error) for error in errors))
        return redirect(_groundings_url(deployment.pk))
    try:
        grounding = grounding_request(
            deployment=deployment,
            data_set=form.cleaned_data["data_set"],
            purpose=form.cleaned_data["purpose"],
            actor=user,
        )
    except GroundingRefused as refusal:
        messages.error(request, str(refusal))
    else:
        if grounding.state == Grounding.State.ACTIVE:
            messages.success(
                request,
                f"{deployment.display_name} answers from {grounding.data_set.name} from the next question on "
                "(you own the data set, so the policy approved it).",
            )
        else:
            messages.success(
                request,
                f"Asked {grounding.data_set.owner.display_name} to approve grounding "
                f"{deployment.display_name} on {grounding.data_set.name}.",
            )
    return redirect(_groundings_url(deployment.pk))


@require_POST
def grounding_remove_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    grounding = get_grounding_for_removal(user, pk)
    try:
        removed = grounding_remove(grounding=grounding, actor=user)
    except GroundingRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(
            request,
            f"{removed.deployment.display_name} no longer answers from {removed.data_set.name}: "
            "it takes effect on the next question.",
        )
    try:
        back = _groundings_url(get_deployment_for(user, grounding.deployment_id).pk)
    except (Http404, PermissionDenied):
        # The data set's owner need not see the assistant's page: back to their approvals.
        back = reverse("approvals:approval_queue")
    return HttpResponseRedirect(same_site_path(request, request.POST.get("next", ""), default=back))


def _groundings_url(deployment_id: int) -> str:
    return reverse("deployment_detail", args=[deployment_id]) + "#groundings"
