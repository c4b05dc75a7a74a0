"""SLA clocks: deadlines, pauses, warnings, business-hours calendars and timers."""

from datetime import UTC, date, datetime, timedelta

import pytest

from services.routing import sla
from services.routing.calendar import BusinessCalendar, add_working_time, working_time_between
from services.routing.sla import Pause, TimerSpec

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # Monday, 16:00 in Shanghai
H = timedelta(hours=1)
OFFICE = BusinessCalendar(
    timezone="Asia/Shanghai",
    weekly={day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")} | {"sat": ["10:00-16:00"]},
    holidays=[date(2027, 1, 1)],
)
SHANGHAI = timedelta(hours=8)


def shanghai(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - SHANGHAI


def clock(target: timedelta, start: datetime = T0) -> sla.ClockState:
    return sla.start_clock("first_response", start, target)


def test_clock_runs_around_the_clock_by_default() -> None:
    assert sla.due_at(clock(4 * H), None, []) == T0 + 4 * H
    assert sla.warn_at(clock(4 * H), 0.75, None, []) == T0 + 3 * H


def test_pause_shifts_the_deadline_by_the_paused_time() -> None:
    pauses = [Pause(waiting_on="customer", started_at=T0 + H, ended_at=T0 + 3 * H)]
    assert sla.due_at(clock(4 * H), None, pauses) == T0 + 6 * H
    assert sla.remaining(clock(4 * H), T0 + 3 * H, None, pauses) == 3 * H


def test_open_pause_holds_the_clock() -> None:
    pauses = [Pause(waiting_on="third_party", started_at=T0 + H)]
    assert sla.due_at(clock(4 * H), None, pauses) is None
    assert sla.remaining(clock(4 * H), T0 + 10 * H, None, pauses) == 3 * H
    assert sla.pending_timers([clock(4 * H)], 0.75, None, pauses) == []


def test_pauses_before_the_clock_started_do_not_count() -> None:
    pauses = [Pause(waiting_on="customer", started_at=T0 - 5 * H, ended_at=T0 - 4 * H)]
    assert sla.due_at(clock(4 * H), None, pauses) == T0 + 4 * H


def test_overlapping_pauses_count_once() -> None:
    pauses = [
        Pause(waiting_on="customer", started_at=T0 + H, ended_at=T0 + 3 * H),
        Pause(waiting_on="third_party", started_at=T0 + 2 * H, ended_at=T0 + 4 * H),
    ]
    assert sla.due_at(clock(4 * H), None, pauses) == T0 + 7 * H


@pytest.mark.parametrize(
    ("start", "target", "due"),
    [
        # Monday 16:00: 2 h today, 2 h on Tuesday morning.
        (shanghai(2026, 11, 23, 16), 4 * H, shanghai(2026, 11, 24, 11)),
        # Arriving at night: the clock starts at 09:00.
        (shanghai(2026, 11, 23, 22), 2 * H, shanghai(2026, 11, 24, 11)),
        # Friday 17:00: 1 h on Friday, then Saturday's short hours.
        (shanghai(2026, 11, 27, 17), 4 * H, shanghai(2026, 11, 28, 13)),
        # Saturday 15:00: 1 h on Saturday, Sunday is closed, Monday 09:00 + 1 h.
        (shanghai(2026, 11, 28, 15), 2 * H, shanghai(2026, 11, 30, 10)),
        # New Year's Day (a Friday) is a holiday.
        (shanghai(2026, 12, 31, 17), 4 * H, shanghai(2027, 1, 2, 13)),
    ],
)
def test_business_hours_calendar(start: datetime, target: timedelta, due: datetime) -> None:
    assert sla.due_at(clock(target, start), OFFICE, []) == due


def test_pause_outside_opening_hours_changes_nothing() -> None:
    start = shanghai(2026, 11, 23, 16)
    night = [Pause(waiting_on="customer", started_at=shanghai(2026, 11, 23, 19), ended_at=shanghai(2026, 11, 24, 8))]
    assert sla.due_at(clock(4 * H, start), OFFICE, night) == shanghai(2026, 11, 24, 11)
    morning = [Pause(waiting_on="customer", started_at=shanghai(2026, 11, 24, 9), ended_at=shanghai(2026, 11, 24, 10))]
    assert sla.due_at(clock(4 * H, start), OFFICE, morning) == shanghai(2026, 11, 24, 12)


def test_working_time_between_counts_open_hours_only() -> None:
    elapsed = working_time_between(shanghai(2026, 11, 23, 16), shanghai(2026, 11, 24, 11), OFFICE)
    assert elapsed == 4 * H


def test_daylight_saving_change_in_a_24_hour_calendar() -> None:
    berlin = BusinessCalendar(timezone="Europe/Berlin", weekly={d: ["00:00-24:00"] for d in ("sat", "sun", "mon")})
    start = datetime(2027, 3, 27, 11, 0, tzinfo=UTC)  # Saturday noon in Berlin; clocks go forward on Sunday
    assert add_working_time(start, 24 * H, berlin) == start + 24 * H


def test_timers_come_earliest_first_with_warning_before_breach() -> None:
    clocks = [
        sla.start_clock("resolution", T0, 24 * H),
        sla.start_clock("first_response", T0, 2 * H),
        sla.start_clock("next_update", T0, 4 * H),
    ]
    timers = sla.pending_timers(clocks, 0.75, None, [])
    assert [(t.kind, t.clock, t.due_at - T0) for t in timers] == [
        ("warning", "first_response", timedelta(minutes=90)),
        ("breach", "first_response", 2 * H),
        ("warning", "next_update", 3 * H),
        ("breach", "next_update", 4 * H),
        ("warning", "resolution", 18 * H),
        ("breach", "resolution", 24 * H),
    ]


def test_met_warned_and_breached_clocks_have_fewer_timers() -> None:
    met = sla.meet(clock(2 * H), T0 + H)
    warned = clock(2 * H).model_copy(update={"warned": True})
    breached = clock(2 * H).model_copy(update={"breached": True, "breaches": 1})
    assert sla.pending_timers([met], 0.75, None, []) == []
    assert [t.kind for t in sla.pending_timers([warned], 0.75, None, [])] == ["breach"]
    assert sla.pending_timers([breached], 0.75, None, []) == []
    assert sla.pending_timers([sla.stop(clock(2 * H))], 0.75, None, []) == []


def test_a_pause_makes_the_old_timer_stale() -> None:
    timer = TimerSpec(kind="breach", clock="first_response", due_at=T0 + 2 * H)
    assert sla.is_current(timer, clock(2 * H), 0.75, None, [])
    pauses = [Pause(waiting_on="customer", started_at=T0 + H, ended_at=T0 + 2 * H)]
    assert not sla.is_current(timer, clock(2 * H), 0.75, None, pauses)


def test_tighten_shortens_but_never_lengthens() -> None:
    running = clock(4 * H)
    shorter = sla.tighten(running, T0 + H, 2 * H, None, [])
    assert sla.due_at(shorter, None, []) == T0 + 3 * H
    assert not shorter.warned
    assert sla.tighten(running, T0 + 3 * H, 2 * H, None, []) == running
    assert sla.tighten(sla.meet(running, T0), T0 + H, timedelta(minutes=1), None, []).met_at == T0


def test_restart_opens_a_fresh_window_and_keeps_the_breach_count() -> None:
    breached = clock(2 * H).model_copy(update={"breached": True, "breaches": 1, "warned": True})
    fresh = sla.restart(breached, T0 + 3 * H, H)
    assert (fresh.breached, fresh.warned, fresh.breaches) == (False, False, 1)
    assert sla.due_at(fresh, None, []) == T0 + 4 * H


@pytest.mark.parametrize(
    ("state", "pauses", "status"),
    [
        ({}, [], "running"),
        ({}, [Pause(waiting_on="customer", started_at=T0)], "paused"),
        ({"met_at": T0 + H}, [], "met"),
        ({"breached": True, "breaches": 1}, [], "breached"),
        ({"stopped": True}, [], "stopped"),
    ],
)
def test_each_clock_is_visible_on_its_own(state: dict, pauses: list[Pause], status: str) -> None:
    shown = sla.view(clock(2 * H).model_copy(update=state), T0 + H, 0.75, None, pauses)
    assert shown.status == status
    assert shown.target_seconds == 7200


def test_view_of_a_running_clock() -> None:
    shown = sla.view(clock(2 * H), T0 + H, 0.75, None, [])
    assert (shown.due_at, shown.warn_at, shown.remaining_seconds) == (T0 + 2 * H, T0 + 90 * H / 60, 3600)


def test_a_met_clock_keeps_its_deadline_through_later_pauses() -> None:
    met = sla.meet(clock(4 * H), T0 + H)
    later = [Pause(waiting_on="customer", started_at=T0 + 2 * H, ended_at=T0 + 5 * H)]
    assert sla.due_at(met, None, later) == T0 + 4 * H
    earlier = [Pause(waiting_on="customer", started_at=T0 + 30 * H / 60, ended_at=T0 + 2 * H)]
    # Only the part of a pause before the response counts.
    assert sla.due_at(met, None, earlier) == T0 + 4 * H + 30 * H / 60


def test_around_the_clock_without_pauses_agrees_with_walking_an_always_open_calendar() -> None:
    """The 24/7 unpaused clock is plain arithmetic; it must give what the interval walk gives."""
    always = BusinessCalendar(timezone="UTC", weekly={day: ["00:00-24:00"] for day in
                                                       ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
    start = datetime(2026, 12, 4, 22, 17, 5, tzinfo=UTC)  # a Friday night: the walk crosses days and a weekend
    for amount in (timedelta(0), timedelta(minutes=7), timedelta(hours=4), timedelta(hours=75, seconds=3)):
        assert add_working_time(start, amount, None) == add_working_time(start, amount, always) == start + amount
    for end in (start - timedelta(hours=1), start, start + timedelta(minutes=30), start + timedelta(days=3, hours=5)):
        expected = max(timedelta(0), end - start)
        assert working_time_between(start, end, None) == working_time_between(start, end, always) == expected
    # A pause still takes the walk: an hour paused moves the deadline an hour.
    paused = [(start + timedelta(hours=1), start + timedelta(hours=2))]
    assert add_working_time(start, timedelta(hours=4), None, paused) == start + timedelta(hours=5)
    assert working_time_between(start, start + timedelta(hours=3), None, paused) == timedelta(hours=2)
