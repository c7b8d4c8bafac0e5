"""Celery tasks for the cost reports: thin wrappers around one service each."""

import logging

from celery import shared_task
from django.utils import timezone

from reports.alerts import budget_alerts_send
from reports.months import month_start, previous_month
from reports.reconciliation import reconciliation_run

logger = logging.getLogger(__name__)


@shared_task
def budget_alerts_task() -> int:
    """Every 15 minutes (beat). Safe to run twice: each alert is sent once per threshold and month."""
    sent = budget_alerts_send()
    if sent:
        logger.info("Sent %s budget alerts", len(sent))
    return len(sent)


@shared_task
def reconcile_costs_task() -> int:
    """Every 6 hours (beat): Azure's billed cost per account for this month, and for last month
    during the first days of a month, while Azure still settles it."""
    today = timezone.localdate()
    months = [month_start(today)]
    if today.day <= 5:
        months.append(previous_month(today))
    return sum(len(reconciliation_run(month=month)) for month in months)
