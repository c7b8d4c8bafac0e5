"""What the web process changes for its whole interpreter, once the application is loaded."""

import gc
import sys

from django.core.signals import request_finished, request_started
from django.db import close_old_connections, reset_queries
from django.urls import get_resolver

# The web process is an event loop and a few threads (the request's thread, the chat's database
# thread). A thread that needs the GIL while the loop is busy streaming waits out this interval
# before Python hands it over, at every database call: shorter than Python's default, so that a
# chat turn's database work is not stretched by the streams going on around it.
SWITCH_INTERVAL_SECONDS = 0.001


def tune_process() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    skip_request_start_receivers()
    freeze_what_is_loaded()


def skip_request_start_receivers() -> None:
    """When a request starts, Django closes its thread's old database connections and resets the
    query log, and under ASGI it sends the request's thread to do so before anything else: a trip
    to a thread, and a wait for the GIL, ahead of every request (and of every chat's first token
    while other answers stream). Here a request's thread is one that a finished request handed
    back (`portal.runtime.asgi.RequestThreads`), and Django already closed that request's
    connections in it when it ended (`request_finished`, in the request's thread); the query log
    is now reset there too. The start-of-request work would only repeat it. (Django's test client
    connects `close_old_connections` again around its own requests; a test process then takes the
    extra trip, which changes nothing else.)"""
    request_started.disconnect(close_old_connections)
    request_started.disconnect(reset_queries)
    request_finished.connect(reset_queries)


def freeze_what_is_loaded() -> None:
    """Everything loaded so far (Django, the apps, the URLconf and the views it imports) lives as
    long as the process. Frozen, the garbage collector no longer walks it at every full
    collection, which would hold up every answer streaming in the process while it does."""
    get_resolver().url_patterns  # noqa: B018  (imports the views now rather than on a first request)
    gc.freeze()
