"""Working-time arithmetic: business-hours calendars and paused intervals.

A clock consumes *working time*: time that is inside the queue's calendar (24/7 when
the queue has none) and outside every pause. Deadlines are found by walking the
working intervals from the clock's start until its target is used up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Stands in for "no end" (an open pause, a 24/7 calendar): far beyond any deadline.
FOREVER = datetime(9999, 1, 1, tzinfo=UTC)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A calendar whose open hours cannot be found within this many days is a policy error.
MAX_SCAN_DAYS = 3700

Interval = tuple[datetime, datetime]


def _parse_hours(text: str) -> tuple[time, time]:
    """Parse ``"09:00-18:00"`` into two times (``24:00`` is allowed as an end)."""
    try:
        start_text, end_text = (part.strip() for part in text.split("-"))
        start = time.fromisoformat(start_text)
        end = time.max if end_text == "24:00" else time.fromisoformat(end_text)
    except ValueError as exc:
        raise ValueError(f"opening hours {text!r} must look like '09:00-18:00'") from exc
    if start >= end:
        raise ValueError(f"opening hours {text!r} must end after they start")
    return start, end


class BusinessCalendar(BaseModel):
    """Opening hours of a queue in its local time zone, with closed days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(description="IANA zone name, e.g. Asia/Shanghai.")
    weekly: dict[str, list[str]] = Field(description="Per weekday (mon..sun): opening hours like '09:00-18:00'.")
    holidays: list[date] = Field(default_factory=list, description="Local dates that are closed all day.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("weekly")
    @classmethod
    def _valid_week(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(WEEKDAYS))
        if unknown:
            raise ValueError(f"unknown weekday(s) {unknown}; use {list(WEEKDAYS)}")
        for day, spans in value.items():
            parsed = sorted(_parse_hours(span) for span in spans)
            for (_, end), (start, _) in pairwise(parsed):
                if start < end:
                    raise ValueError(f"opening hours on {day} overlap")
        return value

    @model_validator(mode="after")
    def _opens_sometime(self) -> BusinessCalendar:
        if not any(self.weekly.get(day) for day in WEEKDAYS):
            raise ValueError("a calendar must be open at least one hour a week")
        return self

    def hours_on(self, day: date) -> list[tuple[time, time]]:
        """Opening hours on a local date (none on holidays)."""
        if day in self.holidays:
            return []
        return sorted(_parse_hours(span) for span in self.weekly.get(WEEKDAYS[day.weekday()], []))

    def open_intervals(self, start: datetime) -> Iterator[Interval]:
        """Open intervals in UTC from ``start`` on, in order, without end."""
        zone = ZoneInfo(self.timezone)
        local_day = start.astimezone(zone).date()
        for offset in range(MAX_SCAN_DAYS):
            day = local_day + timedelta(days=offset)
            for opens, closes in self.hours_on(day):
                lo = datetime.combine(day, opens, zone).astimezone(UTC)
                hi = datetime.combine(day, closes, zone).astimezone(UTC)
                if closes == time.max:
                    hi = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
                if hi > start:
                    yield max(lo, start), hi
        raise ValueError(f"calendar in {self.timezone} has no opening hours within {MAX_SCAN_DAYS} days")


def _calendar_intervals(calendar: BusinessCalendar | None, start: datetime) -> Iterator[Interval]:
    """The calendar's open intervals from ``start``; one endless interval when 24/7."""
    if calendar is None:
        yield start, FOREVER
        return
    yield from calendar.open_intervals(start)


def _merge(pauses: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping pause intervals."""
    merged: list[Interval] = []
    for lo, hi in sorted(pauses):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def working_intervals(
    start: datetime, calendar: BusinessCalendar | None, pauses: Iterable[Interval] = ()
) -> Iterator[Interval]:
    """Intervals from ``start`` on that are open in the calendar and not paused.

    A pause that has not ended (ends at ``FOREVER``) stops the walk: no working
    time exists after it until it ends.
    """
    merged = _merge(pauses)
    for lo, hi in _calendar_intervals(calendar, start):
        for p_lo, p_hi in merged:
            if p_hi <= lo or p_lo >= hi:
                continue
            if p_lo > lo:
                yield lo, p_lo
            lo = max(lo, p_hi)
            if lo >= hi:
                break
        if lo >= FOREVER:
            return
        if lo < hi:
            yield lo, hi


def add_working_time(
    start: datetime, amount: timedelta, calendar: BusinessCalendar | None, pauses: Iterable[Interval] = ()
) -> datetime | None:
    """The moment when ``amount`` of working time has passed since ``start``.

    Returns None while an open pause stops the clock before the amount is used up.
    """
    pauses = tuple(pauses)
    if calendar is None and not pauses:  # 24/7 and never paused, as most clocks are: plain arithmetic
        return start + amount if FOREVER - start >= amount else None
    remaining = amount
    for lo, hi in working_intervals(start, calendar, pauses):
        if hi - lo >= remaining:
            return lo + remaining
        remaining -= hi - lo
    return None


def working_time_between(
    start: datetime, end: datetime, calendar: BusinessCalendar | None, pauses: Iterable[Interval] = ()
) -> timedelta:
    """Working time that passed between ``start`` and ``end``."""
    total = timedelta(0)
    if end <= start:
        return total
    pauses = tuple(pauses)
    if calendar is None and not pauses:
        return min(end, FOREVER) - start
    for lo, hi in working_intervals(start, calendar, pauses):
        if lo >= end:
            break
        total += min(hi, end) - lo
    return total
