import threading
import time
from collections import OrderedDict
from typing import Any, Generic, TypeVar
from uuid import UUID, uuid4

from django.core.cache import cache
from django.http import Http404

from chat.models import Conversation
from portal.org.models import User


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
    version = cache.get(ACCESS_VERSION_KEY)
    if version is None:
        cache.add(ACCESS_VERSION_KEY, uuid4().hex, None)
        version = cache.get(ACCESS_VERSION_KEY)
    return str(version)


def access_changed(**_signal: Any) -> None:
    """A receiver for the saves and deletes that can change who may chat where."""
    cache.set(ACCESS_VERSION_KEY, uuid4().hex, None)


V = TypeVar("V")


class Remembered(Generic[V]):
    """Values this process remembers under an access version, for at most `seconds`.

    In the process rather than in the shared cache: a remembered conversation comes with its
    deployment, department and account, and taking that out of the cache (unpickling four model
    instances) cost more than the rest of a turn's checks. Only the version, one small value, is
    read from the shared cache, so a change made in any process still takes effect at the next
    turn in every one. The least recently used entries go past `size`.
    """

    def __init__(self, *, seconds: float, size: int) -> None:
        self.seconds = seconds
        self.size = size
        self._entries: OrderedDict[Any, tuple[str, float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, *, version: str | None) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] != version or entry[1] < time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[2]

    def set(self, key: Any, value: V, *, version: str) -> None:
        with self._lock:
            self._entries[key] = (version, time.monotonic() + self.seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, key: Any) -> None:
        with self._lock:
            self._entries.pop(key, None)
