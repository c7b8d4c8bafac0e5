"""A chat turn: the work before the model is called (`chat_turn_prepare`) and after it answered
(`chat_turn_finish`), each run once per turn on the chat's database thread (`calls.database`), so
nothing touches the database while the answer streams.

Before the call the person's question is saved, the prompt is built to fit the model, and the
call is admitted by reservation (`money.admission`): its bound is taken from every limit, or
the question is kept, marked as not sent, with the limit's message. After the call its usage
settles the reservation, however the call ended.
"""

import functools
import json
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Field
from django.http import Http404
from django.utils import timezone

from base.remembered import Remembered
from calls.failover import Target
from calls.observe import CHAT, REFUSED, CallObservation, call_minutes_add, refusal_observed
from chat.access import access_version
from chat.models import Conversation, Message
from chat.services import (
    TURN_ACCESS_SECONDS,
    ChatInputError,
    conversation_cost,
    conversation_expiry,
    conversation_for_view,
    conversation_is_visible,
    conversation_title,
    turn_access,
    turn_access_key,
)
from grounding.models import DataSet
from grounding.quoting import sources_room
from grounding.retrieval import Passage, grounded_data_sets
from money.admission import (
    Admission,
    AdmissionRefused,
    Usage,
    admission_release,
    admission_reserve,
    admission_settle,
)
from money.limits import Claim
from money.models import UsageRecord
from org.models import Department, User
from provisioning import tokenizer
from provisioning.catalog import ModelLimits, model_limits
from provisioning.fallbacks import fallback_chain
from provisioning.models import ModelDeployment

MAX_MESSAGE_CHARS = 32_000
# A conversation's cost so far is remembered while people are chatting in it.
CONVERSATION_COST_SECONDS = 3600
# Money in the cache is counted in these units (the precision of UsageRecord.cost), so that the
# cache can add to it atomically.
COST_UNITS = Decimal("1e-10")


@dataclass(frozen=True)
class Grounded:
    """A turn on an assistant grounded on data sets: what retrieval needs, read with the turn."""

    data_sets: tuple[DataSet, ...]
    question: str
    # Prompt tokens set aside for the sources (reserved, and taken from the history's room).
    room: int


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
    prompt_tokens: int
    max_output_tokens: int
    reservation_id: UUID
    user_message_id: int | None
    replaces_message_id: int | None
    warning: str | None
    # The first message of a conversation names it, when the answer is saved.
    title: str = ""
    # Read for the checks; the answer's usage record points at them without reading them again.
    department: Department | None = None
    deployment: ModelDeployment | None = None
    user: User | None = None
    # Where the call goes when the deployment answers 429 or 503 first (calls.failover): the
    # deployment itself, then its fallbacks.
    targets: tuple[Target, ...] = ()
    fallbacks: tuple[ModelDeployment, ...] = ()
    # A grounded turn: the data sets to search and, once searched (chat.grounded), the passages the
    # prompt quotes.
    grounded: Grounded | None = None
    passages: tuple[Passage, ...] = ()

    def served_by(self, deployment_id: int | None) -> ModelDeployment | None:
        """The deployment (of this turn's own and its fallbacks) that answered."""
        for deployment in (self.deployment, *self.fallbacks):
            if deployment is not None and deployment.pk == deployment_id:
                return deployment
        return None


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


# The model's limits are read from the catalog once a minute per process, not once per turn.
_limits_memo: dict[tuple[str, str], tuple[datetime, ModelLimits]] = {}


def _model_limits(deployment: ModelDeployment, now: datetime) -> ModelLimits:
    key = (deployment.model_name, deployment.model_version)
    remembered = _limits_memo.get(key)
    if remembered is not None and (now - remembered[0]).total_seconds() < 60:
        return remembered[1]
    limits = model_limits(model_name=deployment.model_name, model_version=deployment.model_version)
    _limits_memo[key] = (now, limits)
    return limits


def forget_model_limits() -> None:
    _limits_memo.clear()


# A deployment's fallbacks are remembered under the chat's access version, which a change to
# deployments or their fallback links replaces.
_fallbacks: Remembered[tuple[ModelDeployment, ...]] = Remembered(seconds=TURN_ACCESS_SECONDS, size=1_000)


