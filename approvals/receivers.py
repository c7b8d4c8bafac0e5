"""Requests follow their provisioning run: the engine announces a run's end, the request moves on."""

from typing import Any

from django.dispatch import receiver

from provisioning.signals import deployment_run_finished


@receiver(deployment_run_finished, dispatch_uid="approvals.follow_provisioning")
def _follow_provisioning(sender: Any, *, deployment_id: int, **kwargs: Any) -> None:
    from approvals.services import request_follow_provisioning

    request_follow_provisioning(deployment_id=deployment_id)
