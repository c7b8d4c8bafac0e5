"""What a web process remembers between requests, for as long as the shared cache says it holds.

Some reads happen on every request of a hot path (who the signed-in person is; who may chat
where) and change rarely. A process keeps them in memory, ready to use: no query, and nothing to
unpickle, which for model instances costs more than the query itself. Each entry is stored
under a version that lives in the shared cache (one small value, read on every use) and that
every change replaces, so a change made in any process takes effect at the next request in every
one. Entries also expire after a while, and the least recently used go past a size.
"""

import threading
import time
from collections import OrderedDict
from typing import Any, Generic, TypeVar
from uuid import uuid4

from django.core.cache import cache

V = TypeVar("V")

# Versions outlive any remembered entry; one that expired is simply made again.
VERSION_SECONDS = 24 * 3600


# Versions this process read lately, for callers that may trust one for a moment: {key: (version,
# when it was read, on the monotonic clock)}.
_read_lately: dict[str, tuple[str, float]] = {}


def current_version(key: str, *, trust_seconds: float = 0.0) -> str:
    """The version under this cache key, made now if there is none. Read it before reading what
    it covers: a change made meanwhile then makes the next request read again.

    `trust_seconds`: the version this process read at most that long ago is used without asking
    the shared cache (a round trip on every call of a hot path); a change made in this process
    takes effect at once all the same, one made in another within that time."""
    if trust_seconds:
        lately = _read_lately.get(key)
        if lately is not None and time.monotonic() - lately[1] < trust_seconds:
            return lately[0]
    version = cache.get(key)
    if version is None:
        cache.add(key, uuid4().hex, VERSION_SECONDS)
        version = cache.get(key)
    if trust_seconds:
        _read_lately[key] = (str(version), time.monotonic())
    return str(version)


def version_read_lately(key: str, *, trust_seconds: float) -> str | None:
    """The version `current_version(key, trust_seconds=...)` would answer without asking the shared
    cache; None when it would ask."""
    lately = _read_lately.get(key)
    if lately is not None and time.monotonic() - lately[1] < trust_seconds:
        return lately[0]
    return None


def version_changed(key: str) -> None:
    """What the version under this key covers has changed: every process reads it again."""
    version = uuid4().hex
    cache.set(key, version, VERSION_SECONDS)
    if key in _read_lately:
        _read_lately[key] = (version, time.monotonic())


class Remembered(Generic[V]):
    """Values remembered in this process, each under the version it was read under."""

    def __init__(self, *, seconds: float, size: int) -> None:
        self.seconds = seconds
        self.size = size
        self._entries: OrderedDict[Any, tuple[str, float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, *, version: str) -> V | None:
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