def _fallbacks_of(deployment: ModelDeployment) -> tuple[ModelDeployment, ...]:
    version = access_version()
    chain = _fallbacks.get(deployment.pk, version=version)
    if chain is None:
        chain = tuple(fallback_chain(deployment))
        _fallbacks.set(deployment.pk, chain, version=version)
    return chain


@functools.lru_cache(maxsize=256)
def _system_prompt_tokens(system_prompt: str, model_name: str) -> int:
    return tokenizer.text_tokens(system_prompt, model_name=model_name)


def _conversation_for_turn(
    *, user: User, conversation_id: UUID | str, session: MutableMapping[str, Any]
) -> tuple[Conversation, str | None]:
    """The conversation with its deployment and paying department, if the user may still chat
    in it, and the access version it was checked under (None: it was remembered)."""
    # Read before any checks: a change made while they run makes the next turn check again.
    version = access_version()
    remembered = turn_access.get(
        turn_access_key(user_id=user.pk, conversation_id=conversation_id), version=version
    )
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


@dataclass(frozen=True)
class _Question:
    message: Message
    saved_id: int | None  # the message saved by this turn (None: an earlier one asked again)
    replaces_message_id: int | None
    title: str


def _question(
    conversation: Conversation, content: str | None, *, deployment: ModelDeployment, limits: ModelLimits
) -> _Question:
    """The question this turn answers: a new one, saved first so that it is never lost, or
    (content None) the last one again, whose previous answer the new one will replace."""
    if content is None:
        last = conversation.messages.filter(role=Message.Role.USER).last()
        if last is None:
            raise ChatInputError("There is no question to answer again yet.")
        previous = conversation.messages.filter(role=Message.Role.ASSISTANT, pk__gt=last.pk).last()
        return _Question(last, None, previous.pk if previous else None, "")
    content = validate_message(content)
    tokens = tokenizer.text_tokens(content, model_name=deployment.model_name)
    per_turn = min(settings.CHAT_MAX_MESSAGE_TOKENS, limits.context_tokens)
    if tokens > per_turn:
        raise ChatInputError(
            f"That message is {tokens:,} tokens long; one message may have at most {per_turn:,}. "
            "Shorten it or split it into parts.",
            status=413,
        )
    # One statement: the conversation's title, expiry and place in the list are updated when
    # the answer is saved, off the path to the first token.
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=content, tokens=tokens
    )
    return _Question(message, message.pk, None, conversation_title(content))


def chat_turn_prepare(
    *,
    user: User,
    conversation_id: UUID | str,
    content: str | None,
    session: MutableMapping[str, Any],
) -> Turn | Refusal:
    """Authorize, save the user's message (before any model call, so it is never lost), build the
    prompt to fit the model, and admit the call by reservation.

    `content=None` regenerates: the answer to the last user message is asked for again and
    replaces the previous answer once the new one is saved."""
    conversation, checked_version = _conversation_for_turn(
        user=user, conversation_id=conversation_id, session=session
    )
    deployment = conversation.deployment
    department = conversation.department
    assert deployment.account is not None  # _conversation_for_turn refuses a deployment without one
    now = timezone.now()
    limits = _model_limits(deployment, now)
    max_output_tokens = min(settings.CHAT_MAX_ANSWER_TOKENS, limits.output_tokens)
    fallbacks = _fallbacks_of(deployment)
    # Read at every turn, on the server: removing a data set from the assistant takes effect at
    # the next question, and nothing the browser sends chooses what is searched.
    data_sets = tuple(grounded_data_sets(deployment))
    room = sources_room(model_name=deployment.model_name) if data_sets else 0
    try:
        # The question, the prompt and the reservation in one transaction: one commit before the
        # call. A refusal rolls the question back too; it is kept below, marked as not sent.
        with transaction.atomic():
            question = _question(conversation, content, deployment=deployment, limits=limits)
            history = conversation_history(conversation_id=conversation.pk, up_to=question.message.pk)
            prompt, prompt_tokens = fitted_prompt(
                system_prompt=deployment.system_prompt,
                history=history,
                model_name=deployment.model_name,
                room=limits.context_tokens - max_output_tokens - room,
            )
            # The bound covers the sources, whatever retrieval returns (they are fitted to `room`).
            prompt_tokens += room
            claim = Claim(
                department=department,
                deployment=deployment,
                prompt_tokens=prompt_tokens,
                max_output_tokens=max_output_tokens,
                source=UsageRecord.Source.CHAT,
                user=user,
                fallbacks=fallbacks,
            )
            admission = admission_reserve(claim=claim, now=now)
    except AdmissionRefused as refused:
        refusal_observed(
            CallObservation(
                deployment_id=deployment.pk,
                deployment=deployment.gateway_name,
                department_id=department.pk,
                department=department.slug,
                source=CHAT,
                outcome=REFUSED,
                at=now,
                refused_reason=refused.limit,
            )
        )
        saved_id = _question_refused(question, refused.message)
        _touch(conversation, title=question.title, now=now)
        return Refusal(refused.message, refused.retry_after, saved_id)
    if question.message.refused:  # asked again, and this time it goes out
        Message.objects.filter(pk=question.message.pk).update(refused=False, error="")
    if checked_version is not None:
        # Only a turn that goes ahead is remembered: a refused one is checked afresh next time,
        # so that a raised budget or a new grant takes effect at once.
        turn_access.set(
            turn_access_key(user_id=user.pk, conversation_id=conversation.pk),
            conversation,
            version=checked_version,
        )
    grounded = Grounded(data_sets, question.message.content, room) if data_sets else None
    return _turn(
        conversation, user, question, prompt, prompt_tokens, max_output_tokens, admission, fallbacks, grounded
    )


