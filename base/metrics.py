"""Prometheus's series, correct in one process and across several (gunicorn's workers, Celery's
pool): with PROMETHEUS_MULTIPROC_DIR set, every process writes its counts to memory-mapped files
in that directory and a scrape sums them (prometheus-client's multiprocess mode); without it, the
counts live in the process that serves /metrics.

Series of the lower layers are defined where they are counted (the calls' in calls/observe.py);
this module holds what every layer shares: the process-wide setup (`prometheus_ready`), the
provisioning engine's runs, and the text of a scrape (`exposition`).
"""

import os
import socket
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_ready = False


def multiprocess_dir() -> str:
    return os.environ.get(MULTIPROC_DIR_VARIABLE, "")


def _process_identifier() -> str:
    # The host as well as the process id: the web and the worker containers may share one
    # directory, and each numbers its processes from 1.
    return f"{socket.gethostname()}-{os.getpid()}"


def prometheus_ready() -> None:
    """Call before a series counts for the first time (each module that defines series does, at
    import). In multi-process mode the files are named per host and process, not per process id
    alone (prometheus-client's own `MultiProcessValue`, given another `process_identifier`)."""
    global _ready
    if _ready:
        return
    _ready = True
    if multiprocess_dir():
        values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)  # type: ignore[no-untyped-call]


prometheus_ready()

# Seconds a provisioning or decommissioning run took from its start to its end.
RUN_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
PROVISIONING_RUNS = Counter(
    "switchyard_provisioning_runs",
    "Provisioning and decommissioning runs that ended, by outcome.",
    ["kind", "outcome"],
)
PROVISIONING_RUN_SECONDS = Histogram(
    "switchyard_provisioning_run_seconds",
    "How long provisioning and decommissioning runs took, start to end.",
    ["kind", "outcome"],
    buckets=RUN_BUCKETS,
)


def provisioning_run_observed(*, kind: str, outcome: str, seconds: float | None) -> None:
    """A run ended (`kind`: provisioning or decommissioning; `outcome`: succeeded or failed)."""
    PROVISIONING_RUNS.labels(kind, outcome).inc()
    if seconds is not None:
        PROVISIONING_RUN_SECONDS.labels(kind, outcome).observe(max(seconds, 0.0))


def exposition(collectors: Iterable[Collector] = ()) -> bytes:
    """A scrape's text: every process's counts (or this process's) and what `collectors` read
    now (queue depth, budgets)."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        registry.register(_Everything())
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)


class _Everything(Collector):
    """The process's own registry, as one collector of a scrape's registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()
