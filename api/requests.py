"""Deployment requests: what the request pages do, for scripts (ITSM tools, infrastructure code).

Nothing here decides anything of its own. Reading goes through `approvals.access` (another
department's request is a 404, a plain member gets a 403); input is checked by the request form
itself (`DeploymentRequestForm`, fed the JSON body as a browser would post it), so a script reads
the same messages next to the same fields as a lead on the page; every change is the service call
the page makes (`approvals.services`), so the audit trail, the notifications and the hand-over to
provisioning are the same.

A refusal becomes a problem: 403 when it is about who asks (the page's role checks, and four
eyes on a decision), 409 when it is about the request's state, and 400 with `errors` by field when
the body fits the document but the request form refuses it (a field its kind does not take, one
it needs, a model the catalog does not offer here, more than the quota or the budget leaves). A
422 stays what it is everywhere in the API: a body that does not fit the document at all. The
line matters to a script: a 422 is a bug in the script, a 400 something to show to its user, as
the page shows it next to the field."""

from dataclasses import asdict
from typing import Any, Literal

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.urls import reverse
from ninja import Query, Router, Status

from api.conditional import require_match, tagged
from api.pagination import Page, PageParams, page_of
from api.params import Id, user_of
from api.problems import MEDIA_TYPE, FieldErrors, Problem, refused
from api.request_schemas import (
    ApprovalOut,
    CommentIn,
    PersonOut,
    ReasonIn,
    RequestDetailOut,
    RequestFilters,
    RequestIn,
    RequestOut,
    RequestPatch,
    RequiredCommentIn,
    TimelineEntryOut,
)
from api.schemas import Money, utc
from approvals import services
from approvals.access import (
    actions_for,
    get_request_for,
    next_step_for,
    require_author_role,
    require_change_role,
    require_decide_role,
    require_queue_role,
    require_request_role,
    require_retry_role,
)
from approvals.forms import DeploymentRequestForm, posted_value
from approvals.models import ApprovalStep, DeploymentRequest
from approvals.spec import RequestSpec
from approvals.timeline import request_timeline
from org.models import User

router = Router(tags=["requests"])


