"""Celery tasks for money: thin wrappers around one service each."""

from celery import shared_task

from money.admission import reservations_reconcile


@shared_task
def reconcile_reservations_task() -> int:
    """Every minute (beat): settle the reservations of calls whose process died, on estimates.
    Safe to run twice: a settled reservation is gone."""
    return reservations_reconcile()
