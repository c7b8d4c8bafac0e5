"""Celery tasks for the cost reports: thin wrappers around one service each."""

import logging

from celery import shared_task
from django.utils import timezone

from reports import services

logger = logging.getLogger(__name__)


@shared_task
def budget_alerts_task() -> int:
    """Every 15 minutes (beat). Safe to run twice: each alert is sent once per threshold and month."""
    sent = services.budget_alerts_send()
    if sent:
        logger.info("Sent %s budget alerts", len(sent))
    return len(sent)


@shared_task
def reconcile_costs_task() -> int:
    """Every 6 hours (beat): Azure's billed cost per account for this month, and for last month
    during the first days of a month, while Azure still settles it."""
    today = timezone.localdate()
    months = [services.month_start(today)]
    if today.day <= 5:
        months.append(services.previous_month(today))
    return sum(len(services.reconciliation_run(month=month)) for month in months)
