"""The chat's conversations: starting, listing, renaming, deleting, retention and export. A
turn (question, model call, answer) is `chat.turns`."""

import json
import logging
import re
from collections.abc import Iterable, MutableMapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db.models import Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from base.remembered import Remembered
from base.text import one_line
from chat.access import get_conversation_for
from chat.models import Conversation, Message
from money.amounts import ZERO
from org.models import User
from provisioning.models import ModelDeployment

logger = logging.getLogger(__name__)

TITLE_CHARS = 60
# The browser session's history-off conversations (their ids), for `SessionStore`.
SESSION_CONVERSATIONS_KEY = "chat_session_conversations"


class ChatInputError(Exception):
    """A request the chat refuses before anything is saved; `status` is the HTTP status."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def conversation_title(text: str) -> str:
    """The first ~60 characters of the first message, on one line, sentence-cased."""
    line = re.sub(r"\s+", " ", text).strip()
    if len(line) > TITLE_CHARS:
        cut = line[:TITLE_CHARS].rsplit(" ", 1)[0] if " " in line[:TITLE_CHARS] else line[:TITLE_CHARS]
        line = cut.rstrip(" ,.;:-") + "…"
    return line[:1].upper() + line[1:]


# Conversations -----------------------------------------------------------------------------


def session_conversation_ids(session: MutableMapping[str, Any]) -> list[str]:
    return list(session.get(SESSION_CONVERSATIONS_KEY, []))


def conversation_expiry(*, conversation: Conversation, now: datetime) -> datetime:
    """History kept N days, or (history off) only as long as the browser session can live."""
    if conversation.history_off:
        return now + timedelta(seconds=settings.SESSION_COOKIE_AGE)
    return now + timedelta(days=conversation.department.chat_retention_days)


def conversation_is_visible(*, conversation: Conversation, session: MutableMapping[str, Any]) -> bool:
    """History-off conversations exist only for the browser session that had them."""
    return not conversation.history_off or str(conversation.pk) in session_conversation_ids(session)


def conversations_for(
    *, user: User, session: MutableMapping[str, Any], query: str = ""
) -> QuerySet[Conversation]:
    """The user's conversations this browser may list, newest first."""
    return (
        Conversation.objects.filter(user=user)
        .filter(Q(history_off=False) | Q(pk__in=session_conversation_ids(session)))
        .matching(query)
        .select_related("deployment", "department")
        .order_by("-updated_at")
    )


def conversation_for_view(
    *, user: User, conversation_id: UUID | str, session: MutableMapping[str, Any]
) -> Conversation:
    conversation = get_conversation_for(user, conversation_id)
    if not conversation_is_visible(conversation=conversation, session=session):
        raise Http404("No such conversation.")
    return conversation


def conversation_start(
    *,
    user: User,
    deployment_id: int | str,
    department_id: int | str | None,
    session: MutableMapping[str, Any],
) -> Conversation:
    """A new, empty conversation with a deployment the user may use, paid by one of their
    departments that may use it. Anything else is refused with a message for the page."""
    try:
        deployment = ModelDeployment.objects.usable_by(user).get(pk=int(deployment_id))
    except (ModelDeployment.DoesNotExist, TypeError, ValueError):
        raise ChatInputError(
            "That assistant does not exist or is not available to you.", status=404
        ) from None
    payers = deployment.paying_departments(user)
    if department_id in (None, ""):
        if len(payers) != 1:
            raise ChatInputError(f"Choose which of your departments pays for {deployment.display_name}.")
        department = payers[0]
    else:
        department = next((d for d in payers if str(d.pk) == str(department_id)), None)  # type: ignore[assignment]
        if department is None:
            raise ChatInputError(f"That department cannot pay for {deployment.display_name}; choose another.")
    conversation = Conversation(
        user=user, deployment=deployment, department=department, history_off=not department.keeps_chat_history
    )
    conversation.expires_at = conversation_expiry(conversation=conversation, now=timezone.now())
    conversation.save(force_insert=True)
    if conversation.history_off:
        session[SESSION_CONVERSATIONS_KEY] = [*session_conversation_ids(session), str(conversation.pk)]
    return conversation


