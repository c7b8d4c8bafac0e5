"""Emails about requests: approvers when something waits for them, the requester on every
decision and when provisioning ends, leads before a deployment expires. Sent after the commit of
the change they announce; a mail server that is down is logged and never undoes a decision."""

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse

from approvals.access import owner_left
from approvals.models import ApprovalStep, DeploymentRequest, RequestEdit
from base.text import one_line
from org.models import PlatformGroup, User

logger = logging.getLogger(__name__)


def _send(
    request: DeploymentRequest, recipients: Iterable[User], subject: str, template: str, **context: object
) -> None:
    addresses = sorted({user.email for user in recipients if user.email and user.is_active})
    if not addresses:
        return
    body = render_to_string(
        f"approvals/email/{template}.txt",
        {
            "request": request,
            "url": settings.SITE_URL.rstrip("/") + reverse("approvals:request_detail", args=[request.pk]),
            **context,
        },
    )
    # Names in a subject may hold a line break, which would make it an invalid header: the mail
    # would not go out at all.
    subject = f"[Switchyard] {one_line(subject)}"

    def deliver() -> None:
        try:
            send_mail(subject, body, None, addresses)
        except Exception:  # any transport failure: the decision stands, the log says who missed mail
            logger.exception("Could not email %s about request %s", addresses, request.pk)

    transaction.on_commit(deliver)


def approvers_for(request: DeploymentRequest) -> list[User]:
    """Everyone who may decide a pending step of the current round."""
    steps = request.steps.filter(round=request.round, state=ApprovalStep.State.PENDING)
    groups = set()
    assignees = set()
    for step in steps.select_related("assignee"):
        kind = step.kind
        if kind == ApprovalStep.Kind.DATA_OWNER and owner_left(request, step):
            groups.add(PlatformGroup.ADMINS)  # they decide in the owner's place
        elif kind == ApprovalStep.Kind.DATA_OWNER:
            assignees.add(step.assignee_id)  # the data set's owner, by name
        else:
            groups.add(PlatformGroup.ADMINS if kind == ApprovalStep.Kind.PLATFORM else PlatformGroup.FINANCE)
    if not groups and not assignees:
        return []
    already = request.steps.filter(round=request.round, state=ApprovalStep.State.APPROVED).values(
        "decided_by"
    )
    condition = Q(groups__name__in=[group.value for group in groups]) | Q(pk__in=assignees)
    if PlatformGroup.ADMINS in groups:
        condition |= Q(is_superuser=True)
    # Nobody who wrote this round may decide it: they are not asked to.
    writers = (
        RequestEdit.objects.filter(request=request, round=request.round).exclude(actor=None).values("actor")
    )
    return list(
        User.objects.filter(condition, is_active=True)
        .exclude(pk=request.requester_id or 0)
        .exclude(pk__in=already)
        .exclude(pk__in=writers)
        .distinct()
    )


def waiting_for_approval(request: DeploymentRequest) -> None:
    _send(
        request,
        approvers_for(request),
        f"Waiting for your approval: {request.title} ({request.department.name})",
        "waiting",
    )


def decision(request: DeploymentRequest, *, actor: User, verb: str, comment: str, final: bool) -> None:
    if request.requester is None:
        return
    _send(
        request,
        [request.requester],
        f"Request #{request.pk} {verb}: {request.title}",
        "decision",
        actor=actor,
        verb=verb,
        comment=comment,
        final=final,
    )


def finished(request: DeploymentRequest) -> None:
    recipients = [request.requester] if request.requester else list(request.department.leads())
    verb = "completed" if request.state == DeploymentRequest.State.COMPLETED else "failed"
    _send(request, recipients, f"Request #{request.pk} {verb}: {request.title}", "finished", verb=verb)


def expiry_warning(request: DeploymentRequest) -> None:
    recipients = list(request.department.leads())
    if request.requester:
        recipients.append(request.requester)
    _send(request, recipients, f"{request.title} expires on {request.expires_on:%d %b %Y}", "expiry")
