"""A gateway call's database work: once before Azure is called (`gateway_call_prepare`: who calls,
on what, how big, admitted by reservation) and once after (`gateway_call_finish`: settled into a
usage record on the deployment that served, or released), each one job on the calls' database
thread (`calls.database`), as the chat's turns are."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from django.db import DatabaseError, OperationalError, transaction
from django.utils import timezone

from base.loop_database import loop_database
from calls.database import database_job, on_own_connections
from calls.observe import (
    ANSWERED,
    API,
    REFUSED,
    STOPPED,
    UPSTREAM_ERROR,
    CallObservation,
    call_minutes_add,
    refusal_observed,
)
from gateway.callers import Caller, CallerRefused, callers_version, callers_version_read_lately
from gateway.credentials import Credential, caller_for_credential, caller_remembered_for_credential
from gateway.deployments import Routed, deployment_for, deployment_remembered
from gateway.errors import GatewayError, bad_request
from gateway.prompts import CallSize, chat_size, embeddings_size
from grounding.models import DataSet
from grounding.quoting import sources_room
from grounding.retrieval import grounded_data_sets
from money.admission import (
    Admission,
    AdmissionRefused,
    Usage,
    admission_held,
    admission_plan,
    admission_refresh_ledgers,
    admission_release,
    admission_reserve,
    admission_settle,
    ledger_moves_batched,
)
from money.limits import Claim
from money.models import UsageRecord
from money.usage import usage_rollups_batched
from org.models import User
from provisioning.models import ModelDeployment

logger = logging.getLogger(__name__)

CHAT, EMBEDDINGS = "/chat/completions", "/embeddings"


@dataclass(frozen=True)
class GatewayCall:
    """A call let through: everything the relay and its settlement need, read before the call."""

    caller: Caller
    routed: Routed
    operation: str
    size: CallSize
    admission: Admission
    user: User | None = None
    # A chat call on a grounded assistant: the data sets searched for it (read on the server at
    # this call, never from the request) and the prompt tokens set aside for the sources.
    data_sets: tuple[DataSet, ...] = ()
    sources_room: int = 0


def _grounded_data_sets(routed: Routed, operation: str) -> tuple[DataSet, ...]:
    if operation != CHAT:
        return ()
    return tuple(grounded_data_sets(routed.deployment))


def gateway_call_prepare(
    *,
    credential: Credential,
    gateway_name: str | None,
    operation: str,
    body: dict[str, Any] | None,
    body_error: GatewayError | None,
    now: datetime | None = None,
) -> GatewayCall:
    """Authenticate, find the deployment, size the call and reserve its bound, in that order (a
    caller without a good key hears only that). Raises `GatewayError` with the refusal."""
    now = now or timezone.now()
    # Read before the checks it covers (see base.remembered).
    version = callers_version()
    try:
        caller = caller_for_credential(credential, now=now, version=version)
    except CallerRefused as refused:
        raise GatewayError(refused.status, refused.message, code=refused.code) from None
    if body_error is not None:
        raise body_error
    assert body is not None
    if gateway_name is None:
        gateway_name = body.get("model")
        if not isinstance(gateway_name, str) or not gateway_name:
            raise bad_request(
                "Missing required parameter: 'model' (the deployment's gateway name).",
                param="model",
                code="missing_required_parameter",
            )
    routed = deployment_for(caller, gateway_name, version=version)
    size = _size(operation, body, routed)
    data_sets = _grounded_data_sets(routed, operation)
    room = sources_room(model_name=routed.deployment.model_name) if data_sets else 0
    if room:
        # The bound covers the sources, whatever retrieval returns (they are fitted to the room).
        size = CallSize(prompt_tokens=size.prompt_tokens + room, max_output_tokens=size.max_output_tokens)
    user = User.objects.filter(pk=caller.user_id).first() if caller.user_id is not None else None
    admission = _admit(caller, routed, size, user, now=now)
    return GatewayCall(caller, routed, operation, size, admission, user, data_sets, room)


# A prompt is counted on the event loop (`gateway_call_prepare_on_loop`) only up to this size of
# body: counting a long one would hold up every answer the loop is relaying.
ON_LOOP_BODY_BYTES = 16 * 1024


async def gateway_call_prepare_on_loop(
    *, credential: Credential, gateway_name: str | None, operation: str, body: dict[str, Any], body_bytes: int
) -> GatewayCall | None:
    """`gateway_call_prepare` without leaving the event loop, for the call whose facts this process
    remembers (a key it knows, a deployment it has routed, prices and ledgers it has read): the
    call is sized on the loop and its reservation is one statement sent from the loop
    (`base.loop_database`), which a call waits for before Azure is asked, where the database
    thread costs hand-overs of the interpreter lock and a queue. None: anything else (a key or
    token to check, a refusal to explain, a window to take), which `gateway_call_prepare` does
    on the database thread, from the start."""
    if body_bytes > ON_LOOP_BODY_BYTES or not on_own_connections():
        return None
    now = timezone.now()
    version = callers_version_read_lately()
    if version is None:
        return None
    caller = caller_remembered_for_credential(credential, now=now, version=version)
    if caller is None or caller.user_id is not None:
        return None
    if gateway_name is None:
        gateway_name = body.get("model")
        if not isinstance(gateway_name, str) or not gateway_name:
            return None
    routed = deployment_remembered(caller, gateway_name, version=version)
    if routed is None or (routed.grounded and operation == CHAT):
        return None
    try:
        size = _size(operation, body, routed)
    except GatewayError:
        return None
    plan = admission_plan(claim=_claim(caller, routed, size, None), now=now)
    if plan is None:
        return None
    try:
        rows = await loop_database().fetchall(plan.sql, plan.params)
    except psycopg.errors.DataError:
        return None  # a ledger without room, or gone: nothing was held, and the thread says which
    except psycopg.Error:
        # The statement may have been made before the connection broke: whatever it held is
        # given back before the call is admitted again on the thread.
        await database_job(admission_release, reservation_id=plan.reservation.pk)
        return None
    admission, stale = admission_held(plan, rows, now=now)
    if stale:
        await database_job(admission_refresh_ledgers, money_limits=stale, now=now)
    return GatewayCall(caller, routed, operation, size, admission, None)


def _size(operation: str, body: dict[str, Any], routed: Routed) -> CallSize:
    model_name = routed.deployment.model_name
    if operation == CHAT:
        return chat_size(body, model_name=model_name, limits=routed.limits)
    return embeddings_size(body, model_name=model_name)


def _claim(caller: Caller, routed: Routed, size: CallSize, user: User | None) -> Claim:
    return Claim(
        department=caller.department,
        deployment=routed.deployment,
        prompt_tokens=size.prompt_tokens,
        max_output_tokens=size.max_output_tokens,
        source=UsageRecord.Source.API,
        user=user,
        api_key_id=caller.api_key_id,
        principal_id=caller.principal_id,
        requests_per_minute=caller.requests_per_minute,
        tokens_per_minute=caller.tokens_per_minute,
        fallbacks=routed.fallbacks,
    )


def _admit(caller: Caller, routed: Routed, size: CallSize, user: User | None, *, now: datetime) -> Admission:
    """Reserve the call's bound against the department's budget, the grant's caps, the caller's
    own limits (and a person's); a refusal is a 429 in words for the application's developer."""
    claim = _claim(caller, routed, size, user)
    try:
        return admission_reserve(claim=claim, now=now)
    except AdmissionRefused as refused:
        refusal_observed(
            CallObservation(
                deployment_id=routed.deployment.pk,
                deployment=routed.deployment.gateway_name,
                department_id=caller.department.pk,
                department=caller.department.slug,
                source=API,
                outcome=REFUSED,
                at=now,
                refused_reason=refused.limit,
            )
        )
        budget = refused.limit in ("department", "grant")
        raise GatewayError(
            429,
            refused.message,
            type="insufficient_quota" if budget else "rate_limit_exceeded",
            code="insufficient_quota" if budget else "rate_limit_exceeded",
            retry_after=refused.retry_after or (3600 if budget else 60),
            # Money left this month does not come back in seconds: the SDKs should not retry.
            retry=not budget,
        ) from None


@dataclass
class CallOutcome:
    """How a call ended: who served it, what Azure counted (or what was delivered, when Azure's
    count never came), and whether Azure may bill it."""

    served_deployment_id: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    delivered_chunks: int = 0
    metered: bool = False
    # For the call's observation (calls.observe): timings from the relay's start, Azure's refusal
    # or what broke ("stream"), and whether the application went away first.
    first_token_ms: int | None = None
    answer_ms: int | None = None
    upstream_status: str = ""
    stopped: bool = False
    observation: CallObservation | None = None

    def observed(self, call: GatewayCall, *, at: datetime) -> CallObservation:
        """How the call went, from what the relay noted."""
        if self.upstream_status:
            outcome = UPSTREAM_ERROR
        elif self.stopped or not self.metered:
            outcome = STOPPED
        else:
            outcome = ANSWERED
        routed = call.routed
        throttled = sum(1 for attempt in self.attempts if attempt.get("status") == 429)
        throttled += self.upstream_status == "429"
        served = None
        if self.served_deployment_id not in (None, routed.deployment.pk):
            served = _served(call, self.served_deployment_id)
        usage = self.usage_for(call) if self.metered else None
        return CallObservation(
            deployment_id=routed.deployment.pk,
            deployment=routed.deployment.gateway_name,
            department_id=call.caller.department.pk,
            department=call.caller.department.slug,
            source=API,
            outcome=outcome,
            at=at,
            upstream_status=self.upstream_status,
            first_token_ms=self.first_token_ms,
            answer_ms=self.answer_ms if outcome == ANSWERED else None,
            throttled=throttled,
            failover_to=served.gateway_name if served else "",
            failover_to_id=served.pk if served else None,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
        )

    def usage_for(self, call: GatewayCall) -> Usage:
        usage = self.usage
        if usage is None:
            # Broken off (the application left, the stream broke): the prompt as bounded before the
            # call and a token per content chunk delivered, marked as an estimate.
            return Usage(
                input_tokens=call.size.prompt_tokens, output_tokens=self.delivered_chunks, estimated=True
            )
        details = usage.get("prompt_tokens_details") or {}
        return Usage(
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            cached_input_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
        )


SETTLE_ATTEMPTS = 3


def gateway_call_finish(*, call: GatewayCall, outcome: CallOutcome) -> UsageRecord | None:
    """Settle the call on the deployment that served it (its usage record, source `api`, with
    the caller and the attempts before), or give its reservation back when Azure refused it."""
    for attempt in range(SETTLE_ATTEMPTS):
        try:
            with transaction.atomic():
                # The minute rollups' rows first, the ledgers' last, as in `gateway_calls_finish`.
                call_minutes_add(observations=[outcome.observation] if outcome.observation else [])
                return _finish(call, outcome)
        except OperationalError:
            # SQLite answers "database is locked" when writers queue past its timeout.
            if attempt == SETTLE_ATTEMPTS - 1:
                raise
    return None


def gateway_calls_finish(*, finished: Sequence[tuple[GatewayCall, CallOutcome]]) -> None:
    """Settle calls that ended about the same time in one transaction: one commit for all of them
    instead of one each, which is what settling many calls a second costs most, their rollups
    added in one statement per rollup table and their ledgers changed in one, last. Should the
    transaction fail, each call is settled on its own (a settlement is safe to repeat)."""
    try:
        # The rollups of all of them in one statement per rollup table, at the end.
        with transaction.atomic(), ledger_moves_batched(), usage_rollups_batched():
            # The calls' minute rollups, in the same transaction (no commit of their own), and
            # first: their rows are locked in the same order by every settlement.
            call_minutes_add(
                observations=[outcome.observation for _, outcome in finished if outcome.observation]
            )
            for call, outcome in finished:
                _finish(call, outcome)
    except DatabaseError:
        for call, outcome in finished:
            try:
                gateway_call_finish(call=call, outcome=outcome)
            except DatabaseError:
                # The reservation stays and expires; reconciliation settles it on an estimate.
                logger.exception("Could not settle the gateway call of %s", call.caller.label)


def _finish(call: GatewayCall, outcome: CallOutcome) -> UsageRecord | None:
    if not outcome.metered:
        admission_release(reservation_id=call.admission.reservation_id)
        return None
    return admission_settle(
        reservation_id=call.admission.reservation_id,
        reserved=call.admission.reserved,
        usage=outcome.usage_for(call),
        facts=(call.caller.department, _served(call, outcome.served_deployment_id), call.user),
        attempts=outcome.attempts,
    )


def _served(call: GatewayCall, deployment_id: int | None) -> ModelDeployment:
    for deployment in (call.routed.deployment, *call.routed.fallbacks):
        if deployment.pk == deployment_id:
            return deployment
    return call.routed.deployment
