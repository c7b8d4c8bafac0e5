"""A real Celery worker process for tests: on this test's own broker (a Redis database when CI
provides Redis, else a folder) and the test database, against the test emulator."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kombu.pools
import pytest
from django.db import connection

from portal.celery import app as celery_app

# The repository: the worker imports the project from its working directory.
PROJECT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The test database, as a URL a worker process can open."""
    database = connection.settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{database['NAME']}"
    user = database["USER"] or "postgres"
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    host, port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{database['NAME']}"


@pytest.fixture
def broker(tmp_path, monkeypatch):
    """A broker of this test's own: a Redis database when CI provides Redis, else a folder."""
    environment = {}
    if os.environ.get("REDIS_URL"):
        # The Redis database the run was given (another run may use the others): only the
        # broker's keys are cleared, before and after, so the cache there is left alone.
        url = os.environ["REDIS_URL"]
        clear_redis_broker(url)
    else:
        url = "filesystem://"
        environment["CELERY_BROKER_DIR"] = str(tmp_path / "broker")
        (tmp_path / "broker").mkdir()
        folders = {
            "data_folder_in": str(tmp_path / "broker"),
            "data_folder_out": str(tmp_path / "broker"),
            "control_folder": str(tmp_path / "broker" / "control"),
            "store_processed": False,
        }
        monkeypatch.setitem(celery_app.conf, "broker_transport_options", folders)
    environment["CELERY_BROKER_URL"] = url
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setitem(celery_app.conf, "broker_url", url)
    reconnect()
    yield environment
    reconnect()
    if url.startswith("redis"):
        clear_redis_broker(url)


def clear_redis_broker(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    # kombu's keys: the queue (and its priority lists), messages taken but not acknowledged,
    # and the exchange bindings.
    keys = [*client.scan_iter("celery*"), *client.scan_iter("_kombu.*"), *client.scan_iter("unacked*")]
    if keys:
        client.delete(*keys)


def reconnect() -> None:
    """Drop Celery's pooled broker connections so that the next send uses the current broker."""
    pool = getattr(celery_app, "_pool", None)
    if pool is not None:
        pool.force_close_all()
        setattr(celery_app, "_pool", None)  # noqa: B010  (a private attribute Celery recreates lazily)
    setattr(celery_app.amqp, "_producer_pool", None)  # noqa: B010
    # Kombu keeps its own registry of pools by broker URL: without a reset, the next send to a
    # broker used before would be handed the pool closed above.
    kombu.pools.reset()


def queued_messages(queue: str = "celery") -> int:
    """Messages waiting in the broker's queue, not yet handed to a worker (one that holds a
    countdown task has taken it out of the queue)."""
    with celery_app.connection_for_write() as connection:
        channel: Any = connection.default_channel  # a kombu virtual channel: declaring counts
        return int(channel.queue_declare(queue=queue).message_count)


class Worker:
    """A Celery worker process, as `celery -A portal worker` starts it."""

    arguments = [
        "worker",
        "--concurrency=1",
        "--loglevel=INFO",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = {**os.environ, **environment}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", *self.arguments],
            cwd=PROJECT,
            env=self.environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


class Beat(Worker):
    """The scheduler, as `celery -A portal beat` starts it, with the project's beat schedule."""

    def __init__(self, environment: dict[str, str], *, schedule: Path) -> None:
        super().__init__(environment)
        self.arguments = ["beat", "--loglevel=INFO", "--schedule", str(schedule)]


def wait_for(condition, *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
