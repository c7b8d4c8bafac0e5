"""The operations page's tests: a fixed moment to count windows from, minute rows written through
the model, and the page's tables read as a person reads them."""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from calls.hours import call_hours_fold
from calls.latency import bucket_index, empty_buckets
from calls.models import CallMinute
from org.models import Department, PlatformGroup, User
from provisioning.models import ModelDeployment
from tests.factories import make_user

NOW = datetime(2026, 12, 4, 12, 0, 30, tzinfo=UTC)
PAGE = "/operations/"


@pytest.fixture
def now(monkeypatch) -> datetime:
    """The page's clock (and every row's automatic time) stands still at NOW."""
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


@pytest.fixture
def security_approver(db) -> User:
    return make_user(email="security@example.com", platform_group=PlatformGroup.SECURITY)


def histogram(milliseconds: list[float]) -> list[int]:
    buckets = empty_buckets()
    for duration in milliseconds:
        buckets[bucket_index(duration)] += 1
    return buckets


@pytest.fixture
def minute_row(now) -> Callable[..., CallMinute]:
    """A minute of calls `minutes_ago` whole minutes before the current one, its finished hours
    then folded into hour rows as the beat does every five minutes."""

    def write(
        *,
        deployment: ModelDeployment,
        department: Department,
        minutes_ago: int,
        source: str = CallMinute.Source.CHAT,
        first_token_ms: Sequence[float] = (),
        answer_ms: Sequence[float] = (),
        **counters: int,
    ) -> CallMinute:
        minute = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
        row = CallMinute.objects.create(
            minute=minute,
            deployment=deployment,
            department=department,
            source=source,
            first_token_ms=histogram(list(first_token_ms)),
            answer_ms=histogram(list(answer_ms)),
            **counters,
        )
        call_hours_fold(now=now, since=minute)  # rows come in any order here, not as time runs
        return row

    return write


class _Tables(HTMLParser):
    """Every table's body rows as lists of cell texts (a cell's note follows its figure)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._in_body = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "span" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def row_of(rows: list[list[str]], first_cell_start: str) -> list[str]:
    found = [row for row in rows if row[0].startswith(first_cell_start)]
    assert len(found) == 1, f"{first_cell_start!r} in {rows!r}"
    return found[0]