def _turn(
    conversation: Conversation,
    user: User,
    question: _Question,
    prompt: list[dict[str, str]],
    prompt_tokens: int,
    max_output_tokens: int,
    admission: Admission,
    fallbacks: tuple[ModelDeployment, ...],
    grounded: Grounded | None = None,
) -> Turn:
    deployment, department = conversation.deployment, conversation.department
    assert deployment.account is not None
    return Turn(
        conversation_id=conversation.pk,
        user_id=user.pk,
        department_id=department.pk,
        deployment_id=deployment.pk,
        deployment_display_name=deployment.display_name,
        endpoint=deployment.account.endpoint,
        deployment_name=deployment.name,
        prompt=prompt,
        prompt_tokens=prompt_tokens,
        max_output_tokens=max_output_tokens,
        reservation_id=admission.reservation_id,
        user_message_id=question.saved_id,
        replaces_message_id=question.replaces_message_id,
        warning=_budget_warning(admission, department),
        title=question.title,
        department=department,
        deployment=deployment,
        user=user,
        targets=tuple(Target.of(each) for each in (deployment, *fallbacks)),
        fallbacks=fallbacks,
        grounded=grounded,
    )


def _budget_warning(admission: Admission, department: Department) -> str | None:
    if not admission.budget_warning or admission.budget_share is None:
        return None
    share = int(min(admission.budget_share, Decimal(1)) * 100)
    return f"{department.name} has used {share}% of its monthly budget."


def _question_refused(question: _Question, reason: str) -> int | None:
    """Keep a refused question for the person, marked as not sent; its id if this turn saved it."""
    message = question.message
    if question.saved_id is None:  # asked again: it was saved before
        Message.objects.filter(pk=message.pk).update(refused=True, error=reason)
        return None
    kept = Message.objects.create(
        conversation_id=message.conversation_id,
        role=message.role,
        content=message.content,
        tokens=message.tokens,
        refused=True,
        error=reason,
    )
    return kept.pk


def conversation_touch(*, conversation_id: UUID, title: str, now: datetime) -> None:
    """A turn happened: the conversation moves to the top of the list and its retention starts
    again; its first message names it."""
    conversation = Conversation.objects.select_related("department").filter(pk=conversation_id).first()
    if conversation is not None:
        _touch(conversation, title=title, now=now)


def _touch(conversation: Conversation, *, title: str, now: datetime) -> None:
    if title and not conversation.title:
        conversation.title = title
    conversation.expires_at = conversation_expiry(conversation=conversation, now=now)
    conversation.save(update_fields=["title", "expires_at", "updated_at"])


