"""Celery tasks for the organisation: thin wrappers around one service each."""

from celery import shared_task

from org.directory_sync import directory_sync
from org.models import DirectorySyncRun


@shared_task
def directory_sync_task() -> int:
    """Every ENTRA_SYNC_EVERY_SECONDS (beat) while Microsoft Entra ID is on: bring memberships,
    platform roles and leavers' access in line with the directory. Returns the run's id."""
    return directory_sync(trigger=DirectorySyncRun.Trigger.SCHEDULE).pk
