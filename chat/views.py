"""Chat views: the page, starting a conversation, the streamed answers, and the sidebar's
rename, delete, search and export. Every conversation is fetched through the access helper (via
`conversation_for_view`), so another person's is a 404 even by URL."""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.db import IntegrityError, OperationalError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from base.text import one_line
from calls.database import database_job
from calls.observe import call_minutes_flush_soon
from chat import services
from chat.grounded import grounded_answer_stream
from chat.models import Conversation
from chat.services import ChatInputError, conversation_cost
from chat.streaming import answer_stream, refusal_events
from chat.turns import Refusal, Turn, chat_turn_prepare
from grounding.retrieval import grounded_data_set_names
from money.budgets import budget_status
from org.models import Department, User
from provisioning.models import ModelDeployment

logger = logging.getLogger(__name__)

SIDEBAR_CONVERSATIONS = 50
NOT_FOUND = "This conversation does not exist or is not yours."


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # LoginRequiredMiddleware lets no one else in
    return user


def _page_context(request: HttpRequest, conversation: Conversation | None) -> dict[str, Any]:
    user = _user(request)
    deployments = list(
        ModelDeployment.objects.usable_by(user).select_related("account").order_by("display_name")
    )
    paying_departments = {deployment.pk: deployment.paying_departments(user) for deployment in deployments}
    grounded_on = grounded_data_set_names(deployments)
    payer: Department | None
    if conversation is not None:
        payer = conversation.department
    else:
        payer = next((payers[0] for payers in paying_departments.values() if payers), None)
    chat_messages = list(conversation.messages.all()) if conversation is not None else []
    query = _search_query(request)
    return {
        "deployments": deployments,
        # Each assistant with the data sets it answers from (none: from the model alone).
        "assistant_choices": [(deployment, grounded_on.get(deployment.pk, [])) for deployment in deployments],
        "paying_departments": paying_departments,
        "conversations": list(
            services.conversations_for(user=user, session=request.session, query=query)[
                :SIDEBAR_CONVERSATIONS
            ]
        ),
        "conversation": conversation,
        # Not `messages`: that name belongs to Django's flash messages, which base.html shows.
        "chat_messages": chat_messages,
        "conversation_cost": conversation_cost(conversation=conversation)
        if conversation is not None
        else None,
        "budget": budget_status(department=payer) if payer is not None else None,
        "retention_label": payer.retention_label if payer is not None else "",
        "query": query,
    }


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/chat.html", _page_context(request, None))


