"""The chat listening to sign-out: history-off conversations end with the browser session."""

from typing import Any

from django.http import HttpRequest

from chat.services import conversations_end_with_session
from org.models import User


def session_ended(*, request: HttpRequest | None, user: Any, **_signal: Any) -> None:
    """A receiver for `user_logged_out` (before Django flushes the session)."""
    if request is not None and isinstance(user, User):
        conversations_end_with_session(user=user, session=request.session)
