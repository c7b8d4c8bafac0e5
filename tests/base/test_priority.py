"""A niced worker's session takes its nice value (base.priority), so that on a kernel that shares
the CPU between sessions first (autogroup) background work still yields to the web; a process in
a session it does not own leaves that session alone. Each case runs in a process of its own, as
the worker does, and reads what the kernel then says of its session."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/autogroup").exists(), reason="the kernel has no autogroup scheduler here"
)

PROJECT = Path(__file__).resolve().parents[2]
REPORT = """
import os, sys
from base.priority import session_follows_nice
if len(sys.argv) > 1:
    os.nice(int(sys.argv[1]))
print(session_follows_nice())
print(open("/proc/self/autogroup").read().split()[-1])
"""


@pytest.fixture
def report(tmp_path) -> str:
    """A command that reports what `session_follows_nice` did and the session's nice value."""
    script = tmp_path / "report.py"
    script.write_text(REPORT)
    return f"{sys.executable} {script}"


def run(command: str) -> list[str]:
    # In a session of its own, as a supervisor starts the worker: `sh -c` leads it.
    finished = subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
        check=True,
    )
    return finished.stdout.split()


def test_a_niced_process_in_its_own_session_gives_the_session_its_nice_value(report):
    assert run(f"nice -n 10 {report}") == ["10", "10"]


def test_a_process_that_is_not_niced_leaves_its_session_as_it_was(report):
    assert run(report) == ["None", "0"]


def test_a_niced_process_in_a_session_it_does_not_own_leaves_that_session_alone(report):
    # The session's leader is not its parent: the session may hold other work (a person's terminal).
    assert run(f'/bin/sh -c "{report} 10"') == ["None", "0"]


def test_a_niced_process_idles_and_one_that_is_not_keeps_its_policy():
    script = (
        "import os; from base.priority import idles_when_niced; "
        "print(idles_when_niced(), os.sched_getscheduler(0))"
    )
    assert run(f"nice -n 10 {sys.executable} -c '{script}'") == ["True", str(os.SCHED_IDLE)]
    assert run(f"{sys.executable} -c '{script}'") == ["False", str(os.SCHED_OTHER)]


def test_the_celery_worker_started_with_nice_yields_its_session_before_its_pool_starts(tmp_path):
    worker = subprocess.Popen(
        [
            *("nice", "-n", "10", sys.executable, "-m", "celery", "-A", "portal", "worker"),
            *("--pool", "solo", "--loglevel", "WARNING"),
        ],
        cwd=PROJECT,
        env={
            **_environment(),
            "CELERY_BROKER_URL": "filesystem://",
            "CELERY_BROKER_DIR": str(tmp_path),
        },
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        seen = ""
        while time.monotonic() < deadline and worker.poll() is None:
            seen = Path(f"/proc/{worker.pid}/autogroup").read_text()
            if seen.split()[-1] == "10":
                break
            time.sleep(0.2)
        assert seen.split()[-1] == "10", seen
        # ... and it runs on CPU time the web does not want: the web takes the CPU when it wakes.
        assert os.sched_getscheduler(worker.pid) == os.SCHED_IDLE
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("PYTEST")}