# The prompt ------------------------------------------------------------------------------------


def conversation_history(*, conversation_id: UUID, up_to: int) -> list[tuple[str, str, int]]:
    """The conversation's messages up to and including message `up_to`, oldest first, as
    (role, text, tokens); answers that failed before their first token and questions that were
    refused (but `up_to`, asked again) are left out.

    Every turn reads this on the way to the model, so its SQL is written once, from the model's
    own names, instead of being built by the ORM each time. A test holds it to the ORM's answer."""
    with connection.cursor() as cursor:
        cursor.execute(
            _history_sql(connection.vendor),
            [
                Message._meta.get_field("conversation").get_db_prep_value(conversation_id, connection),
                up_to,
                False,
                up_to,
            ],
        )
        if connection.vendor == "sqlite":
            # As one row of JSON: SQLite lets go of the GIL at every row it steps to, and under
            # load each time costs a wait for the event loop to hand it back.
            (packed,) = cursor.fetchone()
            rows = sorted(json.loads(packed))  # [created_at, id, role, content, tokens]
            return [(role, text, tokens) for _, _, role, text, tokens in rows if text]
        return [(role, text, tokens) for role, text, tokens in cursor.fetchall() if text]


@functools.cache
def _history_sql(vendor: str) -> str:
    # One per database vendor; `connection` is the default database's.
    def column(name: str) -> str:
        field = Message._meta.pk if name == "pk" else Message._meta.get_field(name)
        assert isinstance(field, Field)
        assert field.column is not None
        return connection.ops.quote_name(field.column)

    table = connection.ops.quote_name(Message._meta.db_table)
    where = (
        f"WHERE {column('conversation')} = %s AND {column('pk')} <= %s "
        f"AND ({column('refused')} = %s OR {column('pk')} = %s)"
    )
    fields = [column("role"), column("content"), column("tokens")]
    if vendor == "sqlite":
        assert Message._meta.ordering == ["created_at", "pk"]  # what `conversation_history` sorts by
        row = f"json_array({column('created_at')}, {column('pk')}, {', '.join(fields)})"
        return f"SELECT json_group_array({row}) FROM {table} {where}"  # noqa: S608  (names from _meta)
    ordering = ", ".join(column(str(name)) for name in Message._meta.ordering or ["pk"])
    return f"SELECT {', '.join(fields)} FROM {table} {where} ORDER BY {ordering}"  # noqa: S608


def fitted_prompt(
    *, system_prompt: str, history: Sequence[tuple[str, str, int | None]], model_name: str, room: int
) -> tuple[list[dict[str, str]], int]:
    """The system prompt and as many of the latest messages as fit in `room` tokens (the
    model's context window less the longest answer allowed), oldest dropped first; and the
    prompt's tokens as Azure will count them (at most). The system prompt and the latest
    message always go, or the question is refused as too long for the model."""
    total = tokenizer.prompt_tokens(
        [_system_prompt_tokens(system_prompt, model_name)] if system_prompt else []
    )
    kept: list[dict[str, str]] = []
    for role, text, tokens in reversed(history):
        if tokens is None:  # saved before messages kept their count
            tokens = tokenizer.text_tokens(text, model_name=model_name)
        with_it = total + tokenizer.message_tokens(tokens)
        if with_it > room:
            if not kept:
                raise ChatInputError(
                    f"That message does not fit the model's context window ({room:,} tokens with "
                    "room for the answer, the assistant's instructions included). Shorten it.",
                    status=413,
                )
            break
        kept.append({"role": role, "content": text})
        total = with_it
    kept.reverse()
    if system_prompt:
        kept.insert(0, {"role": "system", "content": system_prompt})
    return kept, total


# After the model answered ------------------------------------------------------------------


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
    # Whether the call may have reached Azure (and so may be billed): then a usage record is
    # written; otherwise the reservation is given back.
    metered: bool = True
    # Azure's usage never arrived (the call broke off): the counts are an estimate.
    estimated: bool = False
    # The deployment that answered, when a fallback did, and the ones that refused before it.
    served_deployment_id: int | None = None
    attempts: tuple[dict[str, Any], ...] = ()
    # How the call went, for the operations page's minute rollups (calls.observe).
    observation: CallObservation | None = None
    # The sources a grounded answer cites (grounding.quoting.citation).
    citations: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class FinishedTurn:
    message_id: int | None
    cost: Decimal
    conversation_cost: Decimal
    title: str


