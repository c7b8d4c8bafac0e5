"""The hash chain over the audit trail: an event's hash covers everything it says and the hash of
the event before it, so changing, removing or inserting an event in the database breaks every
link after it. `event_hash` is the one definition; writing (`audit.services`) and verifying
(`audit_verify`) both use it."""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from audit.models import AuditEvent

# The fields an event's hash covers, in this order (with the previous event's hash).
HASHED_FIELDS = (
    "sequence",
    "actor_id",
    "actor_kind",
    "actor_label",
    "verb",
    "object_type",
    "object_id",
    "object_repr",
    "department_id",
    "before",
    "after",
    "note",
    "request_id",
    "source_ip",
    "created_at",
    "prev_hash",
)


def canonical_json(value: Any) -> Any:
    """The value as the JSON column gives it back (keys sorted when hashed): what is hashed at
    writing is what verifying reads."""
    return None if value is None else json.loads(json.dumps(value, default=str))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def event_hash(event: AuditEvent) -> str:
    """The SHA-256 of the event's hashed fields (canonical JSON) and the previous hash."""
    return hash_of_values(tuple(getattr(event, name) for name in HASHED_FIELDS))


def hash_of_values(values: Sequence[Any]) -> str:
    """`event_hash` of an event given as its `HASHED_FIELDS` values, in that order: what the
    chain's walkers read from the database (`values_list`), without making a model per row."""
    fields: dict[str, Any] = dict(zip(HASHED_FIELDS, values, strict=True))
    # Whole microseconds since 1970 (UTC): exact, whatever time zone the database hands back.
    fields["created_at"] = (fields["created_at"] - EPOCH) // MICROSECOND
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()
