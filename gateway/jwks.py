"""The tenant's published signing keys, fetched from its key set URL and kept per process.

Entra ID publishes a new key well before it signs with it, so a key set fetched twice a day knows
every key in use. A token naming a key the cached set lacks (a rollover that came early, or the
emulator rotating its key) makes us fetch the set again at once, but never more often than
GATEWAY_JWKS_REFRESH_FLOOR_SECONDS: made-up key ids must not turn every request into a call to
the issuer. Fetching blocks; it runs rarely, on the gateway's database thread, under a lock so
that requests naming the same new key wait for one fetch rather than making one each.
"""

import logging
import threading
import time
from typing import Any

import jwt
import requests
from django.conf import settings

logger = logging.getLogger(__name__)

# A key set older than this is fetched again even when every token names a known key.
MAX_AGE_SECONDS = 12 * 3600
FETCH_TIMEOUT_SECONDS = (3.05, 5)


class KeySetUnavailable(Exception):
    """The key set could not be fetched and no earlier copy knows the key."""


class SigningKeys:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._url = ""
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # monotonic time of the last good fetch
        self._tried_at: float | None = None  # of the last attempt, good or not

    def key(self, kid: str, *, url: str) -> jwt.PyJWK | None:
        """The RS256 key with this id from the key set at `url`, or None when the set (fetched
        again if the floor allows) does not list it. Raises KeySetUnavailable when the set
        cannot be read and there is nothing to go on."""
        with self._lock:
            if url != self._url:  # another tenant or issuer: start afresh
                self._url, self._keys, self._fetched_at, self._tried_at = url, {}, None, None
            now = time.monotonic()
            stale = self._fetched_at is None or now - self._fetched_at > MAX_AGE_SECONDS
            floor_passed = (
                self._tried_at is None or now - self._tried_at >= settings.GATEWAY_JWKS_REFRESH_FLOOR_SECONDS
            )
            if (stale or kid not in self._keys) and floor_passed:
                self._fetch(now)
            elif stale and not self._keys:
                raise KeySetUnavailable(f"the key set at {url} could not be read a moment ago")
            return self._keys.get(kid)

    def _fetch(self, now: float) -> None:
        self._tried_at = now
        try:
            response = requests.get(self._url, timeout=FETCH_TIMEOUT_SECONDS)
            response.raise_for_status()
            keys = _rs256_keys(response.json())
        except (requests.RequestException, ValueError) as error:
            if self._keys:
                # Keep verifying with the keys we have: Entra keeps a key published long after
                # it stops signing with it.
                logger.warning(
                    "Could not refresh the signing keys from %s (%s); keeping %d",
                    self._url,
                    error,
                    len(self._keys),
                )
                return
            raise KeySetUnavailable(f"the key set at {self._url} could not be read: {error}") from error
        self._keys, self._fetched_at = keys, now

    def forget(self) -> None:
        with self._lock:
            self._url, self._keys, self._fetched_at, self._tried_at = "", {}, None, None


def _rs256_keys(key_set: Any) -> dict[str, jwt.PyJWK]:
    """The key set's RSA signing keys by key id; keys of other kinds or uses are left out."""
    if not isinstance(key_set, dict) or not isinstance(key_set.get("keys"), list):
        raise ValueError("the answer is not a JSON Web Key Set")
    keys = {}
    for entry in key_set["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[str(entry["kid"])] = jwt.PyJWK(entry, algorithm="RS256")
        except (KeyError, jwt.PyJWKError):
            logger.warning("Skipping an unreadable key in the key set: %s", entry.get("kid"))
    return keys


signing_keys = SigningKeys()