def chat_turn_finish(*, turn: Turn, outcome: Outcome) -> FinishedTurn:
    """Save the answer (partial or failed ones too) and settle the call, in one transaction."""
    now = timezone.now()
    # Read before the transaction, so that the write lock (SQLite's is the whole database) is
    # held for the writes only.
    conversation = Conversation.objects.filter(pk=turn.conversation_id).only("title", "history_off").first()
    department = turn.department or Department.objects.get(pk=turn.department_id)
    deployment = (
        turn.served_by(outcome.served_deployment_id)
        or turn.deployment
        or ModelDeployment.objects.get(pk=turn.deployment_id)
    )
    user = turn.user or User.objects.filter(pk=turn.user_id).first()
    if conversation is not None:
        conversation.department = department  # its retention: no query for what is at hand
    with transaction.atomic():
        message_id = None
        if conversation is not None:
            if turn.replaces_message_id is not None and (outcome.content or not outcome.error):
                Message.objects.filter(pk=turn.replaces_message_id, conversation=conversation).delete()
            message_id = _answer_save(conversation, outcome, model_name=deployment.model_name).pk
            _touch(conversation, title=turn.title, now=now)
        # Before the settlement, whose ledger rows new calls' admissions wait on until the commit:
        # the rollups' rows are locked first here as in the gateway's settlements (no deadlock).
        call_minutes_add(observations=[outcome.observation] if outcome.observation else [])
        cost = Decimal(0)
        if outcome.metered:
            # The conversation may have been deleted while it streamed: the money is still owed.
            record = admission_settle(
                reservation_id=turn.reservation_id,
                usage=Usage(
                    input_tokens=outcome.prompt_tokens,
                    cached_input_tokens=outcome.cached_tokens,
                    output_tokens=outcome.completion_tokens,
                    estimated=outcome.estimated,
                ),
                conversation=conversation,
                at=now,
                facts=(department, deployment, user),
                attempts=outcome.attempts,
            )
            cost = record.cost if record is not None else cost
        else:
            admission_release(reservation_id=turn.reservation_id)
    total = _conversation_cost_after(conversation, cost) if conversation is not None else cost
    return FinishedTurn(
        message_id=message_id,
        cost=cost,
        conversation_cost=total,
        title=conversation.title if conversation is not None else "",
    )


def _answer_save(conversation: Conversation, outcome: Outcome, *, model_name: str) -> Message:
    # Azure's count of the answer is its size in a later prompt (reasoning tokens make it larger,
    # never smaller); an answer without that count is counted here.
    tokens = outcome.completion_tokens if not outcome.estimated else None
    if tokens is None or not outcome.content:
        tokens = tokenizer.text_tokens(outcome.content, model_name=model_name)
    return Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content=outcome.content,
        tokens=tokens,
        prompt_tokens=outcome.prompt_tokens,
        cached_tokens=outcome.cached_tokens,
        completion_tokens=outcome.completion_tokens,
        time_to_first_token_ms=outcome.time_to_first_token_ms,
        duration_ms=outcome.duration_ms,
        finish_reason=outcome.finish_reason,
        content_filter=outcome.content_filter,
        error=outcome.error,
        citations=list(outcome.citations),
    )


def _conversation_cost_after(conversation: Conversation, cost: Decimal) -> Decimal:
    """What the conversation has cost so far, this answer included: counted up in the cache as
    answers are saved (the only way usage comes to a conversation), summed from the records
    when the cache does not have it."""
    key = f"chat:conversation-cost:{conversation.pk}"
    try:
        return int(cache.incr(key, int(cost / COST_UNITS))) * COST_UNITS
    except ValueError:  # not remembered: this answer's record is committed, and in the sum
        total = conversation_cost(conversation=conversation)
        cache.add(key, int(total / COST_UNITS), CONVERSATION_COST_SECONDS)
        return total
