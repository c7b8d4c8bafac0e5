"""The gateway's endpoints, every path under /openai/, as a plain ASGI application: applications call
it as they would call Azure OpenAI or OpenAI, with the unchanged SDKs.

- `POST /openai/deployments/{gateway_name}/chat/completions` and `.../embeddings` (Azure style,
  `AzureOpenAI(azure_endpoint=...)`; the api-version is accepted and Switchyard's own is used);
- `POST /openai/v1/chat/completions` and `/openai/v1/embeddings`, `model` = the gateway name, and
  `GET /openai/v1/models[/{id}]` (`OpenAI(base_url=".../openai/v1")`; `/openai/models` answers
  the same, for AzureOpenAI's `models.list()`).

This is the hot path of every application's call, so it does not go through Django's request
handling and middleware (sessions, CSRF, templates, a thread per request): a call costs a header
scan, its body read and parsed once, its admission before Azure is called and its settlement
after, with the calls that ended about the same time (`gateway_calls_finish`, on the calls'
database thread). The admission of a call whose key, deployment, price and ledgers the process
knows is one statement sent from the event loop (`gateway.metering.gateway_call_prepare_on_loop`);
any other call's is a job on the database thread (`gateway_call_prepare`). Every answer the
gateway gives itself is OpenAI's JSON error shape (gateway.errors), never a page.
"""

import asyncio
import contextlib
import contextvars
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.conf import settings
from django.utils import timezone

from audit.context import origin, request_id_or_new
from calls.database import database_job, database_job_alone, database_later
from calls.observe import call_minutes_flush_soon, record
from gateway.credentials import Credential
from gateway.errors import GatewayError, bad_request
from gateway.grounded import Grounded, grounded_body, question_of, send_not_covered
from gateway.listing import model_listing
from gateway.metering import (
    CHAT,
    EMBEDDINGS,
    CallOutcome,
    GatewayCall,
    gateway_call_prepare,
    gateway_call_prepare_on_loop,
    gateway_calls_finish,
)
from gateway.prompts import stream_wanted
from gateway.relay import JSON_HEADERS, Relay, send_error
from money.admission import admission_release
from provisioning import tokenizer

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]

# Read with the application, not by the first call that counts a prompt (it takes half a second).
tokenizer.o200k_base()

PREFIX = "/openai/"
OPERATIONS = {"chat/completions": CHAT, "embeddings": EMBEDDINGS}

# Settlements under way, kept until done (the loop holds tasks weakly).
_settling: set["asyncio.Task[None]"] = set()


def _not_found(path: str) -> GatewayError:
    return GatewayError(404, f"Switchyard's gateway has no endpoint {path}.", code="404")


def _route(method: str, path: str) -> tuple[str, str | None]:
    """(what the path asks for: an operation or "models"; the gateway name in it, if any)."""
    parts = path[len(PREFIX) :].strip("/").split("/") if path.startswith(PREFIX) else [""]
    if parts[0] == "models" and len(parts) <= 2:  # AzureOpenAI's models.list()
        _allow(method, "GET")
        return "models", parts[1] if len(parts) == 2 else None
    if parts[0] == "v1" and len(parts) >= 2:
        rest = "/".join(parts[1:])
        if rest == "models" or (parts[1] == "models" and len(parts) == 3):
            _allow(method, "GET")
            return "models", parts[2] if len(parts) == 3 else None
        if rest in OPERATIONS:
            _allow(method, "POST")
            return OPERATIONS[rest], None
    elif parts[0] == "deployments" and len(parts) >= 3 and parts[1]:
        operation = OPERATIONS.get("/".join(parts[2:]))
        if operation is not None:
            _allow(method, "POST")
            return operation, parts[1]
    raise _not_found(path)


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise GatewayError(
            405, f"This endpoint takes {allowed} requests, not {method}.", code="method_not_allowed"
        )


def _credential(headers: list[tuple[bytes, bytes]]) -> tuple[Credential | None, int | None]:
    """The caller's key or token (`api-key`, or `Authorization: Bearer`), the department it names
    (`Switchyard-Department`) and the body's length."""
    credential = department = None
    length = None
    for name, value in headers:
        if name == b"api-key":
            credential = value.decode("latin-1").strip()
        elif name == b"authorization" and credential is None:
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                credential = token.strip()
        elif name == b"switchyard-department":
            department = value.decode("latin-1").strip() or None
        elif name == b"content-length":
            with contextlib.suppress(ValueError):
                length = int(value)
    return (Credential(credential, department) if credential else None), length


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"The request body is larger than the gateway takes ({limit:,} bytes). Send fewer or smaller "
        "messages, inputs or images.",
        code="request_too_large",
    )


