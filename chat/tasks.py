"""Celery tasks for the chat: thin wrappers around one service each."""

import logging

from celery import shared_task

from chat.services import conversations_purge_expired

logger = logging.getLogger(__name__)


@shared_task
def purge_expired_conversations_task() -> int:
    """Hourly (beat): delete conversations past their department's retention. Safe to run twice:
    a second run finds nothing expired."""
    deleted = conversations_purge_expired()
    if deleted:
        logger.info("Purged %s expired conversations", deleted)
    return deleted
