"""The emulator's batch thread: batches sent at once run one after the other, off the event loop,
and the loop goes on meanwhile."""

import asyncio
import threading
import time

from provisioning.emulator.batches import in_batch_thread


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