async def _read_body(receive: Receive, *, length: int | None, limit: int) -> bytes:
    if length is not None and length > limit:
        raise _too_large(limit)
    parts = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise bad_request("The request body did not arrive whole.")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _parse(raw: bytes) -> tuple[dict[str, Any] | None, GatewayError | None]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, bad_request(
            "We could not parse the JSON body of your request. The API expects a JSON payload, but what "
            "was sent was not valid JSON."
        )
    if not isinstance(body, dict):
        return None, bad_request("The request body must be a JSON object.")
    return body, None


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one request to a path under /openai/: an unforeseen failure too is answered in
    OpenAI's error shape (when the answer has not begun), never with the server's own page."""
    started = False
    request_id = _request_id(scope["headers"])

    async def send_started(message: Mapping[str, Any]) -> None:
        nonlocal started
        started = True
        # The answer names the call's id, as the portal's pages do (X-Request-ID).
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], (b"x-request-id", request_id.encode())]}
        await send(message)

    # The call's log lines and its requests to Azure (`x-ms-client-request-id`) carry its id.
    with origin(request_id=request_id):
        try:
            await _handle(scope, receive, send, send_started)
        except Exception:
            logger.exception("The gateway failed on %s %s", scope["method"], scope["path"])
            if not started:
                failure = GatewayError(
                    500,
                    "Switchyard's gateway failed on this call. Try again; tell a platform admin if it "
                    "keeps happening.",
                    type="server_error",
                )
                await send_error(send_started, failure)


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            return request_id_or_new(value.decode("latin-1"))
    return request_id_or_new("")


async def _handle(scope: Scope, receive: Receive, send: Send, send_started: Send) -> None:
    # Every answer begins through `send_started`; a stream's chunks then go through `send`.
    try:
        what, gateway_name = _route(scope["method"], scope["path"])
        credential, length = _credential(scope["headers"])
        if credential is None:
            raise GatewayError(
                401,
                "No API key was given. Send a department API key in the 'api-key' header or as "
                "'Authorization: Bearer <key>', or an Entra ID access token as the bearer token.",
                code="invalid_api_key",
            )
        if what == "models":
            listing = await database_job(model_listing, credential=credential, model_id=gateway_name)
            await _send_json(send_started, listing)
            return
        raw = await _read_body(receive, length=length, limit=settings.GATEWAY_MAX_BODY_BYTES)
        body, body_error = _parse(raw)
        stream = include_usage = False
        if body is not None:
            try:
                stream, include_usage = stream_wanted(body)
            except GatewayError as error:
                body_error = error
        call = None
        if body is not None and body_error is None:
            # A call whose facts the process remembers is admitted from the event loop; any
            # other (or one the loop cannot admit) from the start, on the database thread.
            call = await gateway_call_prepare_on_loop(
                credential=credential,
                gateway_name=gateway_name,
                operation=what,
                body=body,
                body_bytes=len(raw),
            )
        if call is None:
            call = await database_job_alone(
                gateway_call_prepare,
                credential=credential,
                gateway_name=gateway_name,
                operation=what,
                body=body,
                body_error=body_error,
            )
    except GatewayError as error:
        await send_error(send_started, error, close=error.status == 413)
        call_minutes_flush_soon()  # a call refused at admission: its minute, off this call's path
        return
    assert body is not None
    context = None
    if call.data_sets:
        grounded = await _grounded(
            call, body, scope, send_started, stream=stream, include_usage=include_usage
        )
        if grounded is None:
            return
        body, context = grounded.body, grounded.context
    relay = Relay(call, body, stream=stream, include_usage=include_usage, start=send_started, context=context)
    await _serve(call, relay, receive=receive, send=send)


async def _grounded(
    call: GatewayCall,
    body: dict[str, Any],
    scope: Scope,
    send_started: Send,
    *,
    stream: bool,
    include_usage: bool,
) -> Grounded | None:
    """The grounded call's body and context; None when the gateway answered itself (the documents
    do not cover the question, or could not be searched) and gave the reservation back."""
    try:
        grounded = await grounded_body(call, body, scope)
    except asyncio.CancelledError:
        await _release(call)
        raise
    except Exception:
        logger.exception("Could not search the documents for %s", call.caller.label)
        await _release(call)
        await send_error(
            send_started,
            GatewayError(
                503,
                f"The documents {call.routed.deployment.gateway_name} answers from could not be searched "
                "just now. Try again in a moment.",
                type="server_error",
                code="grounding_unavailable",
                retry_after=5,
            ),
        )
        return None
    if isinstance(grounded, str):
        await _release(call)
        await send_not_covered(
            send_started,
            call=call,
            answer=grounded,
            question=question_of(body),
            stream=stream,
            include_usage=include_usage,
        )
        return None
    return grounded


async def _release(call: GatewayCall) -> None:
    # Azure was not called: the reservation goes back whole.
    try:
        await database_later(admission_release, reservation_id=call.admission.reservation_id)
    except Exception:
        logger.exception("Could not give back the reservation of %s", call.caller.label)


async def _send_json(send: Send, body: bytes) -> None:
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _serve(call: GatewayCall, relay: Relay, *, receive: Receive, send: Send) -> None:
    """Relay the admitted call and settle it, however it ends. A stream is watched for the
    application going away (the server tells only `receive`): the relay is then cancelled, Azure's
    stream closed, and what was delivered metered."""
    task = asyncio.current_task()
    watcher = None
    left = False
    if relay.stream and task is not None:

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            # The server says the same when the response is complete.
            if not relay.finished:
                left = True
                task.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
    try:
        await relay.run(send)
    except asyncio.CancelledError:
        relay.outcome.stopped = True
        relay.left_on_the_way()
        if not left:  # the server is stopping: settle in a task of its own, and stop
            settling = asyncio.get_running_loop().create_task(_settle(call, relay))
            _settling.add(settling)
            settling.add_done_callback(_settling.discard)
            raise
        assert task is not None
        task.uncancel()
    except Exception:
        relay.outcome.stopped = True
        relay.left_on_the_way()
        await _settle(call, relay)
        raise
    finally:
        if watcher is not None:
            watcher.cancel()
    await _settle(call, relay)


async def _settle(call: GatewayCall, relay: Relay) -> None:
    """Settle the call with the others that ended meanwhile, after its answer went out (the
    application does not wait); the request ends when its call is settled, so a server that stops
    waits for its settlements."""
    outcome = relay.outcome
    outcome.observation = outcome.observed(call, at=timezone.now())
    record(outcome.observation)  # Prometheus's series, in memory; the minute rollups settle with it
    await _settlements().add(call, outcome)


class Settlements:
    """Calls waiting to be settled, and the one job at a time that settles them together on the
    database thread (`gateway_calls_finish`): while a job runs, the calls that end meanwhile
    gather for the next, so the busier the gateway, the more calls share a commit."""

    def __init__(self) -> None:
        self.waiting: list[tuple[GatewayCall, CallOutcome, asyncio.Future[None]]] = []
        self.settling = False

    async def add(self, call: GatewayCall, outcome: CallOutcome) -> None:
        settled = asyncio.get_running_loop().create_future()
        self.waiting.append((call, outcome, settled))
        if not self.settling:
            self.settling = True
            # In a context of its own: it settles other calls than this one (their log lines
            # must not carry this call's request id).
            task = asyncio.get_running_loop().create_task(self._settle_all(), context=contextvars.Context())
            _settling.add(task)
            task.add_done_callback(_settling.discard)
        await settled

    async def _settle_all(self) -> None:
        try:
            while self.waiting:
                if len(self.waiting) < SETTLE_BATCH:
                    # The calls that end meanwhile share this job's commit: fewer commits, each
                    # holding the ledgers' rows (which every admission takes) until it is flushed.
                    await asyncio.sleep(SETTLE_GATHER_SECONDS)
                batch, self.waiting = self.waiting[:SETTLE_BATCH], self.waiting[SETTLE_BATCH:]
                try:
                    await database_later(
                        gateway_calls_finish, finished=[(call, outcome) for call, outcome, _ in batch]
                    )
                except Exception:
                    logger.exception("Could not settle %d gateway calls", len(batch))
                for _, _, settled in batch:
                    if not settled.done():
                        settled.set_result(None)
        finally:
            self.settling = False


# Calls settled together at most: a job short enough that a new call's admission, which goes
# first on the database thread but waits for the job under way, is not held up.
SETTLE_BATCH = 16
# How long calls that end gather before they are settled, unless a batch is full first: nobody
# waits for a settlement but the request's task (the answer has gone out), and a cost page sees the
# call within seconds all the same.
SETTLE_GATHER_SECONDS = 0.2
_settlements_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Settlements]" = (
    weakref.WeakKeyDictionary()
)


def _settlements() -> Settlements:
    loop = asyncio.get_running_loop()
    settlements = _settlements_by_loop.get(loop)
    if settlements is None:
        settlements = _settlements_by_loop[loop] = Settlements()
    return settlements
