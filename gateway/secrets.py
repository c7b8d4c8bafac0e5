"""The shape of a department API key: `sy-` and 40 random characters. Only the SHA-256 of the
whole key is stored (a key is random enough that a slow hash adds nothing) and its first
characters, to tell keys apart on a page."""

import hashlib
import secrets

KEY_START = "sy-"
PREFIX_LENGTH = 11  # "sy-" and eight characters


def key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """A new key: (the key, shown once; its visible prefix; its hash)."""
    raw = KEY_START + secrets.token_urlsafe(30)[:40]
    return raw, raw[:PREFIX_LENGTH], key_hash(raw)


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_START) and len(value) == len(KEY_START) + 40
