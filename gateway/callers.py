"""Who is calling the gateway, once their key or token has been checked: the department that pays,
what they may call and how fast. `caller_for_key` (API keys) and `gateway.entra.caller_for_token`
(Entra ID tokens) make one."""

from dataclasses import dataclass

from org.models import Department


class CallerRefused(Exception):
    """The key or token does not open the gateway: `status` (401 or 403), OpenAI's error `code`
    and a message the application's developer can act on."""

    def __init__(self, message: str, *, status: int = 401, code: str = "invalid_api_key") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Caller:
    department: Department
    label: str  # "key Marketing web app (sy-AbCd1234…)", "service principal Billing bot", a person
    api_key_id: int | None = None
    principal_id: int | None = None
    user_id: int | None = None
    # The deployments it may call, by id; None: every one the department may use.
    deployment_ids: frozenset[int] | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


def keys_changed() -> None:
    """Forget what is known about keys, after one was rotated, revoked or approved. Nothing is
    remembered yet; the relay's key lookup replaces this."""
