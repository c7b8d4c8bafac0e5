"""Celery tasks for the cost reports: thin wrappers around one service each."""

import logging

from celery import shared_task
from django.utils import timezone

from audit.retention import audit_events_archive
from reports.alerts import budget_alerts_send
from reports.audit_checks import audit_chain_check
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


@shared_task
def audit_chain_check_task() -> bool:
    """Every AUDIT_VERIFY_EVERY_SECONDS (beat): check the audit trail's hash chain; admins are
    emailed once per break. Returns whether it is intact."""
    report = audit_chain_check()
    if not report.intact:
        logger.error("%s", report)
    return report.intact


@shared_task
def archive_audit_events_task() -> int:
    """Daily (beat): move the audit events older than the retention period to an archive file.
    Safe to run twice: a second run finds nothing left that old."""
    archive = audit_events_archive()
    if archive is None:
        return 0
    logger.info("Archived audit events %s to %s", archive.first_sequence, archive.last_sequence)
    return archive.events