@require_GET
def conversation_detail(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    conversation = services.conversation_for_view(
        user=_user(request), conversation_id=conversation_id, session=request.session
    )
    return render(request, "chat/chat.html", _page_context(request, conversation))


@require_POST
def start(request: HttpRequest) -> JsonResponse:
    try:
        conversation = services.conversation_start(
            user=_user(request),
            deployment_id=request.POST.get("deployment", ""),
            department_id=request.POST.get("department") or None,
            session=request.session,
        )
    except ChatInputError as error:
        return JsonResponse({"error": error.message}, status=error.status)
    return JsonResponse(
        {
            "id": str(conversation.pk),
            "url": reverse("chat:conversation", args=[conversation.pk]),
            "stream_url": reverse("chat:stream", args=[conversation.pk]),
            "regenerate_url": reverse("chat:regenerate", args=[conversation.pk]),
        },
        status=201,
    )


def _event_stream(
    prepared: Turn | Refusal, events: AsyncIterator[bytes] | None = None
) -> StreamingHttpResponse:
    if events is None:
        events = refusal_events(prepared) if isinstance(prepared, Refusal) else answer_stream(prepared)
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a buffering proxy would hold the answer back
    return response


def _prepare_signed_in(
    request: HttpRequest, conversation_id: UUID, content: str | None
) -> Turn | Refusal | None:
    """The turn's database work before the model call, the sign-in check included: one job."""
    user = request.user  # reads the session and the user here, not on the event loop
    if not isinstance(user, User):
        return None
    return chat_turn_prepare(
        user=user, conversation_id=conversation_id, content=content, session=request.session
    )


async def _answer(request: HttpRequest, conversation_id: UUID, content: str | None) -> HttpResponseBase:
    try:
        prepared = await database_job(_prepare_signed_in, request, conversation_id, content)
    except Http404:
        return JsonResponse({"error": NOT_FOUND}, status=404)
    except ChatInputError as error:
        return JsonResponse({"error": error.message}, status=error.status)
    except IntegrityError:
        # Deleted (in another tab, or by retention) since the turn's checks were remembered.
        return JsonResponse({"error": NOT_FOUND}, status=404)
    except OperationalError:
        # The database is overloaded (SQLite's write lock): nothing was saved, the page keeps the text.
        logger.exception("Could not prepare a chat turn for conversation %s", conversation_id)
        return JsonResponse(
            {"error": "The chat is very busy right now. Try again in a few seconds."}, status=503
        )
    if prepared is None:
        return redirect_to_login(request.get_full_path())
    if isinstance(prepared, Refusal):
        call_minutes_flush_soon()  # the refused call's minute, off this request's path
    if isinstance(prepared, Turn) and prepared.grounded is not None:
        # The assistant's documents are searched before the call (chat.grounded).
        return _event_stream(prepared, await grounded_answer_stream(prepared))
    response = _event_stream(prepared)
    if isinstance(prepared, Turn):
        # The call to Azure is under way (`answer_stream`): let it go out now, before this
        # response makes its way back through the middleware.
        await asyncio.sleep(0)
    return response


# The streaming views sign their user in within their one database job (above) instead of in
# LoginRequiredMiddleware, which would take a thread of its own for it; anonymous people are
# sent to sign in all the same.
@login_not_required
@require_POST
async def stream(request: HttpRequest, conversation_id: UUID) -> HttpResponseBase:
    return await _answer(request, conversation_id, request.POST.get("content", ""))


@login_not_required
@require_POST
async def regenerate(request: HttpRequest, conversation_id: UUID) -> HttpResponseBase:
    return await _answer(request, conversation_id, None)


@require_POST
def rename(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    user = _user(request)
    conversation = services.conversation_for_view(
        user=user, conversation_id=conversation_id, session=request.session
    )
    try:
        services.conversation_rename(
            conversation=conversation, title=request.POST.get("title", ""), actor=user
        )
    except ChatInputError as error:
        if request.headers.get("HX-Request"):
            return JsonResponse({"error": error.message}, status=400)
        flash.error(request, error.message)
    if request.headers.get("HX-Request"):
        return HttpResponse(status=204)
    return redirect("chat:conversation", conversation_id=conversation.pk)


@require_POST
def delete(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    user = _user(request)
    conversation = services.conversation_for_view(
        user=user, conversation_id=conversation_id, session=request.session
    )
    services.conversation_delete(conversation=conversation, actor=user)
    flash.success(request, "Conversation deleted.")
    return redirect("chat:index")


def _search_query(request: HttpRequest) -> str:
    # What a search box sends, on one line: a NUL or line break would match nothing (and
    # PostgreSQL refuses NUL in a query).
    return one_line(request.GET.get("q", ""))


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    query = _search_query(request)
    conversations = services.conversations_for(user=_user(request), session=request.session, query=query)
    return render(
        request,
        "chat/chat.html#conversation-list",
        {"conversations": list(conversations[:SIDEBAR_CONVERSATIONS]), "conversation": None, "query": query},
    )


def _attachment(body: str, *, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
def export(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    user = _user(request)
    conversation = services.conversation_for_view(
        user=user, conversation_id=conversation_id, session=request.session
    )
    name = f"conversation-{str(conversation.pk)[:8]}"
    if request.GET.get("format", "md") == "json":
        body = services.conversations_export_json(conversations=[conversation], user=user)
        return _attachment(body, filename=f"{name}.json", content_type="application/json")
    body = services.conversation_export_markdown(conversation=conversation)
    return _attachment(body, filename=f"{name}.md", content_type="text/markdown; charset=utf-8")


@require_GET
def export_all(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if request.GET.get("format", "json") != "json":
        return JsonResponse({"error": "All conversations export as JSON only (format=json)."}, status=400)
    conversations = services.conversations_for(user=user, session=request.session).prefetch_related(
        "messages"
    )
    body = services.conversations_export_json(conversations=conversations, user=user)
    return _attachment(
        body, filename=f"conversations-{timezone.localdate():%Y-%m-%d}.json", content_type="application/json"
    )
