"""The application the servers run: Django's ASGI handler, each request on a thread of its own
from a pool, the gateway's paths (/openai/...) and Prometheus's /metrics (portal.metrics) beside
it, and the server's start and stop;
`asgi_application` also tunes the process (`portal.runtime.process`) once Django and the URLconf
are loaded."""

from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.core.asgi import get_asgi_application

from portal.runtime.process import tune_process

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]

# Threads kept for requests to come; past this many idle ones, a finished request's thread ends.
# A streamed answer holds its request's thread until it ends, so this is about the number of
# answers streaming at once: below it, threads would end and start again (and starting one
# blocks the event loop until it runs) all the time.
IDLE_REQUEST_THREADS = 128


class RequestThreads:
    """Django's thread per request, from a pool of threads that outlive their requests.

    Django gives each ASGI request a thread of its own for its synchronous code (so that a
    request's sync parts always run on the same thread). asgiref starts that thread with the
    request and joins it afterwards, and both block the event loop for a moment while it is busy
    streaming other answers. Here each request still gets one thread to itself, taken from a pool.
    """

    def __init__(
        self,
        application: Callable[[Scope, Receive, Send], Awaitable[None]],
        gateway: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None,
        metrics: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None,
    ) -> None:
        self.application = application
        self.gateway = gateway
        self.metrics = metrics
        self.idle: list[ThreadPoolExecutor] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if self.gateway is not None and scope["type"] == "http" and _is_gateway_path(scope["path"]):
            # Applications' calls (gateway.asgi): no Django request, no thread of their own.
            await self.gateway(scope, receive, send)
            return
        if self.metrics is not None and scope["type"] == "http" and scope["path"] == "/metrics":
            # Prometheus's scrapes: no session, no sign-in page (portal.metrics checks the token).
            await self.metrics(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.application(scope, receive, send)
            return
        executor = self.idle.pop() if self.idle else ThreadPoolExecutor(max_workers=1)
        try:
            # Django's own ThreadSensitiveContext, inside this one, then uses this thread.
            async with ThreadSensitiveContext(executor=executor):
                await self.application(scope, receive, send)
        finally:
            if len(self.idle) < IDLE_REQUEST_THREADS:
                self.idle.append(executor)
            else:
                executor.shutdown(wait=False)


def _is_gateway_path(path: str) -> bool:
    return path == "/openai" or path.startswith("/openai/")


async def lifespan(receive: Receive, send: Send) -> None:
    """The server's start and stop (Django itself only handles requests). When the server stops,
    after the last answer has streamed, the connections to Azure OpenAI and Azure AI Search and the
    chat's database connection are closed rather than dropped."""
    from base import loop_database
    from calls import database, transport
    from grounding import retrieval

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await transport.close_clients()
            await retrieval.close_clients()
            await database.close_connection()
            await loop_database.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


def asgi_application() -> RequestThreads:
    """Django's ASGI application in a process tuned for streaming (set DJANGO_SETTINGS_MODULE
    first)."""
    django_application = get_asgi_application()
    from gateway.asgi import application as gateway  # needs the apps loaded
    from portal.metrics import application as metrics

    application = RequestThreads(django_application, gateway, metrics)
    tune_process()
    return application
