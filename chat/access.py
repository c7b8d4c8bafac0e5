from typing import Any
from uuid import UUID

from django.http import Http404

from base.remembered import current_version, version_changed
from chat.models import Conversation
from org.models import User


def get_conversation_for(user: User, conversation_id: UUID | str) -> Conversation:
    """The user's own conversation. Anyone else's, in any department, does not exist (404):
    chat content is private to its author."""
    try:
        return Conversation.objects.select_related("deployment", "department").get(
            pk=conversation_id, user=user
        )
    except (Conversation.DoesNotExist, ValueError):
        raise Http404("No such conversation.") from None


# Who may chat where is remembered between turns (see `chat.services`) under this version, which
# every change to memberships, departments, deployments, accounts or grants replaces: a revoked
# grant or membership takes effect at the next turn, in every web process sharing the cache.
ACCESS_VERSION_KEY = "chat:access-version"


def access_version() -> str:
    return current_version(ACCESS_VERSION_KEY)


def access_changed(**_signal: Any) -> None:
    """A receiver for the saves and deletes that can change who may chat where."""
    version_changed(ACCESS_VERSION_KEY)
