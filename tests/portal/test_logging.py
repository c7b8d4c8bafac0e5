"""The web process's log, as the Procfile starts it: each event is written once."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.servers import free_port

PROJECT = Path(__file__).resolve().parent.parent.parent


def procfile_command(process: str) -> str:
    for line in (PROJECT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise AssertionError(f"the Procfile has no {process} process")


def test_a_not_found_page_is_logged_once_by_the_web_process(tmp_path):
    port = free_port()
    environment = {
        **os.environ,
        "WEB_PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
        "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": "INFO",
        # uvicorn from this interpreter's environment, as `make run` puts it first on the PATH.
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    log = tmp_path / "web.log"
    with log.open("wb") as output:
        # The shell expands the Procfile's ${WEB_PORT:-8000} as honcho does.
        web = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {procfile_command('web')}"],
            cwd=PROJECT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/no-such-page/", timeout=5)
                break
            except requests.ConnectionError:
                assert web.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the web process did not start"
                time.sleep(0.2)
    finally:
        web.terminate()
        web.wait(timeout=15)

    assert response.status_code == 404
    lines = [line for line in log.read_text().splitlines() if "Not Found: /no-such-page/" in line]
    assert len(lines) == 1, lines
    # The request's id in brackets: the one its response names in X-Request-ID.
    request_id = response.headers["X-Request-ID"]
    assert re.match(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING django\.request \[{request_id}\]: ", lines[0]
    ), lines[0]
