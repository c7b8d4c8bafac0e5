"""GET /metrics for Prometheus, served by the ASGI application beside Django (portal.runtime.asgi),
like the gateway: no session, no CSRF, no sign-in page, nothing written.

Who may read it: with METRICS_TOKEN set, a caller that sends it as `Authorization: Bearer ...`;
anyone else gets 401. Without METRICS_TOKEN, only a caller on this machine's loopback address
whose request no proxy relayed (no X-Forwarded-For): "protected by binding", for a Prometheus on
the same host or in the same pod, which then needs no secret. Every other caller gets 401 too: a
request relayed by a reverse proxy from the internet also arrives from loopback, and the series
(department names, budgets) are not for everyone.

A scrape adds to the counts of every process (base.metrics) what is read at that moment: the
Celery queue's length and each department's budget used this month.
"""

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from base.metrics import exposition
from money.budgets import budgets_in_use
from portal.celery import app as celery_app

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]

PATH = "/metrics"
LOOPBACK = frozenset({"127.0.0.1", "::1"})
BROKER_TIMEOUT_SECONDS = 2


def allowed(scope: Scope) -> bool:
    """Whether the caller may read the series (see the module's docstring)."""
    token = settings.METRICS_TOKEN
    headers = dict(scope.get("headers") or [])
    if token:
        scheme, _, given = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    client = scope.get("client") or ("", 0)
    return client[0] in LOOPBACK and b"x-forwarded-for" not in headers


class QueueDepth(Collector):
    """Tasks waiting in the Celery queues, read from the broker at each scrape."""

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "switchyard_queue_depth", "Celery tasks waiting in the queue, read at scrape.", labels=["queue"]
        )
        queue = celery_app.conf.task_default_queue
        try:
            with celery_app.connection_for_read() as broker:
                broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
                channel: Any = broker.default_channel
                declared = channel.queue_declare(queue=queue, passive=True)
            family.add_metric([queue], declared.message_count)
        except Exception as error:  # a queue not declared yet is empty; a broker down says so in the log
            if "NOT_FOUND" in str(error) or "no queue" in str(error).lower():
                family.add_metric([queue], 0)
            else:
                logger.warning("Metrics: could not read the queue %s: %s", queue, error)
        yield family


class BudgetUse(Collector):
    """Each department's budget used this month, read at each scrape."""

    def collect(self) -> Iterable[Metric]:
        share = GaugeMetricFamily(
            "switchyard_budget_utilisation_ratio",
            "Share of the department's monthly budget spent this month (1 = all of it).",
            labels=["department"],
        )
        spent = GaugeMetricFamily(
            "switchyard_budget_spent_usd",
            "What the department has spent this month (USD).",
            labels=["department"],
        )
        budget = GaugeMetricFamily(
            "switchyard_budget_usd", "The department's monthly budget (USD).", labels=["department"]
        )
        for status in budgets_in_use():
            slug = status.department.slug
            share.add_metric([slug], float(status.share))
            spent.add_metric([slug], float(status.spent))
            budget.add_metric([slug], float(status.budget))
        yield from (share, spent, budget)


def _scrape() -> bytes:
    # On a thread of its own (sync_to_async, not thread-sensitive): its database connection is
    # closed after, as Django closes a request's.
    close_old_connections()
    try:
        return exposition([QueueDepth(), BudgetUse()])
    finally:
        connections.close_all()


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        await _answer(send, 405, b"Only GET.\n", [(b"allow", b"GET, HEAD")])
        return
    if not allowed(scope):
        await _answer(
            send,
            401,
            b"Send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'.\n",
            [(b"www-authenticate", b'Bearer realm="metrics"')],
        )
        return
    try:
        body = await sync_to_async(_scrape, thread_sensitive=False)()
    except Exception:
        logger.exception("Metrics: the scrape failed")
        await _answer(send, 500, b"The scrape failed; the server's log says why.\n")
        return
    await _answer(
        send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())], head=scope["method"] == "HEAD"
    )


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    head: bool = False,
) -> None:
    headers = headers or [(b"content-type", b"text/plain; charset=utf-8")]
    if not any(name == b"content-type" for name, _ in headers):
        headers.append((b"content-type", b"text/plain; charset=utf-8"))
    headers += [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
