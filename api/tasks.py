from celery import shared_task

from api.idempotency import idempotency_forget


@shared_task
def idempotency_forget_task() -> int:
    return idempotency_forget()
