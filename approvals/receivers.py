"""Requests follow what the layers below announce: a provisioning run's end moves its request on; a
key for restricted data opens the approval it waits for, and revoking it withdraws that."""

from typing import Any

from django.dispatch import receiver

from gateway.keys import ApiKeyRefused
from gateway.models import ApiKey
from gateway.signals import api_key_needs_approval, api_key_withdrawn
from org.models import User
from provisioning.signals import deployment_run_finished


@receiver(deployment_run_finished, dispatch_uid="approvals.follow_provisioning")
def _follow_provisioning(sender: Any, *, deployment_id: int, **kwargs: Any) -> None:
    from approvals.services import request_follow_provisioning

    request_follow_provisioning(deployment_id=deployment_id)


@receiver(api_key_needs_approval, dispatch_uid="approvals.decide_api_keys")
def _open_key_approval(sender: Any, *, key: ApiKey, actor: User | None, purpose: str, **kwargs: Any) -> int:
    from approvals.services import RequestActionRefused, request_for_api_key

    try:
        return request_for_api_key(key=key, actor=actor, purpose=purpose).pk
    except RequestActionRefused as refusal:
        # In the gateway's words, so the key's form shows it and the key is not made.
        raise ApiKeyRefused(str(refusal)) from refusal


@receiver(api_key_withdrawn, dispatch_uid="approvals.withdraw_api_keys")
def _withdraw_key_approval(sender: Any, *, key: ApiKey, actor: User | None, **kwargs: Any) -> None:
    from approvals.services import request_withdraw_for_key

    request_withdraw_for_key(key=key, actor=actor)
