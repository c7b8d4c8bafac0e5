"""The chat's writes and checks: starting a conversation, preparing a turn before the model is
called, saving what came back, retention, export.

The streaming view calls `chat_turn_prepare` and `chat_turn_finish` once each on the chat's
database thread (`chat.database`): all the database work of a turn happens in those two jobs,
none while the answer streams.
"""

import contextlib
import functools
import json
import logging
import math
import re
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Field, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from chat.access import access_version, get_conversation_for
from chat.limits import user_rate_limit_admit, user_tokens_charge
from chat.metering import (
    BudgetStatus,
    conversation_cost,
    department_spend,
    month_bounds,
    usage_record_create,
)
from chat.models import Conversation, Message, UsageRecord
from portal.org.models import Department, User
from portal.remembered import Remembered
from portal.text import one_line
from provisioning.models import AccessGrant, ModelDeployment

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 32_000
TITLE_CHARS = 60
# Context windows (tokens) of the models Switchyard offers; the catalog does not carry them.
CONTEXT_TOKENS = {
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576,
    "gpt-4": 8_192,
    "gpt-35-turbo": 16_385,
}
DEFAULT_CONTEXT_TOKENS = 128_000
# Room left for the answer when a long conversation is trimmed to the context window.
ANSWER_RESERVE_TOKENS = 4_096
# The browser session's history-off conversations (their ids), for `SessionStore`.
SESSION_CONVERSATIONS_KEY = "chat_session_conversations"


