"""Requests follow what the layers below announce: a provisioning run's end moves its request on; a
key for restricted data, or grounding an assistant on a data set, opens the approval it waits for,
and revoking or withdrawing it withdraws that."""

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from gateway.keys import ApiKeyRefused
from gateway.models import ApiKey
from gateway.signals import api_key_needs_approval, api_key_withdrawn
from grounding.grounding_services import GroundingRefused, grounding_needs_approval, grounding_withdrawn
from grounding.models import DataSet, Grounding
from org.models import Membership, User
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


@receiver(grounding_needs_approval, dispatch_uid="approvals.decide_groundings")
def _open_grounding_approval(
    sender: Any, *, grounding: Grounding, actor: User | None, purpose: str, **kwargs: Any
) -> int:
    from approvals.services import RequestActionRefused, request_for_grounding

    try:
        return request_for_grounding(grounding=grounding, actor=actor, purpose=purpose).pk
    except RequestActionRefused as refusal:
        raise GroundingRefused(str(refusal)) from refusal


@receiver(grounding_withdrawn, dispatch_uid="approvals.withdraw_groundings")
def _withdraw_grounding_approval(
    sender: Any, *, grounding: Grounding, actor: User | None, **kwargs: Any
) -> None:
    from approvals.services import request_withdraw_for_grounding

    request_withdraw_for_grounding(grounding=grounding, actor=actor)


# A data set's owner changes, or stops leading its department: the waiting approvals follow -------


@receiver(pre_save, sender=DataSet, dispatch_uid="approvals.data_set_owner_before")
def _remember_owner(sender: Any, *, instance: DataSet, **kwargs: Any) -> None:
    previous = DataSet.objects.filter(pk=instance.pk).values_list("owner_id", flat=True).first()
    instance._owner_before = previous  # type: ignore[attr-defined]


@receiver(post_save, sender=DataSet, dispatch_uid="approvals.data_set_owner_after")
def _follow_new_owner(sender: Any, *, instance: DataSet, created: bool, **kwargs: Any) -> None:
    if created or getattr(instance, "_owner_before", instance.owner_id) == instance.owner_id:
        return
    from approvals.services import grounding_steps_follow_owner

    grounding_steps_follow_owner(data_set=instance)


@receiver(post_save, sender=Membership, dispatch_uid="approvals.owner_no_longer_lead")
def _owner_no_longer_lead(sender: Any, *, instance: Membership, created: bool, **kwargs: Any) -> None:
    if instance.role == Membership.Role.LEAD:
        return
    from approvals.services import grounding_steps_owner_left

    grounding_steps_owner_left(user_id=instance.user_id, department_id=instance.department_id)


@receiver(post_delete, sender=Membership, dispatch_uid="approvals.owner_left_department")
def _owner_left_department(sender: Any, *, instance: Membership, **kwargs: Any) -> None:
    from approvals.services import grounding_steps_owner_left

    grounding_steps_owner_left(user_id=instance.user_id, department_id=instance.department_id)
