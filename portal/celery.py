import os
from contextlib import ExitStack
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init

from audit.context import origin
from base.priority import idles_when_niced, session_follows_nice

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The origins of the tasks running in this process, by task id, from start to end.
_task_origins: dict[str, ExitStack] = {}


@task_prerun.connect
def _set_task_origin(task_id: str, **_signal: Any) -> None:
    """Audit events written by a task carry the task's id as their request id: the worker's log
    and the audit trail then name the same run."""
    stack = ExitStack()
    stack.enter_context(origin(request_id=task_id))
    _task_origins[task_id] = stack


@task_postrun.connect
def _clear_task_origin(task_id: str, **_signal: Any) -> None:
    stack = _task_origins.pop(task_id, None)
    if stack is not None:
        stack.close()


@worker_init.connect
def _yield_to_the_web(**_signal: Any) -> None:
    """A worker started with `nice` (the Procfile, docker-compose) yields the CPU to the web even
    where the kernel shares it between sessions first, and at once when the web wakes
    (base.priority), before its pool starts."""
    session_follows_nice()
    idles_when_niced()
