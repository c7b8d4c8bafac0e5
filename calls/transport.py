"""The chat's connection to Azure OpenAI: one SDK client per event loop and account endpoint, on
aiohttp, and the call that starts a streamed answer. What the answer then becomes (events for the
browser, batched) is chat/streaming.py; the database work around it is calls/database.py."""

import asyncio
import inspect
import json
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlencode

import aiohttp
import httpx2
import openai
from openai import AsyncAzureOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from audit.context import current_origin
from base import compat
from provisioning.azure import CLIENT_REQUEST_ID, COGNITIVE_SERVICES_SCOPE, credential, is_emulator

API_VERSION = "2025-04-01-preview"
# Every call names the request (or task) it serves in `x-ms-client-request-id` (audit.context), the
# id Switchyard's logs, its audit trail and its answer's X-Request-ID carry: Azure's logs and a
# support case then find the same call.
# Azure's own 429s are retried by the SDK (honouring retry-after) before the user hears of them.
MAX_RETRIES = 2
# Between two chunks, not for the whole answer: a long answer may stream for minutes.
READ_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 10.0

# An SDK client holds a connection pool bound to the event loop that made it, and building one
# sets up TLS, so each loop keeps one client per account endpoint.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncAzureOpenAI]]" = (
    weakref.WeakKeyDictionary()
)


class BearerToken:
    """The data plane's Entra ID token, as the SDK's `azure_ad_token_provider` and the gateway's
    relay take it: kept until shortly before it expires, where a credential asked on every call
    builds a pipeline request for it (and the emulator's encodes a JWT)."""

    # A new token is asked for this long before the one held expires.
    REFRESH_SECONDS = 300

    def __init__(self) -> None:
        self.token = ""
        self.refresh_at = 0.0
        self.lock = asyncio.Lock()
        if is_emulator():
            # The emulator's credential only encodes a JWT: cheap and non-blocking.
            self.credential: Any = credential()
        else:
            # Real Entra ID: the async credential, so a refresh never blocks the event loop.
            from azure.identity.aio import DefaultAzureCredential

            self.credential = DefaultAzureCredential()

    def __call__(self) -> str | Awaitable[str]:
        if self.token and time.time() < self.refresh_at:
            return self.token
        return self.refreshed()

    async def refreshed(self) -> str:
        async with self.lock:  # the calls waiting meanwhile take the token the first one got
            if not self.token or time.time() >= self.refresh_at:
                access = self.credential.get_token(COGNITIVE_SERVICES_SCOPE)
                if inspect.isawaitable(access):
                    access = await access
                self.token = access.token
                self.refresh_at = access.expires_on - self.REFRESH_SECONDS
        return self.token


# Built once, when the process starts: loading the trusted certificates is slow enough that a
# client made on the event loop would hold up every answer streaming.
TLS_CONTEXT = httpx2.create_ssl_context()


# Where an answer's response keeps its body (`AnswerBody`), in `httpx2.Response.extensions`.
ANSWER_BODY = "switchyard.answer_body"


class AnswerTransport(httpx2.AsyncBaseTransport):
    """The SDK's aiohttp transport (`openai[aiohttp]`): aiohttp parses the answer's chunks in C,
    for a fraction of the CPU the default transport spends on each, which decides how many
    answers one web process streams without delaying their first tokens. Each response's body
    is an `AnswerBody`."""

    def __init__(self) -> None:
        self.transport = compat.aiohttp_transport(verify=TLS_CONTEXT)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            response = await self.transport.handle_async_request(request)
        except httpx2.TransportError as error:
            if not _closed_by_the_server(error):
                raise
            # A pooled connection the server closed as it sat idle (keep-alive expiry) just as this
            # call took it: the server hung up without answering, so the call is sent once more, on
            # a new connection. Otherwise it would reach the caller as "did not answer in time".
            response = await self.transport.handle_async_request(request)
        stream = response.stream
        received = compat.aiohttp_response(stream)
        if received is not None and isinstance(stream, httpx2.AsyncByteStream):
            response.stream = response.extensions[ANSWER_BODY] = AnswerBody(stream, received)
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()


