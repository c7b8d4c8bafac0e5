"""Background work that yields the CPU to the web on the same host, as its `nice` value says.

Linux shares a busy CPU between sessions before it shares it between their processes (the
autogroup scheduler, on by default on most distributions): each session started on its own (by
honcho, by systemd, by the benchmarks) is one group, and a group gets its fair share whatever the
nice values of the processes in it. A Celery worker started with `nice -n 10` in a session of its
own then still takes as much of the CPU as the web's session when both want it, and a chat's
first token waits behind a document being read. The worker's session is given the worker's nice
value too (`/proc/self/autogroup`), when the session is the worker's own: it leads it, or its
parent does (a supervisor's `sh -c` that started it). In a container the container's cgroup is the
group, the file has no effect, and the compose file's CPU shares decide instead.

A nice value only shortens a busy process's turns: when the web wakes (a chat's next step), the
kernel still lets a niced worker finish its slice (about 1.5 ms on two CPUs) before the web runs,
and a chat's first token takes many such steps. A niced background process therefore also takes
Linux's idle policy (`idles_when_niced`): it runs on CPU time nothing else wants, and the web
takes the CPU from it as soon as it wakes. It still gets every CPU the web leaves idle.
"""

import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")


def session_follows_nice() -> int | None:
    """Give this process's session its nice value; the value given, or None when there was
    nothing to do (not niced, not its own session, no autogroup on this system)."""
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    session = os.getsid(0)
    if nice <= 0 or session not in (os.getpid(), os.getppid()):
        return None
    try:
        AUTOGROUP.write_text(f"{nice}\n")
    except OSError:  # not Linux, autogroup turned off, or not allowed
        return None
    return nice


def idles_when_niced() -> bool:
    """Put every thread of this process, and so the processes it forks, under the idle scheduling
    policy when the process is niced; whether it did."""
    if os.getpriority(os.PRIO_PROCESS, 0) <= 0 or not hasattr(os, "SCHED_IDLE"):
        return False
    try:
        for thread in Path("/proc/self/task").iterdir():
            os.sched_setscheduler(int(thread.name), os.SCHED_IDLE, os.sched_param(0))
    except OSError:  # not Linux, or not allowed
        return False
    return True
