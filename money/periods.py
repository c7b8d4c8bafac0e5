"""Periods of the cost model: calendar months and ranges of whole days in the portal's time
zone, and the rollup rows that cover them."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from money.models import DepartmentUsageRollup, MonthlyPersonRollup, MonthlyUsageRollup, UsageRollup


def month_bounds(day: date) -> tuple[datetime, datetime]:
    """The calendar month of `day`, in the portal's time zone, as [start, end)."""
    zone = timezone.get_current_timezone()
    start = datetime(day.year, day.month, 1, tzinfo=zone)
    following = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=zone)
    return start, following


@dataclass(frozen=True)
class Period:
    """Whole days [first_day, last_day] in the portal's time zone; fixed costs accrue until
    `until` (now, for a period that has not ended)."""

    first_day: date
    last_day: date
    until: datetime

    @classmethod
    def month(cls, day: date, *, now: datetime | None = None) -> "Period":
        start, end = month_bounds(day)
        now = now or timezone.now()
        return cls(start.date(), (end - timedelta(days=1)).date(), min(end, max(now, start)))

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, datetime.min.time(), tzinfo=timezone.get_current_timezone())

    @property
    def end(self) -> datetime:
        return self.start_of(self.last_day + timedelta(days=1))

    @staticmethod
    def start_of(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), tzinfo=timezone.get_current_timezone())

    @property
    def whole_months(self) -> bool:
        return self.first_day.day == 1 and (self.last_day + timedelta(days=1)).day == 1

    def usage_rows(self) -> "QuerySet[Any]":
        """The rollup rows of the period, with `department`, `deployment` and the counters: the
        monthly ones when the period is whole months (fewer rows), else the daily ones."""
        if self.whole_months:
            return MonthlyUsageRollup.objects.filter(month__gte=self.first_day, month__lte=self.last_day)
        return DepartmentUsageRollup.objects.filter(day__gte=self.first_day, day__lte=self.last_day)

    def usage_rows_by_person(self) -> "QuerySet[Any]":
        if self.whole_months:
            return MonthlyPersonRollup.objects.filter(month__gte=self.first_day, month__lte=self.last_day)
        return UsageRollup.objects.filter(day__gte=self.first_day, day__lte=self.last_day)

    @property
    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range((self.last_day - self.first_day).days + 1)]