class ChatInputError(Exception):
    """A request the chat refuses before anything is saved; `status` is the HTTP status."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def estimate_tokens(text: str) -> int:
    """About four characters per token: good enough to trim and to meter a broken stream."""
    return max(1, math.ceil(len(text) / 4))


def conversation_title(text: str) -> str:
    """The first ~60 characters of the first message, on one line, sentence-cased."""
    line = re.sub(r"\s+", " ", text).strip()
    if len(line) > TITLE_CHARS:
        cut = line[:TITLE_CHARS].rsplit(" ", 1)[0] if " " in line[:TITLE_CHARS] else line[:TITLE_CHARS]
        line = cut.rstrip(" ,.;:-") + "…"
    return line[:1].upper() + line[1:]


def _names(people: Iterable[User]) -> str:
    names = [person.display_name for person in people]
    return " or ".join(names)


def _ask_leads(department: Department) -> str:
    leads = _names(department.leads())
    return (
        f"Ask {leads} to raise it." if leads else "Ask your department lead or a platform admin to raise it."
    )


def _money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


# Conversations -----------------------------------------------------------------------------


def session_conversation_ids(session: MutableMapping[str, Any]) -> list[str]:
    return list(session.get(SESSION_CONVERSATIONS_KEY, []))


def conversation_expiry(*, department: Department, now: datetime) -> datetime:
    """History kept N days, or (history off) only as long as the browser session can live."""
    if department.keeps_chat_history:
        return now + timedelta(days=department.chat_retention_days)
    return now + timedelta(seconds=settings.SESSION_COOKIE_AGE)


def conversation_is_visible(*, conversation: Conversation, session: MutableMapping[str, Any]) -> bool:
    """History-off conversations exist only for the browser session that had them."""
    return conversation.department.keeps_chat_history or str(conversation.pk) in session_conversation_ids(
        session
    )


def conversations_for(
    *, user: User, session: MutableMapping[str, Any], query: str = ""
) -> QuerySet[Conversation]:
    """The user's conversations this browser may list, newest first."""
    return (
        Conversation.objects.filter(user=user)
        .filter(Q(department__chat_retention_days__gt=0) | Q(pk__in=session_conversation_ids(session)))
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
    now = timezone.now()
    conversation = Conversation.objects.create(
        user=user,
        deployment=deployment,
        department=department,
        expires_at=conversation_expiry(department=department, now=now),
    )
    if not department.keeps_chat_history:
        session[SESSION_CONVERSATIONS_KEY] = [*session_conversation_ids(session), str(conversation.pk)]
    return conversation


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
    _turn_access.forget(_access_key(user_id=conversation.user_id, conversation_id=conversation.pk))
    conversation.delete()


def conversations_purge_expired(*, now: datetime | None = None) -> int:
    """Delete conversations past their retention (messages go with them; usage records stay,
    their conversation set to null). Returns how many conversations were deleted."""
    now = now or timezone.now()
    expired = Conversation.objects.filter(expires_at__lte=now)
    _, per_model = expired.delete()
    return per_model.get(Conversation._meta.label, 0)


# A turn: before the model is called -----------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """Everything the stream needs, read before it starts, so it touches no database."""

    conversation_id: UUID
    user_id: int
    department_id: int
    deployment_id: int
    deployment_display_name: str
    endpoint: str
    deployment_name: str
    prompt: list[dict[str, str]]
    prompt_tokens_estimate: int
    user_message_id: int | None
    replaces_message_id: int | None
    warning: str | None
    # The first message of a conversation names it, when the answer is saved.
    title: str = ""
    # Read for the checks; the answer's usage record points at them without reading them again.
    department: Department | None = None
    deployment: ModelDeployment | None = None
    user: User | None = None


@dataclass(frozen=True)
class Refusal:
    """The model is not called: the user's message (if any) is saved, the reason is shown."""

    message: str
    retry_after: int | None
    user_message_id: int | None


def validate_message(content: str) -> str:
    # No text column in PostgreSQL takes NUL (pasted from a binary file, say): the message is
    # saved without it rather than lost to a server error.
    content = content.replace("\x00", "").strip()
    if not content:
        raise ChatInputError("Type a message first.")
    if len(content) > MAX_MESSAGE_CHARS:
        raise ChatInputError(
            f"That message is {len(content):,} characters long; the limit is {MAX_MESSAGE_CHARS:,}. "
            "Shorten it or split it into parts."
        )
    return content


# What a turn checks before the model is called is remembered, so that a person in
# mid-conversation costs one write and one read before the call, not a dozen queries: who may chat
# where until anything that decides it changes (`chat.access.ACCESS_VERSION_KEY`), at most
# TURN_ACCESS_SECONDS; the department's spend for SPEND_SECONDS. Every answer's cost is counted up
# in the cache as it is saved, by whichever process saves it, so what is remembered only lags on
# what accrues by the hour outside the chat (reserved PTUs, shared deployments' fixed costs). Summing
# the month again costs a turn milliseconds: it is done once a minute per department.
TURN_ACCESS_SECONDS = 300
SPEND_SECONDS = 60
_turn_access: Remembered[Conversation] = Remembered(seconds=TURN_ACCESS_SECONDS, size=10_000)
# A conversation's cost so far is remembered while people are chatting in it.
CONVERSATION_COST_SECONDS = 3600
# Money in the cache is counted in these units (the precision of UsageRecord.cost), so that the
# cache can add to it atomically.
SPEND_UNITS = Decimal("1e-10")


def _access_key(*, user_id: int, conversation_id: UUID | str) -> tuple[int, str]:
    return user_id, str(conversation_id)


def _spend_key(*, department_id: int, on: date) -> str:
    return f"chat:department-spend:{department_id}:{on:%Y-%m}"


def _conversation_for_turn(
    *, user: User, conversation_id: UUID | str, session: MutableMapping[str, Any]
) -> tuple[Conversation, str | None]:
    """The conversation with its deployment and paying department, if the user may still chat
    in it, and the access version it was checked under (None: it was remembered)."""
    # Read before any checks: a change made while they run makes the next turn check again.
    version = access_version()
    key = _access_key(user_id=user.pk, conversation_id=conversation_id)
    remembered = _turn_access.get(key, version=version)
    if remembered is not None:
        # History-off conversations live in the browser session, which is not remembered.
        if not conversation_is_visible(conversation=remembered, session=session):
            raise Http404("No such conversation.")
        return remembered, None
    conversation = conversation_for_view(user=user, conversation_id=conversation_id, session=session)
    deployment = conversation.deployment
    department = conversation.department
    still_allowed = ModelDeployment.objects.usable_by(user).filter(pk=deployment.pk).exists() and any(
        payer.pk == department.pk for payer in deployment.paying_departments(user)
    )
    if not still_allowed or deployment.account is None:
        raise ChatInputError(
            f"{deployment.display_name} is no longer available to you or {department.name}. "
            "Start a new chat with an assistant you may use.",
            status=404,
        )
    return conversation, version


def _conversation_cost_after(conversation: Conversation, cost: Decimal) -> Decimal:
    """What the conversation has cost so far, this answer included: counted up in the cache as
    answers are saved (the only way usage comes to a conversation), summed from the records
    when the cache does not have it."""
    key = f"chat:conversation-cost:{conversation.pk}"
    try:
        return int(cache.incr(key, int(cost / SPEND_UNITS))) * SPEND_UNITS
    except ValueError:  # not remembered: this answer's record is committed, and in the sum
        total = conversation_cost(conversation=conversation)
        cache.add(key, int(total / SPEND_UNITS), CONVERSATION_COST_SECONDS)
        return total


def _department_spend(*, department: Department, on: date) -> Decimal:
    """`department_spend`, remembered for a few seconds and counted up as answers are saved."""
    key = _spend_key(department_id=department.pk, on=on)
    units = cache.get(key)
    if units is None:
        spent = department_spend(department=department, on=on)
        cache.add(key, int(spent / SPEND_UNITS), SPEND_SECONDS)
        return spent
    return int(units) * SPEND_UNITS


def _department_spend_add(*, department_id: int, on: date, cost: Decimal) -> None:
    if cost <= 0:
        return
    # Not remembered (ValueError): the next turn reads the database, this record included.
    with contextlib.suppress(ValueError):
        cache.incr(_spend_key(department_id=department_id, on=on), int(cost / SPEND_UNITS))


def chat_turn_prepare(
    *,
    user: User,
    conversation_id: UUID | str,
    content: str | None,
    session: MutableMapping[str, Any],
) -> Turn | Refusal:
    """Authorize, save the user's message (before any model call, so it is never lost), check the
    budget, the grant's cap and the user's rate limit, and build the trimmed prompt.

    `content=None` regenerates: the answer to the last user message is asked for again and
    replaces the previous answer once the new one is saved."""
    conversation, checked_version = _conversation_for_turn(
        user=user, conversation_id=conversation_id, session=session
    )
    deployment = conversation.deployment
    department = conversation.department
    assert deployment.account is not None  # _conversation_for_turn refuses a deployment without one
    if content is not None:
        content = validate_message(content)

    now = timezone.now()
    title = ""
    if content is not None:
        # One statement: the conversation's title, expiry and place in the list are updated
        # when the answer is saved, off the path to the first token.
        user_message = Message.objects.create(
            conversation=conversation, role=Message.Role.USER, content=content
        )
        replaces_message_id = None
        title = conversation_title(content)
    else:
        last_user_message = conversation.messages.filter(role=Message.Role.USER).last()
        if last_user_message is None:
            raise ChatInputError("There is no question to answer again yet.")
        user_message = last_user_message
        previous_answer = conversation.messages.filter(
            role=Message.Role.ASSISTANT, pk__gt=user_message.pk
        ).last()
        replaces_message_id = previous_answer.pk if previous_answer else None
    saved_id = user_message.pk if content is not None else None

    history = conversation_history(conversation_id=conversation.pk, up_to=user_message.pk)
    prompt = trimmed_prompt(
        system_prompt=deployment.system_prompt,
        history=history,
        context_tokens=CONTEXT_TOKENS.get(deployment.model_name, DEFAULT_CONTEXT_TOKENS),
    )
    prompt_tokens = sum(estimate_tokens(message["content"]) for message in prompt)

    refusal = _turn_refusal(
        user=user, deployment=deployment, department=department, now=now, prompt_tokens=prompt_tokens
    )
    if isinstance(refusal, Refusal):
        conversation_touch(conversation_id=conversation.pk, title=title, now=now)
        return Refusal(refusal.message, refusal.retry_after, saved_id)
    if checked_version is not None:
        # Only a turn that goes ahead is remembered: a refused one is checked afresh next time,
        # so that a raised budget or a new grant takes effect at once.
        key = _access_key(user_id=user.pk, conversation_id=conversation.pk)
        _turn_access.set(key, conversation, version=checked_version)
    return Turn(
        conversation_id=conversation.pk,
        user_id=user.pk,
        department_id=department.pk,
        deployment_id=deployment.pk,
        deployment_display_name=deployment.display_name,
        endpoint=deployment.account.endpoint,
        deployment_name=deployment.name,
        prompt=prompt,
        prompt_tokens_estimate=prompt_tokens,
        user_message_id=saved_id,
        replaces_message_id=replaces_message_id,
        warning=refusal,
        title=title,
        department=department,
        deployment=deployment,
        user=user,
    )


def _turn_refusal(
    *, user: User, deployment: ModelDeployment, department: Department, now: datetime, prompt_tokens: int
) -> Refusal | str | None:
    """Why the model may not be called (budget, the grant's cap, the user's rate limit), or the
    budget warning to show with the answer."""
    spent = _department_spend(department=department, on=timezone.localdate(now))
    budget = BudgetStatus(department, spent, department.monthly_budget)
    if budget.exhausted:
        return Refusal(
            f"{department.name} has used its whole monthly budget of {_money(budget.budget)}. "
            f"{_ask_leads(department)}",
            None,
            None,
        )
    capped = _grant_cap_refusal(deployment=deployment, department=department, now=now, tokens=prompt_tokens)
    if capped is not None:
        return Refusal(capped[0], capped[1], None)
    limited = user_rate_limit_admit(user_id=user.pk, estimated_tokens=prompt_tokens)
    if limited is not None:
        return Refusal(limited.message, limited.retry_after, None)
    if budget.warning:
        return f"{department.name} has used {int(budget.share * 100)}% of its monthly budget."
    return None


def conversation_touch(*, conversation_id: UUID, title: str, now: datetime) -> None:
    """A turn happened: the conversation moves to the top of the list and its retention starts
    again; its first message names it."""
    conversation = Conversation.objects.select_related("department").filter(pk=conversation_id).first()
    if conversation is None:
        return
    _touch(conversation, department=conversation.department, title=title, now=now)


def _touch(conversation: Conversation, *, department: Department, title: str, now: datetime) -> None:
    if title and not conversation.title:
        conversation.title = title
    conversation.expires_at = conversation_expiry(department=department, now=now)
    conversation.save(update_fields=["title", "expires_at", "updated_at"])


def conversation_history(*, conversation_id: UUID, up_to: int) -> list[tuple[str, str]]:
    """The conversation's messages up to and including message `up_to`, oldest first, as
    (role, text); answers that failed before their first token have no text and are left out.

    Every turn reads this on the way to the model, so its SQL is written once, from the model's
    own names, instead of being built by the ORM each time: building it cost more than running it
    (0.5 of the turn's 1.1 ms of work before the call). A test holds it to the ORM's answer."""
    with connection.cursor() as cursor:
        cursor.execute(
            _history_sql(connection.vendor),
            [Message._meta.get_field("conversation").get_db_prep_value(conversation_id, connection), up_to],
        )
        if connection.vendor == "sqlite":
            # As one row of JSON: SQLite lets go of the GIL at every row it steps to, and under
            # load each time costs a wait for the event loop to hand it back.
            (packed,) = cursor.fetchone()
            rows = sorted(json.loads(packed))  # [created_at, id, role, content], in the model's order
            return [(role, text) for _, _, role, text in rows if text]
        return [(role, text) for role, text in cursor.fetchall() if text]


@functools.cache
def _history_sql(vendor: str) -> str:
    # One per database vendor; `connection` is the default database's.
    def column(name: str) -> str:
        field = Message._meta.pk if name == "pk" else Message._meta.get_field(name)
        assert isinstance(field, Field)
        assert field.column is not None
        return connection.ops.quote_name(field.column)

    table = connection.ops.quote_name(Message._meta.db_table)
    where = f"WHERE {column('conversation')} = %s AND {column('pk')} <= %s"
    if vendor == "sqlite":
        assert Message._meta.ordering == ["created_at", "pk"]  # what `conversation_history` sorts by
        row = f"json_array({column('created_at')}, {column('pk')}, {column('role')}, {column('content')})"
        return f"SELECT json_group_array({row}) FROM {table} {where}"  # noqa: S608  (names from _meta)
    ordering = ", ".join(column(str(name)) for name in Message._meta.ordering or ["pk"])
    return f"SELECT {column('role')}, {column('content')} FROM {table} {where} ORDER BY {ordering}"  # noqa: S608


def trimmed_prompt(
    *, system_prompt: str, history: list[tuple[str, str]], context_tokens: int
) -> list[dict[str, str]]:
    """System prompt + as many of the latest turns as fit the context window (oldest dropped
    first); the system prompt and the latest message are always kept."""
    budget = context_tokens - ANSWER_RESERVE_TOKENS - (estimate_tokens(system_prompt) if system_prompt else 0)
    kept: list[dict[str, str]] = []
    for role, text in reversed(history):
        cost = estimate_tokens(text)
        if kept and cost > budget:
            break
        kept.append({"role": role, "content": text})
        budget -= cost
    kept.reverse()
    if system_prompt:
        kept.insert(0, {"role": "system", "content": system_prompt})
    return kept


def _grant_cap_refusal(
    *, deployment: ModelDeployment, department: Department, now: datetime, tokens: int
) -> tuple[str, int | None] | None:
    """A shared deployment's grant may cap the department's monthly spend and tokens per minute
    on it, beyond the department's overall budget."""
    if deployment.scope != ModelDeployment.Scope.SHARED:
        return None
    grant = AccessGrant.objects.filter(deployment=deployment, department=department).first()
    if grant is None:
        return None
    records = UsageRecord.objects.filter(deployment=deployment, department=department)
    if grant.monthly_budget_cap is not None:
        start, end = month_bounds(timezone.localdate(now))
        spent = records.filter(created_at__gte=start, created_at__lt=end).aggregate(total=Sum("cost"))[
            "total"
        ]
        if (spent or Decimal(0)) >= grant.monthly_budget_cap:
            return (
                f"{department.name} has used its whole monthly allowance of "
                f"{_money(grant.monthly_budget_cap)} for {deployment.display_name}. {_ask_leads(department)}",
                None,
            )
    if grant.tpm_cap:
        window_start = now - timedelta(seconds=60)
        recent = records.filter(created_at__gt=window_start)
        used = recent.aggregate(total=Sum(F("input_tokens") + F("output_tokens")))["total"] or 0
        if used and used + tokens > grant.tpm_cap * 1000:
            oldest = recent.order_by("created_at").values_list("created_at", flat=True).first() or now
            retry_after = max(1, math.ceil(60 - (now - oldest).total_seconds()))
            return (
                f"{department.name}'s share of {deployment.display_name} "
                f"({grant.tpm_cap:,}K tokens per minute) is used up for the moment. "
                f"Try again in {retry_after} seconds.",
                retry_after,
            )
    return None


# A turn: after the model answered ------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What came back from one model call, however it ended."""

    content: str
    finish_reason: str
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token_ms: int | None = None
    duration_ms: int | None = None
    content_filter: dict[str, Any] | None = None
    error: str = ""
    # Whether Azure accepted the call (and so may bill it): then a usage record is written.
    metered: bool = True


@dataclass(frozen=True)
class FinishedTurn:
    message_id: int | None
    cost: Decimal
    conversation_cost: Decimal
    title: str


def chat_turn_finish(*, turn: Turn, outcome: Outcome) -> FinishedTurn:
    """Save the answer (partial or failed ones too) and meter the call, in one transaction."""
    now = timezone.now()
    # Read before the transaction, so that the write lock (SQLite's is the whole database) is
    # held for the writes only.
    conversation = Conversation.objects.filter(pk=turn.conversation_id).only("title").first()
    department = turn.department or Department.objects.get(pk=turn.department_id)
    deployment = turn.deployment or ModelDeployment.objects.get(pk=turn.deployment_id)
    user = turn.user or User.objects.filter(pk=turn.user_id).first()
    with transaction.atomic():
        message_id = None
        if conversation is not None:
            if turn.replaces_message_id is not None and (outcome.content or not outcome.error):
                Message.objects.filter(pk=turn.replaces_message_id, conversation=conversation).delete()
            message = Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                content=outcome.content,
                prompt_tokens=outcome.prompt_tokens,
                cached_tokens=outcome.cached_tokens,
                completion_tokens=outcome.completion_tokens,
                time_to_first_token_ms=outcome.time_to_first_token_ms,
                duration_ms=outcome.duration_ms,
                finish_reason=outcome.finish_reason,
                content_filter=outcome.content_filter,
                error=outcome.error,
            )
            message_id = message.pk
            _touch(conversation, department=department, title=turn.title, now=now)
        cost = Decimal(0)
        if outcome.metered:
            # The conversation may have been deleted while it streamed: the money is still owed.
            record = usage_record_create(
                department=department,
                user=user,
                deployment=deployment,
                conversation=conversation,
                input_tokens=outcome.prompt_tokens,
                cached_input_tokens=outcome.cached_tokens,
                output_tokens=outcome.completion_tokens,
                at=now,
            )
            cost = record.cost
    if outcome.metered:
        _department_spend_add(department_id=department.pk, on=timezone.localdate(now), cost=cost)
        user_tokens_charge(user_id=turn.user_id, tokens=outcome.prompt_tokens + outcome.completion_tokens)
    total = _conversation_cost_after(conversation, cost) if conversation is not None else cost
    return FinishedTurn(
        message_id=message_id,
        cost=cost,
        conversation_cost=total,
        title=conversation.title if conversation is not None else "",
    )


# Export --------------------------------------------------------------------------------------


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
        if message.error:
            lines += [f"> {message.error}", ""]
        elif message.role == Message.Role.ASSISTANT and message.finish_reason not in ("", "stop"):
            lines += [f"> Answer ended: {message.finish_reason}", ""]
    return "\n".join(lines)