def conversations_end_with_session(*, user: User, session: MutableMapping[str, Any]) -> int:
    """The browser session ends (sign-out): its history-off conversations go with it."""
    ids = session_conversation_ids(session)
    if not ids:
        return 0
    _, per_model = Conversation.objects.filter(user=user, history_off=True, pk__in=ids).delete()
    session.pop(SESSION_CONVERSATIONS_KEY, None)
    return per_model.get(Conversation._meta.label, 0)


def conversation_rename(*, conversation: Conversation, title: str, actor: User) -> Conversation:
    title = one_line(title)
    if not title:
        raise ChatInputError("A title cannot be empty.")
    max_length = Conversation._meta.get_field("title").max_length or 200
    conversation.title = title[:max_length]
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def conversation_delete(*, conversation: Conversation, actor: User) -> None:
    """Deletes the conversation and its messages; its usage records stay (money outlives content)."""
    turn_access.forget(turn_access_key(user_id=conversation.user_id, conversation_id=conversation.pk))
    conversation.delete()


def conversations_purge_expired(*, now: datetime | None = None) -> int:
    """Delete conversations past their retention (messages go with them; usage records stay,
    their conversation set to null). Returns how many conversations were deleted."""
    now = now or timezone.now()
    expired = Conversation.objects.filter(expires_at__lte=now)
    _, per_model = expired.delete()
    return per_model.get(Conversation._meta.label, 0)


# What a turn checks before the model is called is remembered, so that a person in
# mid-conversation costs one write and one read before the call, not a dozen queries: who may chat
# where, until anything that decides it changes (`chat.access.ACCESS_VERSION_KEY`), at most
# TURN_ACCESS_SECONDS.
TURN_ACCESS_SECONDS = 300
turn_access: Remembered[Conversation] = Remembered(seconds=TURN_ACCESS_SECONDS, size=10_000)


def turn_access_key(*, user_id: int, conversation_id: UUID | str) -> tuple[int, str]:
    return user_id, str(conversation_id)


# Export --------------------------------------------------------------------------------------


def conversation_cost(*, conversation: Conversation) -> Decimal:
    """What the conversation's calls cost so far (USD, unrounded)."""
    total = conversation.usage_records.aggregate(total=Sum("cost"))["total"]
    return total or ZERO


def conversation_export_data(*, conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.pk),
        "title": str(conversation),
        "assistant": conversation.deployment.display_name,
        "model": f"{conversation.deployment.model_name} {conversation.deployment.model_version}",
        "department": conversation.department.name,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "expires_at": conversation.expires_at.isoformat() if conversation.expires_at else None,
        "cost_usd": str(conversation_cost(conversation=conversation)),
        "messages": [
            {
                "role": message.role,
                "content": message.content,
                "created_at": message.created_at.isoformat(),
                "finish_reason": message.finish_reason or None,
                "prompt_tokens": message.prompt_tokens,
                "completion_tokens": message.completion_tokens,
                "error": message.error or None,
                "citations": message.citations or [],
            }
            for message in conversation.messages.all()
        ],
    }


def conversations_export_json(*, conversations: Iterable[Conversation], user: User) -> str:
    return json.dumps(
        {
            "exported_at": timezone.now().isoformat(),
            "user": user.email,
            "conversations": [conversation_export_data(conversation=c) for c in conversations],
        },
        indent=2,
        ensure_ascii=False,
    )


def conversation_export_markdown(*, conversation: Conversation) -> str:
    lines = [
        f"# {conversation}",
        "",
        f"*{conversation.deployment.display_name} ({conversation.deployment.model_name}) · "
        f"paid by {conversation.department.name} · {conversation.created_at:%Y-%m-%d %H:%M} UTC*",
        "",
    ]
    for message in conversation.messages.all():
        speaker = "You" if message.role == Message.Role.USER else "Assistant"
        lines += [f"## {speaker}", "", message.content or "*(no answer)*", ""]
        for cited in message.citations or []:
            page = f", page {cited.get('page')}" if cited.get("page") else ""
            lines += [
                f"[{cited.get('number')}] {cited.get('document_name')}{page} ({cited.get('data_set')}, "
                f"{cited.get('department')})",
                "",
            ]
        if message.error:
            lines += [f"> {message.error}", ""]
        elif message.role == Message.Role.ASSISTANT and message.finish_reason not in ("", "stop"):
            lines += [f"> Answer ended: {message.finish_reason}", ""]
    return "\n".join(lines)
