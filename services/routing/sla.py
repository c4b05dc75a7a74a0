"""SLA clocks: three per case (first response, next update, resolution), pure arithmetic.

A clock runs from ``started_at`` for ``target`` of working time: time inside the
queue's calendar (24/7 by default) and outside pauses, so a pause shifts the
deadline by the paused time. A clock restarts (new window) when the next update
is given, after a breach (the next rung of the ladder gets its own window) and
when a higher tier shortens it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from services.routing.calendar import FOREVER, BusinessCalendar, Interval, add_working_time, working_time_between
from shared.events.cases import Clock, Deadlines

WaitingOn = Literal["customer", "third_party"]
TimerKind = Literal["warning", "breach"]
ClockStatus = Literal["running", "paused", "met", "breached", "stopped"]


class Pause(BaseModel):
    """The case waited on the customer or a third party from ``started_at`` to ``ended_at``."""

    model_config = ConfigDict(frozen=True)

    waiting_on: WaitingOn
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    by: str | None = None

    def interval(self) -> Interval:
        """The paused interval; an open pause runs until further notice."""
        return self.started_at, self.ended_at or FOREVER


class ClockState(BaseModel):
    """One clock: its current window and what happened to it."""

    model_config = ConfigDict(frozen=True)

    name: Clock
    started_at: AwareDatetime
    target: timedelta
    met_at: AwareDatetime | None = None
    warned: bool = False
    breached: bool = False
    breaches: int = 0
    stopped: bool = False


class TimerSpec(BaseModel):
    """A moment when a clock needs attention: its warning or its breach."""

    model_config = ConfigDict(frozen=True)

    kind: TimerKind
    clock: Clock
    due_at: AwareDatetime


class ClockView(BaseModel):
    """What an operator sees of one clock."""

    name: Clock
    status: ClockStatus
    started_at: datetime
    target_seconds: float
    due_at: datetime | None
    warn_at: datetime | None
    remaining_seconds: float
    met_at: datetime | None
    breaches: int


def intervals(pauses: Iterable[Pause]) -> list[Interval]:
    """Paused intervals of a case."""
    return [pause.interval() for pause in pauses]


def start_clock(name: Clock, at: datetime, target: timedelta) -> ClockState:
    """A fresh clock running from ``at``."""
    return ClockState(name=name, started_at=at, target=target)


def _held(clock: ClockState, pauses: Iterable[Pause]) -> list[Interval]:
    """Paused intervals that count for this clock: none after it was met (its deadline is history then)."""
    spans = intervals(pauses)
    if clock.met_at is None:
        return spans
    return [(lo, min(hi, clock.met_at)) for lo, hi in spans if lo < clock.met_at]


def due_at(clock: ClockState, calendar: BusinessCalendar | None, pauses: Iterable[Pause]) -> datetime | None:
    """Deadline of the clock's current window; None while an open pause holds it."""
    return add_working_time(clock.started_at, clock.target, calendar, _held(clock, pauses))


def warn_at(
    clock: ClockState, share: float, calendar: BusinessCalendar | None, pauses: Iterable[Pause]
) -> datetime | None:
    """When the clock has used ``share`` of its target."""
    return add_working_time(clock.started_at, clock.target * share, calendar, _held(clock, pauses))


def remaining(
    clock: ClockState, now: datetime, calendar: BusinessCalendar | None, pauses: Iterable[Pause]
) -> timedelta:
    """Working time left in the current window (negative once overdue)."""
    return clock.target - working_time_between(clock.started_at, now, calendar, _held(clock, pauses))


def restart(clock: ClockState, at: datetime, target: timedelta) -> ClockState:
    """Open a new window from ``at`` (after an update, a breach or a reopen)."""
    fresh = {"started_at": at, "target": target, "met_at": None, "warned": False, "breached": False, "stopped": False}
    return clock.model_copy(update=fresh)


def meet(clock: ClockState, at: datetime) -> ClockState:
    """The clock's obligation was fulfilled at ``at``."""
    return clock.model_copy(update={"met_at": at})


def stop(clock: ClockState) -> ClockState:
    """No further timers for this clock (the case is resolved)."""
    return clock.model_copy(update={"stopped": True})


def tighten(
    clock: ClockState, now: datetime, target: timedelta, calendar: BusinessCalendar | None, pauses: Iterable[Pause]
) -> ClockState:
    """Shorten a running clock to ``target`` from now if that leaves less time; never lengthen it."""
    if not is_running(clock) or target >= remaining(clock, now, calendar, pauses):
        return clock
    return restart(clock, now, target)


def is_running(clock: ClockState) -> bool:
    """The clock can still warn or breach."""
    return clock.met_at is None and not clock.breached and not clock.stopped


def pending_timers(
    clocks: Iterable[ClockState], share: float, calendar: BusinessCalendar | None, pauses: Iterable[Pause]
) -> list[TimerSpec]:
    """Warnings and breaches still to come, earliest first (none for a held clock)."""
    pauses = list(pauses)
    timers: list[TimerSpec] = []
    for clock in clocks:
        if not is_running(clock):
            continue
        warning = None if clock.warned else warn_at(clock, share, calendar, pauses)
        breach = due_at(clock, calendar, pauses)
        if warning is not None:
            timers.append(TimerSpec(kind="warning", clock=clock.name, due_at=warning))
        if breach is not None:
            timers.append(TimerSpec(kind="breach", clock=clock.name, due_at=breach))
    return sorted(timers, key=lambda t: (t.due_at, t.kind == "breach"))


def is_current(
    timer: TimerSpec, clock: ClockState, share: float, calendar: BusinessCalendar | None, pauses: Iterable[Pause]
) -> bool:
    """A timer still stands for this clock (not made stale by a pause, an update or a restart)."""
    current = pending_timers([clock], share, calendar, pauses)
    return timer in current


def deadlines(
    clocks: Mapping[str, ClockState], calendar: BusinessCalendar | None, pauses: Iterable[Pause]
) -> Deadlines:
    """The three deadlines of a case, each on its own."""
    pauses = list(pauses)
    due = {name: due_at(clock, calendar, pauses) for name, clock in clocks.items()}
    return Deadlines(
        first_response_due=due.get("first_response"),
        next_update_due=due.get("next_update"),
        resolution_due=due.get("resolution"),
    )


def view(
    clock: ClockState, now: datetime, share: float, calendar: BusinessCalendar | None, pauses: Iterable[Pause]
) -> ClockView:
    """One clock as an operator sees it at ``now``."""
    pauses = list(pauses)
    paused = any(p.ended_at is None for p in pauses)
    if clock.met_at is not None:
        status: ClockStatus = "met"
    elif clock.breached:
        status = "breached"
    elif clock.stopped:
        status = "stopped"
    else:
        status = "paused" if paused else "running"
    return ClockView(
        name=clock.name,
        status=status,
        started_at=clock.started_at,
        target_seconds=clock.target.total_seconds(),
        due_at=due_at(clock, calendar, pauses),
        warn_at=warn_at(clock, share, calendar, pauses),
        remaining_seconds=remaining(clock, clock.met_at or now, calendar, pauses).total_seconds(),
        met_at=clock.met_at,
        breaches=clock.breaches,
    )