# What the operations that write a request answer besides the common problems.
WRITE_PROBLEMS = {
    "responses": {
        "400": {
            "description": "The request form refuses it: `errors` says why, field by field, as the form "
            "does next to each field",
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
        "409": {
            "description": "The request's state does not allow this now (the detail says why), or the "
            "Idempotency-Key was used for another request",
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
    }
}

State = DeploymentRequest.State

RequestSort = Literal[
    "created_at", "-created_at", "updated_at", "-updated_at", "estimated_monthly_cost",
    "-estimated_monthly_cost", "id", "-id",
]  # fmt: skip
# Every request in the queue is submitted, so its `submitted_at` is set: a key pagination can use.
QueueSort = Literal[
    "submitted_at", "-submitted_at", "created_at", "-created_at", "estimated_monthly_cost",
    "-estimated_monthly_cost", "id", "-id",
]  # fmt: skip


# Answers -----------------------------------------------------------------------------------------


def _person(user: User | None) -> PersonOut | None:
    return None if user is None else PersonOut(email=user.email, name=user.display_name)


def _request_out(request: DeploymentRequest) -> dict[str, Any]:
    return {
        "id": request.pk,
        "kind": request.kind,
        "state": request.state,
        "state_label": request.get_state_display(),
        "title": request.title,
        "department": request.department.slug,
        "department_name": request.department.name,
        "requester": _person(request.requester),
        "round": request.round,
        "display_name": request.display_name,
        "purpose": request.purpose,
        "system_prompt": request.system_prompt,
        "data_classification": request.data_classification,
        "private_network": request.private_network,
        "expires_on": request.expires_on,
        "region": request.region,
        "model_name": request.model_name,
        "model_version": request.model_version,
        "sku": request.sku,
        "capacity": request.capacity,
        "spillover_twin": request.spillover_twin,
        "tpm_cap": request.tpm_cap,
        "input_tokens_per_month": str(request.input_tokens_per_month),
        "output_tokens_per_month": str(request.output_tokens_per_month),
        "estimated_monthly_cost": Money.of(request.estimated_monthly_cost),
        "target": request.target_id,
        "deployment": request.deployment_id,
        "status_message": request.status_message,
        "created_at": utc(request.created_at),
        "updated_at": utc(request.updated_at),
        "submitted_at": utc(request.submitted_at) if request.submitted_at else None,
        "decided_at": utc(request.decided_at) if request.decided_at else None,
        "finished_at": utc(request.finished_at) if request.finished_at else None,
    }


def _detail(request: DeploymentRequest, user: User) -> RequestDetailOut:
    """The request as its page shows it to `user`, read afresh."""
    fresh = (
        DeploymentRequest.objects.select_related("department", "requester", "target")
        .prefetch_related(
            Prefetch("steps", queryset=ApprovalStep.objects.select_related("decided_by")), "edits"
        )
        .get(pk=request.pk)
    )
    approvals = [
        ApprovalOut(
            round=step.round,
            order=step.order,
            role=step.kind,  # type: ignore[arg-type]
            reason=step.reason,
            state=step.state,  # type: ignore[arg-type]
            decided_by=_person(step.decided_by),
            decided_at=utc(step.decided_at) if step.decided_at else None,
            comment=step.comment,
        )
        for step in fresh.steps.all()
    ]
    timeline = [
        TimelineEntryOut(
            title=entry.title,
            status=entry.status,  # type: ignore[arg-type]
            at=utc(entry.at) if entry.at else None,
            actor=entry.actor,
            detail=entry.detail,
            duration_seconds=entry.duration_seconds,
            changes=list(entry.changes),
            round_edits=list(entry.round_edits),
        )
        for entry in request_timeline(fresh)
    ]
    return RequestDetailOut(
        **_request_out(fresh),
        approvals=approvals,
        timeline=timeline,
        your_actions=actions_for(user, fresh),  # type: ignore[arg-type]
    )


def _page(
    rows: QuerySet[DeploymentRequest], *, order: str, list_name: str, page: PageParams
) -> dict[str, Any]:
    chunk = page_of(
        rows.select_related("department", "requester", "target"),
        order="pk" if order.lstrip("-") == "id" else order,
        list_name=list_name,
        cursor=page.cursor,
        limit=page.limit,
    )
    return {"items": [_request_out(row) for row in chunk.rows], "next_cursor": chunk.next_cursor}


# Input -------------------------------------------------------------------------------------------


def _invalid(errors: FieldErrors) -> Problem:
    fields = ", ".join(sorted(errors))
    return refused(
        f"The request form refuses {fields}: `errors` says why, field by field (`__all__`: the "
        "request as a whole).",
        errors,
        title="The request form refuses it",
    )


def _refuse_fields_of_other_kinds(kind: str, sent: dict[str, Any]) -> None:
    taken = DeploymentRequestForm.FIELDS_BY_KIND[DeploymentRequest.Kind(kind)]
    label = DeploymentRequest.Kind(kind).label
    foreign = sorted(name for name in sent if name not in taken)
    if foreign:
        raise _invalid(
            {name: [f"A request of the kind “{label}” does not take this field."] for name in foreign}
        )


def _valid_form(
    user: User, kind: str, sent: dict[str, Any], *, instance: DeploymentRequest | None = None
) -> DeploymentRequestForm:
    """The request form filled in with `sent` over what `instance` holds (as a browser posts it),
    validated; its errors, by field, as a 400."""
    _refuse_fields_of_other_kinds(kind, {name: value for name, value in sent.items() if name != "department"})
    if instance is not None:
        data = DeploymentRequestForm.data_of(instance)
    else:
        # What the form starts a new request with (internal data, no tokens yet): a browser
        # posts those values when the person leaves them as they are.
        data = QueryDict(mutable=True)
        for name, value in asdict(RequestSpec()).items():
            if posted := posted_value(value):
                data[name] = posted
    for name, value in sent.items():
        if posted := posted_value(value):
            data[name] = posted
        else:
            data.pop(name, None)
    form = DeploymentRequestForm(data, kind=kind, user=user, instance=instance)
    if not form.is_valid():
        raise _invalid(
            {name: [str(message) for message in messages] for name, messages in form.errors.items()}
        )
    return form


def _spec_invalid(invalid: services.RequestSpecInvalid) -> Problem:
    return _invalid(invalid.errors)


# Operations --------------------------------------------------------------------------------------


@router.get("/requests", response=Page[RequestOut], summary="Requests you may see")
def list_requests(
    request: HttpRequest,
    filters: Query[RequestFilters],
    page: Query[PageParams],
    sort: RequestSort = "-created_at",
) -> dict[str, Any]:
    """As the requests page lists them: platform admins and finance approvers see every
    department's requests, a lead those of the departments they lead; a plain member gets a 403.
    Newest first unless `sort` says otherwise. A department you cannot see gives an empty list."""
    user = user_of(request)
    require_request_role(user)
    rows = DeploymentRequest.objects.visible_to(user).matching(
        department_slug=filters.department or "", state=filters.state or "", kind=filters.kind or ""
    )
    if filters.created_after:
        rows = rows.filter(created_at__gte=filters.created_after)
    if filters.created_before:
        rows = rows.filter(created_at__lt=filters.created_before)
    return _page(rows, order=sort, list_name=f"requests?{filters.model_dump_json()}", page=page)


@router.get("/approvals", response=Page[RequestOut], summary="Requests waiting for your approval")
def list_approvals(
    request: HttpRequest, page: Query[PageParams], sort: QueueSort = "submitted_at"
) -> dict[str, Any]:
    """The approval queue: submitted requests with a step you may decide now (not your own, not
    a round you wrote, not a second approval of one you approved). Oldest submission first. For
    platform admins and finance approvers."""
    user = user_of(request)
    require_queue_role(user)
    return _page(DeploymentRequest.objects.awaiting(user), order=sort, list_name="approvals", page=page)


@router.post(
    "/requests",
    response={201: RequestDetailOut},
    summary="Create a draft request",
    url_name="request_create",
    openapi_extra=WRITE_PROBLEMS,
)
def create_request(request: HttpRequest, body: RequestIn, response: HttpResponse) -> Status[Any]:
    """A draft, checked as the request form checks it: the catalog of the department's landing
    zone, quota left, the budget, the deployment it is about. Submit it with
    `POST /requests/{id}/submit`.

    Fields by kind: **new_deployment** `display_name`, `purpose`, `system_prompt`,
    `data_classification`, `private_network`, `expires_on`, `region`, `model_name`,
    `model_version`, `sku`, `capacity`, `spillover_twin`, `input_tokens_per_month`,
    `output_tokens_per_month`; **shared_access** `target` (a shared service), `purpose`,
    `data_classification`, `tpm_cap`, the two token amounts; **capacity_change** `target`,
    `capacity`, `spillover_twin`, `purpose`, the two token amounts; **decommission** `target`,
    `purpose`.

    For department leads (their departments) and platform admins (any). A department you may not
    ask for is refused on `department`, as the form refuses it."""
    user = user_of(request)
    require_author_role(user)
    sent = body.model_dump(exclude_unset=True, exclude={"kind"})
    form = _valid_form(user, body.kind, sent)
    assert form.chosen_department is not None
    try:
        created = services.request_create(
            actor=user, department=form.chosen_department, kind=body.kind, spec=form.spec()
        )
    except services.RequestSpecInvalid as invalid:
        raise _spec_invalid(invalid) from None
    except services.RequestActionRefused as refusal:
        raise Problem(403, str(refusal)) from None
    response["Location"] = reverse("api-v1:request_detail", args=[created.pk])
    return Status(201, tagged(response, _detail(created, user)))


@router.get(
    "/requests/{request_id}", response=RequestDetailOut, summary="One request", url_name="request_detail"
)
def get_request(request: HttpRequest, request_id: Id, response: HttpResponse) -> RequestDetailOut:
    """The request with its approvals (every round's: who decides, why, who decided, when, with
    what comment), its timeline (the audit trail, the provisioning steps, what still waits) and
    what you may do with it now. Its `ETag` goes in `If-Match` of a change."""
    user = user_of(request)
    return tagged(response, _detail(get_request_for(user, request_id), user))  # type: ignore[return-value]


@router.patch(
    "/requests/{request_id}",
    response=RequestDetailOut,
    summary="Change a draft",
    openapi_extra=WRITE_PROBLEMS,
)
def update_request(
    request: HttpRequest, request_id: Id, body: RequestPatch, response: HttpResponse
) -> RequestDetailOut:
    """Change a draft or a request sent back for changes: only the fields sent change, checked
    with the rest as the form checks them (the kind and the department stay). Who wrote it, the
    department's leads and platform admins may; any other state is a 409."""
    user = user_of(request)
    instance = get_request_for(user, request_id)
    require_change_role(user, instance)
    require_match(request, _detail(instance, user))
    if not instance.can_be_edited():
        raise Problem(409, str(services.state_refusal(instance, "edited")))
    form = _valid_form(user, instance.kind, body.model_dump(exclude_unset=True), instance=instance)
    try:
        services.request_update(request=instance, actor=user, spec=form.spec())
    except services.RequestSpecInvalid as invalid:
        raise _spec_invalid(invalid) from None
    except services.RequestActionRefused as refusal:
        raise Problem(409, str(refusal)) from None
    return tagged(response, _detail(instance, user))  # type: ignore[return-value]


def _author_action(
    request: HttpRequest, request_id: int, response: HttpResponse, action: Any
) -> RequestDetailOut:
    user = user_of(request)
    instance = get_request_for(user, request_id)
    require_change_role(user, instance)
    try:
        action(request=instance, actor=user)
    except services.RequestSpecInvalid as invalid:
        raise _spec_invalid(invalid) from None
    except services.RequestActionRefused as refusal:
        raise Problem(409, str(refusal)) from None
    return tagged(response, _detail(instance, user))  # type: ignore[return-value]


@router.post(
    "/requests/{request_id}/submit",
    response=RequestDetailOut,
    summary="Submit for approval",
    openapi_extra=WRITE_PROBLEMS,
)
def submit_request(request: HttpRequest, request_id: Id, response: HttpResponse) -> RequestDetailOut:
    """A draft or a request sent back goes to its approvers, with the approvals the policy asks
    for (a small request may be approved by the policy at once and go on to provisioning). It is
    checked again against the catalog, quota and budget as they are now: what no longer fits is
    refused by field (a 400), and the request stays as it was."""
    return _author_action(request, request_id, response, services.request_submit)


@router.post(
    "/requests/{request_id}/cancel", response=RequestDetailOut, summary="Cancel", openapi_extra=WRITE_PROBLEMS
)
def cancel_request(request: HttpRequest, request_id: Id, response: HttpResponse) -> RequestDetailOut:
    """A draft, a request waiting for approval or one sent back is cancelled; its pending
    approvals are withdrawn. Later states are a 409."""
    return _author_action(request, request_id, response, services.request_cancel)


def _decision(
    request: HttpRequest,
    request_id: int,
    response: HttpResponse,
    decide: Any,
    text_field: str,
    text: str,
    *,
    text_required: bool,
) -> RequestDetailOut:
    user = user_of(request)
    instance = get_request_for(user, request_id)
    require_decide_role(user)
    try:
        decide(instance, user, text)
    except services.RequestActionRefused as refusal:
        if text_required and not text.strip():
            raise _invalid({text_field: [str(refusal)]}) from None
        raise _decision_refused(refusal, user, request_id) from None
    return tagged(response, _detail(instance, user))  # type: ignore[return-value]


def _decision_refused(refusal: services.RequestActionRefused, user: User, request_id: int) -> Problem:
    """409 when the request does not wait for a decision (or not this kind), 403 when it does but
    not from you (your own request, a round you wrote, a second approval of yours, another role's
    step)."""
    fresh = get_request_for(user, request_id)
    if fresh.state == State.SUBMITTED and next_step_for(fresh, user) is None:
        return Problem(403, str(refusal))
    return Problem(409, str(refusal))


@router.post(
    "/requests/{request_id}/approve",
    response=RequestDetailOut,
    summary="Approve",
    openapi_extra=WRITE_PROBLEMS,
)
def approve_request(
    request: HttpRequest, request_id: Id, body: CommentIn, response: HttpResponse
) -> RequestDetailOut:
    """Give the approval step of the request that waits for your role. The last approval hands
    it over to provisioning. Platform admins and finance approvers; nobody decides a request they
    wrote or a round they edited or submitted, and a second approval comes from someone else.
    The body is `{}` or `{"comment": "…"}`."""
    return _decision(
        request,
        request_id,
        response,
        lambda instance, user, comment: services.request_approve(
            request=instance, actor=user, comment=comment
        ),
        "comment",
        body.comment,
        text_required=False,
    )


@router.post(
    "/requests/{request_id}/reject", response=RequestDetailOut, summary="Reject", openapi_extra=WRITE_PROBLEMS
)
def reject_request(
    request: HttpRequest, request_id: Id, body: ReasonIn, response: HttpResponse
) -> RequestDetailOut:
    """Reject the request, with the reason the requester reads. Its other pending approvals are
    withdrawn. Who may: as for approving."""
    return _decision(
        request,
        request_id,
        response,
        lambda instance, user, reason: services.request_reject(request=instance, actor=user, reason=reason),
        "reason",
        body.reason,
        text_required=True,
    )


@router.post(
    "/requests/{request_id}/send-back",
    response=RequestDetailOut,
    summary="Send back for changes",
    openapi_extra=WRITE_PROBLEMS,
)
def send_back_request(
    request: HttpRequest, request_id: Id, body: RequiredCommentIn, response: HttpResponse
) -> RequestDetailOut:
    """Send the request back to its requester with what should change; they edit and submit it
    again, which starts a new round. Who may: as for approving."""
    return _decision(
        request,
        request_id,
        response,
        lambda instance, user, comment: services.request_send_back(
            request=instance, actor=user, comment=comment
        ),
        "comment",
        body.comment,
        text_required=True,
    )


@router.post(
    "/requests/{request_id}/retry",
    response=RequestDetailOut,
    summary="Retry provisioning",
    openapi_extra=WRITE_PROBLEMS,
)
def retry_request(request: HttpRequest, request_id: Id, response: HttpResponse) -> RequestDetailOut:
    """Provisioning of a failed request starts again. For platform admins."""
    user = user_of(request)
    instance = get_request_for(user, request_id)
    require_retry_role(user)
    try:
        services.request_retry(request=instance, actor=user)
    except services.RequestActionRefused as refusal:
        raise Problem(409, str(refusal)) from None
    return tagged(response, _detail(instance, user))  # type: ignore[return-value]
