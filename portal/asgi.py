import gc
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.core.asgi import get_asgi_application
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, reset_queries
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

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

    def __init__(self, application: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.application = application
        self.idle: list[ThreadPoolExecutor] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
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


async def lifespan(receive: Receive, send: Send) -> None:
    """The server's start and stop (Django itself only handles requests). When the server stops,
    after the last answer has streamed, the connections to Azure OpenAI and the chat's database
    connection are closed rather than dropped."""
    from chat import database, streaming

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await streaming.close_clients()
            await database.close_connection()
            await send({"type": "lifespan.shutdown.complete"})
            return


# The web process is an event loop and a few threads (the request's thread, the chat's database
# thread). A thread that needs the GIL while the loop is busy streaming waits out this interval
# before Python hands it over, at every database call: 1 ms instead of the default 5 ms keeps a
# chat turn's database work from stretching to tens of milliseconds under load.
sys.setswitchinterval(0.001)

application = RequestThreads(get_asgi_application())

# When a request starts, Django closes its thread's old database connections and resets the query
# log, and under ASGI it sends the request's thread to do so before anything else: a trip to a
# thread, and a wait for the GIL, ahead of every request (milliseconds before a chat's first token
# while other answers stream). Here a request's thread is one that a finished request handed back,
# and Django already closed that request's connections in it when it ended (`request_finished`, in
# the request's thread); the query log is now reset there too. The start-of-request work would
# only repeat it. (Django's test client connects `close_old_connections` again around its own
# requests; a test process then takes the extra trip, which changes nothing else.)
request_started.disconnect(close_old_connections)
request_started.disconnect(reset_queries)
request_finished.connect(reset_queries)

# Everything loaded so far (Django, the apps, the URLconf and the views it imports) lives as long
# as the process. Frozen, the garbage collector no longer walks it at every full collection,
# which held up every answer in the process for up to a fifth of a second.
get_resolver().url_patterns  # noqa: B018  (imports the views now rather than on a first request)
gc.freeze()
