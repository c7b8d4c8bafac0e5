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
