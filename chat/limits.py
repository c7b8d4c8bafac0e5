"""Per-user rate limits for the chat: requests and tokens per minute.

Fixed 60-second windows counted in the Django cache (Redis in CI and production, so every web
worker sees the same counters; locmem in the embedded setup, where there is one worker). A fixed
window lets a burst of up to twice the limit straddle a window boundary; for a chat that is
fair enough and costs two cache calls instead of a sorted set per user.
"""

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

WINDOW_SECONDS = 60
# Keys outlive their window a little, so a late `incr` never finds the key gone mid-window.
KEY_TTL_SECONDS = WINDOW_SECONDS + 10


@dataclass(frozen=True)
class RateLimitRefusal:
    retry_after: int

    @property
    def message(self) -> str:
        unit = "second" if self.retry_after == 1 else "seconds"
        return f"You are sending messages too fast. Try again in {self.retry_after} {unit}."


def _window(now: float) -> tuple[int, int]:
    """The current window's number and the whole seconds until the next one starts."""
    window = int(now // WINDOW_SECONDS)
    return window, max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))


def _keys(user_id: int, window: int) -> tuple[str, str]:
    return f"chat:rate:{user_id}:{window}:requests", f"chat:rate:{user_id}:{window}:tokens"


def user_rate_limit_admit(*, user_id: int, estimated_tokens: int) -> RateLimitRefusal | None:
    """Count one request for the user and say whether it may go ahead.

    A refused request is not counted, so waiting out the window is always enough. Tokens are
    charged after the call (`user_tokens_charge`), with what the call really used; here only
    the prompt estimate is checked against what is left, so one huge prompt cannot overshoot.
    """
    now = time.time()
    window, retry_after = _window(now)
    requests_key, tokens_key = _keys(user_id, window)
    tokens_used = int(cache.get(tokens_key) or 0)
    if tokens_used and tokens_used + estimated_tokens > settings.CHAT_USER_TOKENS_PER_MINUTE:
        return RateLimitRefusal(retry_after)
    cache.add(requests_key, 0, KEY_TTL_SECONDS)
    try:
        requests_made = cache.incr(requests_key)
    except ValueError:  # expired between add and incr
        cache.set(requests_key, 1, KEY_TTL_SECONDS)
        requests_made = 1
    if requests_made > settings.CHAT_USER_REQUESTS_PER_MINUTE:
        cache.decr(requests_key)
        return RateLimitRefusal(retry_after)
    return None


def user_tokens_charge(*, user_id: int, tokens: int) -> None:
    if tokens <= 0:
        return
    window, _ = _window(time.time())
    _, tokens_key = _keys(user_id, window)
    cache.add(tokens_key, 0, KEY_TTL_SECONDS)
    try:
        cache.incr(tokens_key, tokens)
    except ValueError:
        cache.set(tokens_key, tokens, KEY_TTL_SECONDS)
