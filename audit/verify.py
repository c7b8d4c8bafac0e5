"""Walking the audit trail's hash chain: each event must come right after the one before it (no
sequence missing), record that event's hash as its previous hash, and still hash to what it
says (`audit.chain`). The first event that does not is named, in words an admin can act on.

The walk starts after the last archive (`audit.retention`), whose last hash the first event in
the database links to, and ends at the chain's head as it was when the walk began: events written
meanwhile are left for the next walk, so a busy trail is never reported broken."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db.models import Max

from audit.chain import HASHED_FIELDS, hash_of_values
from audit.models import AuditArchive, AuditChainHead, AuditEvent

# What a link is checked on: the hashed fields (sequence first, previous hash last) and the hash.
CHECKED_FIELDS = (*HASHED_FIELDS, "hash")
BATCH = 10_000


class BreakKind(StrEnum):
    CHANGED = "changed"
    RELINKED = "relinked"
    MISSING = "missing"
    HEAD = "head"
    OUTSIDE = "outside"


@dataclass(frozen=True)
class ChainBreak:
    """The first place the chain does not hold. `sequence` is the event named (None for an event
    that has no place in the chain at all)."""

    sequence: int | None
    kind: BreakKind
    explanation: str

    def __str__(self) -> str:
        where = f" at event {self.sequence}" if self.sequence is not None else ""
        return f"audit trail broken{where}: {self.explanation}"


@dataclass(frozen=True)
class ChainReport:
    events: int
    first_sequence: int | None
    last_sequence: int | None
    broken: ChainBreak | None

    @property
    def intact(self) -> bool:
        return self.broken is None

    def __str__(self) -> str:
        if self.broken is not None:
            return str(self.broken)
        if not self.events:
            return "audit trail intact: no events to check"
        return (
            f"audit trail intact: {self.events} event{'' if self.events == 1 else 's'}, "
            f"sequence {self.first_sequence} to {self.last_sequence}"
        )


class ChainLinks:
    """Follows the chain one event after another from a known point: the next sequence expected
    and the hash the next event must link to."""

    def __init__(self, *, next_sequence: int, previous_hash: str) -> None:
        self.next_sequence = next_sequence
        self.previous_hash = previous_hash

    def follow(self, values: Sequence[Any]) -> ChainBreak | None:
        """Check one event given as its `CHECKED_FIELDS` values; on success it becomes the point
        the next one must link to."""
        sequence, prev_hash, stored_hash = values[0], values[-2], values[-1]
        expected = self.next_sequence
        if sequence != expected:
            return ChainBreak(
                expected,
                BreakKind.MISSING,
                f"{_events_are(expected, sequence - 1)} missing: the trail goes from event "
                f"{expected - 1} to event {sequence} (deleted from the database)",
            )
        if prev_hash != self.previous_hash:
            return ChainBreak(
                sequence,
                BreakKind.RELINKED,
                f"its link to the previous event is wrong: the previous hash it records is not the hash "
                f"of event {sequence - 1} (one of the two was rewritten in the database)",
            )
        if hash_of_values(values[:-1]) != stored_hash:
            return ChainBreak(
                sequence,
                BreakKind.CHANGED,
                "its content was changed after it was written: what it says no longer matches its hash",
            )
        self.next_sequence, self.previous_hash = sequence + 1, stored_hash
        return None


def chain_rows(
    fields: Sequence[str], *, after: int, up_to: int, batch: int = BATCH
) -> Iterator[tuple[Any, ...]]:
    """The events with a sequence in (after, up_to], in sequence order, as `fields` values; read
    in batches by sequence (each one an index range), so a million events never sit in memory."""
    position = list(fields).index("sequence")
    while True:
        rows = list(
            AuditEvent.objects.filter(sequence__gt=after, sequence__lte=up_to)
            .order_by("sequence")
            .values_list(*fields)[:batch]
        )
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1][position]


def missing_break(first: int, last: int) -> ChainBreak:
    return ChainBreak(
        first, BreakKind.MISSING, f"{_events_are(first, last)} missing (deleted from the database)"
    )


def _events_are(first: int, last: int) -> str:
    return f"event {first} is" if first == last else f"events {first} to {last} are"


def chain_start() -> tuple[int, str]:
    """The last sequence and hash the events in the database continue from: the last archive's,
    or nothing before the first event."""
    archive = AuditArchive.objects.order_by("-last_sequence").first()
    return (archive.last_sequence, archive.last_hash) if archive is not None else (0, "")


def audit_chain_verify(*, since_sequence: int | None = None, batch: int = BATCH) -> ChainReport:
    """Walk the chain and name its first broken link. `since_sequence`: start at that event,
    trusting the hash the event before it holds (a quicker look at recent events)."""
    start = chain_start()
    report = _walk(start, since_sequence=since_sequence, batch=batch)
    if not report.intact and chain_start() != start:
        # The retention rule archived events while the walk went over them (they seemed to go
        # missing): not a break. The walk starts again after the new archive.
        report = _walk(chain_start(), since_sequence=since_sequence, batch=batch)
    return report


def _walk(start: tuple[int, str], *, since_sequence: int | None, batch: int) -> ChainReport:
    head = AuditChainHead.objects.filter(pk=1).values_list("sequence", "hash").first()
    after, previous_hash = start
    if since_sequence is not None and since_sequence - 1 > after:
        after = since_sequence - 1
        stored = AuditEvent.objects.filter(sequence=after).values_list("hash", flat=True).first()
        if stored is None:
            return ChainReport(0, None, None, missing_break(after, after))
        previous_hash = stored
    # The head is read first: every event up to it was committed with it.
    up_to = (
        head[0] if head is not None else AuditEvent.objects.aggregate(last=Max("sequence"))["last"] or after
    )
    links = ChainLinks(next_sequence=after + 1, previous_hash=previous_hash)
    events = 0
    for values in chain_rows(CHECKED_FIELDS, after=after, up_to=up_to, batch=batch):
        broken = links.follow(values)
        if broken is not None:
            return ChainReport(events, after + 1, links.next_sequence - 1, broken)
        events += 1
    last = links.next_sequence - 1
    broken = _head_break(head, last=last, last_hash=links.previous_hash, archived=after) or _outside_break()
    return ChainReport(events, after + 1 if events else None, last if events else None, broken)


def _head_break(
    head: tuple[int, str] | None, *, last: int, last_hash: str, archived: int
) -> ChainBreak | None:
    if head is None:
        if last == archived:
            return None  # nothing written yet
        return ChainBreak(last, BreakKind.HEAD, "the chain's head (the record of the last event) is missing")
    sequence, head_hash = head
    if sequence > last:
        return ChainBreak(
            last + 1,
            BreakKind.MISSING,
            f"{_events_are(last + 1, sequence)} missing: the chain's head says the trail ends at "
            f"event {sequence}, but the last event in the database is {last} (deleted from the database)",
        )
    if head_hash != last_hash:
        return ChainBreak(
            last,
            BreakKind.HEAD,
            "the chain's head does not match the last event: the last event or the head was rewritten "
            "in the database",
        )
    return None


def _outside_break() -> ChainBreak | None:
    """An event without a place in the chain was put into the table behind the application's back
    (every event the application writes is chained)."""
    stray = AuditEvent.objects.filter(sequence__isnull=True).values_list("pk", "verb").first()
    if stray is None:
        return None
    return ChainBreak(
        None,
        BreakKind.OUTSIDE,
        f"an event outside the chain (id {stray[0]}, {stray[1]!r}) was added to the database "
        "behind the application's back",
    )
