"""The emulator's batch thread and process: batches sent at once run one after the other, off the
event loop, and the loop goes on meanwhile; the process's work runs at a lower priority, its
refusals come back as they were raised, and a process that died is replaced."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from provisioning.emulator.batches import (
    BATCH_PROCESS_NICENESS,
    in_batch_process,
    in_batch_process_unless,
    in_batch_thread,
)
from provisioning.emulator.errors import AzureError
from provisioning.emulator.search.indexes import parsed_object

PROJECT_DIR = Path(__file__).resolve().parents[2]


def test_batches_sent_at_once_run_one_at_a_time_off_the_loop():
    running = 0
    most = 0
    threads: set[int] = set()
    lock = threading.Lock()

    def batch(number: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        threads.add(threading.get_ident())
        time.sleep(0.02)
        with lock:
            running -= 1
        return number * 2

    async def main() -> tuple[list[int], int]:
        ticks = 0

        async def ticking() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        ticker = asyncio.create_task(ticking())
        results = await asyncio.gather(*(in_batch_thread(batch, number) for number in range(5)))
        ticker.cancel()
        return list(results), ticks

    loop_thread = threading.get_ident()
    results, ticks = asyncio.run(main())
    assert results == [0, 2, 4, 6, 8]
    assert most == 1
    assert loop_thread not in threads
    assert ticks >= 5  # the loop kept running while the batches took their turns


def test_each_event_loop_has_its_own_turns():
    # A test process runs several emulators, each on a loop of its own: both get their answers.
    assert asyncio.run(in_batch_thread(sum, [1, 2])) == 3
    assert asyncio.run(in_batch_thread(sum, [3, 4])) == 7


def test_the_batch_process_is_another_process_at_a_lower_priority():
    async def main() -> tuple[int, int, int, int]:
        pid = await in_batch_process(os.getpid)
        priority = await in_batch_process(os.getpriority, os.PRIO_PROCESS, 0)
        session = await in_batch_process(os.getsid, 0)
        policy = await in_batch_process(os.sched_getscheduler, 0)
        return pid, priority, session, policy

    pid, priority, session, policy = asyncio.run(main())
    assert policy == os.SCHED_IDLE
    assert pid != os.getpid()
    assert priority >= min(os.getpriority(os.PRIO_PROCESS, 0) + BATCH_PROCESS_NICENESS, 19)
    # A session of its own: the CPU is shared between sessions before it is between processes.
    assert session == pid


def test_a_refusal_in_the_batch_process_comes_back_as_azure_wrote_it():
    with pytest.raises(AzureError) as refused:
        asyncio.run(in_batch_process(parsed_object, b"[1, 2"))
    assert refused.value.status == 400
    assert refused.value.message == "The request is invalid. Details: The request body is not valid JSON."
    assert refused.value.response().status_code == 400


def test_a_killed_batch_process_is_replaced_and_the_batch_still_runs():
    async def main() -> int:
        first = await in_batch_process(os.getpid)
        os.kill(first, signal.SIGKILL)
        second = await in_batch_process(os.getpid)
        assert second != first
        return await in_batch_process(sum, [2, 3])

    assert asyncio.run(main()) == 5


def test_the_batch_process_ends_when_the_emulator_is_killed(tmp_path):
    # A killed emulator cannot shut its batch process down: the process sees it gone and ends.
    script = (
        "import asyncio, os\n"
        "from provisioning.emulator.batches import in_batch_process\n"
        "print(asyncio.run(in_batch_process(os.getpid)), flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    emulator = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=PROJECT_DIR
    )
    batch_process = int(emulator.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(batch_process) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(batch_process)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_small_work_runs_here_and_large_work_in_the_batch_process():
    async def main() -> tuple[int, int]:
        here = await in_batch_process_unless(True, os.getpid)
        there = await in_batch_process_unless(False, os.getpid)
        return here, there

    here, there = asyncio.run(main())
    assert here == os.getpid()
    assert there != os.getpid()
