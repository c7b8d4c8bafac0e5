import logging

import requests
from django.conf import settings

from provisioning.azure import ARM_SCOPE, credential, is_emulator

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2


def azure_status() -> str:
    """Whether Switchyard can reach Azure: the emulator answering, or a token for ARM."""
    try:
        if is_emulator():
            requests.get(
                f"{settings.AZURE_EMULATOR_URL}/_emulator/", timeout=TIMEOUT_SECONDS
            ).raise_for_status()
        else:
            credential().get_token(ARM_SCOPE)
    except Exception as error:  # network, HTTP and credential errors all mean "unreachable"
        logger.warning("Health: Azure unreachable: %s", error)
        return "unreachable"
    return "ok"
