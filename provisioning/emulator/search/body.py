"""A large JSON request body parsed without holding the interpreter for the whole of it.

`json.loads` is one call into C that keeps the GIL until it returns: an indexing batch of 200
passages (a 1536-number vector each, 7 MB of JSON) holds it for about 80 ms, on whatever thread
parses it, and the emulator's event loop streams no chat answer meanwhile. `loads_in_parts` gives
the same result as `json.loads`, but a top-level object's arrays (an indexing batch's `value`) are
decoded an element at a time, with a chance for other threads to run between elements.
"""

import json
import re
from typing import Any

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def loads_in_parts(raw: bytes | str) -> Any:
    """`json.loads(raw)` (UTF-8 bytes or text): the same value, the same `ValueError`s for what is
    not JSON."""
    text = raw.decode(json.detect_encoding(raw), "surrogatepass") if isinstance(raw, bytes) else raw
    position = _space(text, 0)
    if not text.startswith("{", position):
        return json.loads(text)
    value, position = _object(text, position)
    if _space(text, position) != len(text):
        raise json.JSONDecodeError("Extra data", text, position)
    return value


def _space(text: str, position: int) -> int:
    match = _SPACE.match(text, position)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _expect(text: str, position: int, what: str) -> None:
    if not text.startswith(what, position):
        raise json.JSONDecodeError(f"Expecting {what!r}", text, position)


def _object(text: str, position: int) -> tuple[dict[str, Any], int]:
    """The object that begins at `position` (its `{`) and where it ends."""
    value: dict[str, Any] = {}
    position = _space(text, position + 1)
    if text.startswith("}", position):
        return value, position + 1
    while True:
        _expect(text, position, '"')
        key, position = _DECODER.raw_decode(text, position)
        position = _space(text, position)
        _expect(text, position, ":")
        position = _space(text, position + 1)
        if text.startswith("[", position):
            value[key], position = _array(text, position)
        else:
            value[key], position = _DECODER.raw_decode(text, position)
        position, closed = _after_item(text, position, "}")
        if closed:
            return value, position


def _array(text: str, position: int) -> tuple[list[Any], int]:
    """The array that begins at `position` (its `[`), an element per call into the decoder."""
    items: list[Any] = []
    position = _space(text, position + 1)
    if text.startswith("]", position):
        return items, position + 1
    while True:
        item, position = _DECODER.raw_decode(text, position)
        items.append(item)
        position, closed = _after_item(text, position, "]")
        if closed:
            return items, position


def _after_item(text: str, position: int, closer: str) -> tuple[int, bool]:
    """After an object's member or an array's element: where the next one begins, or (with True)
    where the object or array ends, past its `closer`."""
    position = _space(text, position)
    if text.startswith(",", position):
        return _space(text, position + 1), False
    if text.startswith(closer, position):
        return position + 1, True
    raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
