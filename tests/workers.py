"""A real Celery worker process for tests: on this test's own broker (a Redis database when CI
provides Redis, else a folder) and the test database, against the test emulator."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import kombu.pools
import pytest
from django.db import connection

from portal.celery import app as celery_app

PROJECT = Path(__file__).resolve().parent.parent.parent


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
        url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/9"
        import redis

        redis.Redis.from_url(url).flushdb()
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


class Worker:
    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = {**os.environ, **environment}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
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


def wait_for(condition, *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
