"""The shape of Switchyard's secrets: a start that says what the secret is and 40 random
characters. A department API key starts `sy-`; a person's access token for the automation API
(`api.tokens`) starts `sy-pat-`. Only the SHA-256 of the whole secret is stored (a secret is
random enough that a slow hash adds nothing) and its first characters, to tell secrets apart on a
page."""

import hashlib
import secrets

KEY_START = "sy-"
RANDOM_LENGTH = 40
# How many random characters the visible prefix keeps after the start.
VISIBLE_RANDOM = 8
PREFIX_LENGTH = len(KEY_START) + VISIBLE_RANDOM  # "sy-" and eight characters


def key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def new_key(start: str = KEY_START) -> tuple[str, str, str]:
    """A new secret: (the secret, shown once; its visible prefix; its hash)."""
    raw = start + secrets.token_urlsafe(30)[:RANDOM_LENGTH]
    return raw, raw[: len(start) + VISIBLE_RANDOM], key_hash(raw)


def looks_like_key(value: str, start: str = KEY_START) -> bool:
    return value.startswith(start) and len(value) == len(start) + RANDOM_LENGTH
