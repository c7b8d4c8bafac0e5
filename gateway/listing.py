"""`GET /openai/v1/models`: exactly the deployments the caller may call, by gateway name, in OpenAI's
list shape (what `client.models.list()` reads); and one of them by its id."""

import json
from typing import Any

from django.utils import timezone

from gateway.callers import CallerRefused
from gateway.credentials import Credential, caller_for_credential
from gateway.deployments import deployments_for
from gateway.errors import GatewayError
from provisioning.models import ModelDeployment


def _model(deployment: ModelDeployment) -> dict[str, Any]:
    return {
        "id": deployment.gateway_name,
        "object": "model",
        "created": int(deployment.created_at.timestamp()),
        "owned_by": deployment.department.slug
        if deployment.scope == ModelDeployment.Scope.DEDICATED
        else "shared",
        "model": deployment.model_name,
        "model_version": deployment.model_version,
        "display_name": deployment.display_name,
    }


def model_listing(*, credential: Credential, model_id: str | None) -> bytes:
    """The caller's models as JSON (one of them, with `model_id`; a 404 for any other)."""
    try:
        caller = caller_for_credential(credential, now=timezone.now())
    except CallerRefused as refused:
        raise GatewayError(refused.status, refused.message, code=refused.code) from None
    deployments = deployments_for(caller)
    if model_id is None:
        return json.dumps({"object": "list", "data": [_model(each) for each in deployments]}).encode()
    for deployment in deployments:
        if deployment.gateway_name == model_id:
            return json.dumps(_model(deployment)).encode()
    raise GatewayError(
        404,
        f"The model '{model_id}' does not exist, or this caller may not use it.",
        code="model_not_found",
        param="model",
    )
