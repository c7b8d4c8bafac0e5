"""Celery tasks for calls: thin wrappers around one service each."""

from celery import shared_task

from calls.hours import call_hours_fold


@shared_task
def fold_call_hours_task() -> int:
    """Every five minutes (beat): the finished hours' minutes folded into hour rows."""
    return call_hours_fold()