def _closed_by_the_server(error: BaseException) -> bool:
    """Whether aiohttp's error under the transport's is the server hanging up before answering
    (the transport maps every aiohttp connection error to a timeout or a connect error)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, aiohttp.ServerDisconnectedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class AnswerBody(httpx2.AsyncByteStream):
    """An answer's body as aiohttp receives it, with two changes.

    - When the connection breaks mid-answer, aiohttp raises at once and drops what it had
      received but nobody had read yet (a burst of tokens that came with the break). Here that
      part is handed over first, so the person keeps it and it is metered.
    - `rest` waits without reading, and without the event loop waking for every token that
      arrives meanwhile (Azure sends each in a packet of its own): the socket is left alone and
      the next read takes what the kernel kept. Between two batches of an answer's text this
      saves most of the process's wake-ups, for every answer streaming.
    """

    def __init__(self, stream: httpx2.AsyncByteStream, received: aiohttp.ClientResponse) -> None:
        self.stream = stream
        self.received = received

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.stream:
                yield chunk
        except httpx2.ReadError:
            unread = compat.unread_bytes(self.received)
            if unread:
                yield unread
            raise

    async def rest(self, seconds: float) -> None:
        transport = compat.socket_transport(self.received)
        if transport is None or not transport.is_reading():
            # Done (the connection went back to the pool) or held by aiohttp's own flow control.
            await asyncio.sleep(seconds)
            return
        transport.pause_reading()
        try:
            await asyncio.sleep(seconds)
        finally:
            if not transport.is_closing():
                transport.resume_reading()

    async def aclose(self) -> None:
        await self.stream.aclose()


def rest_between_reads(response: httpx2.Response) -> Callable[[float], Awaitable[None]]:
    """How to wait between two reads of an answer: without reading, where its body allows it."""
    body = response.extensions.get(ANSWER_BODY)
    return body.rest if isinstance(body, AnswerBody) else asyncio.sleep


@dataclass(frozen=True)
class _Upstream:
    """What every relayed call to one account endpoint sends alike, worked out once per client."""

    client: AsyncAzureOpenAI
    token: BearerToken
    deployments_url: str  # ends with /deployments/
    query: str  # ?api-version=...
    headers: dict[str, str]
    extensions: dict[str, Any]


_upstreams: "weakref.WeakKeyDictionary[AsyncAzureOpenAI, _Upstream]" = weakref.WeakKeyDictionary()


def openai_client(endpoint: str) -> AsyncAzureOpenAI:
    loop = asyncio.get_running_loop()
    clients = _clients.setdefault(loop, {})
    client = clients.get(endpoint)
    if client is None:
        token = BearerToken()
        client = AsyncAzureOpenAI(
            azure_endpoint=endpoint,
            api_version=API_VERSION,
            azure_ad_token_provider=token,
            max_retries=MAX_RETRIES,
            timeout=openai.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            http_client=openai.DefaultAioHttpClient(transport=AnswerTransport()),
        )
        clients[endpoint] = client
        headers = {name: value for name, value in client.default_headers.items() if isinstance(value, str)}
        _upstreams[client] = _Upstream(
            client=client,
            token=token,
            deployments_url=f"{str(client.base_url).rstrip('/')}/deployments/",
            query="?" + urlencode({name: str(value) for name, value in client.default_query.items()}),
            headers=headers,
            extensions={"timeout": httpx2.Timeout(client.timeout).as_dict()},
        )
    return client


async def close_clients() -> None:
    """Close the running event loop's clients and their connections (when the process stops)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


async def chat_completion_stream(
    client: AsyncAzureOpenAI,
    *,
    deployment: str,
    messages: list[dict[str, str]],
    max_output_tokens: int,
    retry: bool = True,
) -> httpx2.Response:
    """Start a streamed chat completion, with its usage at the end; returns the response with its
    headers read and its body (server-sent events) not yet.

    The SDK makes the call: the deployment's URL, the API version, the token, retries on 429
    honouring retry-after, and errors raised as `openai.APIError`s. It is made with the client's
    `post` rather than the typed `chat.completions.create`, which sends the same request but first
    checks every message of the conversation against each of the six kinds of message to
    transform it: for text messages that changes nothing, and it holds up the event loop before
    the call goes out, the longer the conversation the more. The answer is read from the raw
    response, not parsed into one pydantic object per token, which with many answers streaming
    would take much of the process's CPU.

    `retry=False`: Azure's 429 is not retried here (a fallback deployment will take the call)."""
    options = compat.unparsed_stream_options()
    if not retry:
        options["max_retries"] = 0
    request_id = current_origin().request_id
    if request_id:
        options["headers"] = {**options.get("headers", {}), CLIENT_REQUEST_ID: request_id}
    answer = await client.post(
        "/chat/completions",
        body={
            "model": deployment,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            # The answer's length bounds what the call may cost: admission reserved for it.
            "max_completion_tokens": max_output_tokens,
        },
        cast_to=ChatCompletion,
        stream=True,
        stream_cls=openai.AsyncStream[ChatCompletionChunk],
        options=options,
    )
    return cast("openai.AsyncAPIResponse[Any]", answer).http_response


def _with_request_id(headers: dict[str, str]) -> dict[str, str]:
    request_id = current_origin().request_id
    if request_id:
        headers[CLIENT_REQUEST_ID] = request_id
    return headers


async def relayed_call(
    client: AsyncAzureOpenAI, *, operation: str, body: dict[str, Any], stream: bool
) -> httpx2.Response:
    """Send an application's call (`operation`: "/chat/completions" or "/embeddings", the body as
    the application wrote it, its `model` the Azure deployment's name) to the deployment, and
    hand back the raw response, headers read and body unread, which the gateway passes on as
    Azure wrote it. Errors are raised as the SDK raises them (`openai.APIError`s). Not retried:
    the application's own client retries a 429 it is told of, and a fallback deployment takes the
    call meanwhile.

    The request is the one the SDK's `post` would send (URL, API version, token, headers), built
    here from what `openai_client` worked out once per endpoint and sent on the SDK client's
    connections: the SDK builds its options, headers and URL afresh for every call, which cost as
    much of the web process as the rest of the relay. `stream` makes no difference here: the body
    is always left unread."""
    upstream = _upstreams[client]
    token = upstream.token()
    if not isinstance(token, str):
        token = await token
    url = f"{upstream.deployments_url}{quote(str(body['model']), safe='')}{operation}{upstream.query}"
    request = httpx2.Request(
        "POST",
        url,
        headers=_with_request_id({**upstream.headers, "Authorization": f"Bearer {token}"}),
        content=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        extensions=dict(upstream.extensions),
    )
    try:
        response = await compat.sdk_http_client(client).send(request, stream=True)
    except httpx2.TimeoutException as error:
        raise openai.APITimeoutError(request=request) from error
    except httpx2.HTTPError as error:
        raise openai.APIConnectionError(request=request) from error
    if response.status_code >= 400:
        try:
            await response.aread()
        finally:
            await response.aclose()
        raise compat.sdk_status_error(client, response)
    return response
