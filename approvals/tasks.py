"""Celery tasks: thin wrappers around the request services."""

from celery import shared_task

from approvals import services


@shared_task(acks_late=True)
def follow_provisioning_task(deployment_id: int | None = None) -> list[int]:
    if deployment_id is None:
        return services.requests_follow_provisioning()
    return services.request_follow_provisioning(deployment_id=deployment_id)


@shared_task(acks_late=True)
def check_expiry_task() -> dict[str, list[int]]:
    return services.requests_check_expiry()
