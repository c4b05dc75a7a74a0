"""Intake's consumer puts a fetch of downstream events on the timelines as one run, with the effects of one by one.

Intake's own handlers run under the shared consumer against a migrated schema (PostgreSQL, and the SQLite
file of the embedded default): the same events once as fetches handled by the batch form and once each by
the per-event form must leave the same complaints and the same timeline rows. A run's statements do not
grow with the number of events in it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord

from services.intake.handlers import make_handlers
from services.intake.models import complaints, delivery, timeline
from services.intake.settings import Settings
from shared.consumer import BatchableHandler, EventConsumer, Handler
from shared.db import Database, make_engine
from shared.envelope import Envelope, new_event, to_kafka
from shared.events import EventData
from shared.events.cases import (
    CaseAcknowledged,
    CasePaused,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseRouted,
    Deadlines,
)
from shared.events.compensation import CompensationRejected
from shared.events.loyalty import PointsChanged
from shared.events.vocabulary import Category, Severity
from shared.outbox import Emitter
from tests.support.infra import throwaway_database
from tests.support.stack import migrate_all, stack_env

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Settings, Settings]]:
    """Two migrated intake schemas of one backend: one for fetches handled as runs, one for one by one."""
    if request.param == "sqlite":
        pair = []
        for name in ("as-run", "one-by-one"):
            data_dir = tmp_path / name  # no database URL: the embedded default, a SQLite file under DATA_DIR
            migrate_all(stack_env("", "127.0.0.1:9", data_dir), "intake")
            pair.append(Settings(database_url="", data_dir=data_dir, kafka_bootstrap_servers="127.0.0.1:9"))
        yield pair[0], pair[1]
        return
    with throwaway_database() as first, throwaway_database() as second:
        for url in (first, second):
            migrate_all(stack_env(url, "127.0.0.1:9", tmp_path), "intake")
        yield (Settings(database_url=first, kafka_bootstrap_servers="127.0.0.1:9"),
               Settings(database_url=second, kafka_bootstrap_servers="127.0.0.1:9"))


def _per_event(handlers: dict[str, Handler]) -> dict[str, Handler]:
    """The same handlers without their batch form: every event goes through the per-event form."""
    return {t: h.one if isinstance(h, BatchableHandler) else h for t, h in handlers.items()}


@asynccontextmanager
async def intake_consumer(settings: Settings, *, batch: bool) -> AsyncIterator[EventConsumer]:
    """Intake's handlers under the shared consumer (no broker: nothing is dead-lettered)."""
    db = Database(make_engine(settings), delivery, settings.db_schema)
    handlers = make_handlers() if batch else _per_event(make_handlers())
    consumer = EventConsumer(service="intake", settings=settings, db=db, bus=None, emitter=Emitter(db, "/test"),
                             handlers=handlers, topics=[])  # type: ignore[arg-type]
    try:
        yield consumer
    finally:
        await db.dispose()


def _complaint_row(complaint_id: str, *, status_at: datetime | None = T0, case_id: str | None = None) -> dict[str, Any]:
    return {"id": complaint_id, "customer_id": f"cust-{complaint_id}", "channel": "web", "text": "The kettle leaks.",
            "language": "en", "category": "product_usage", "status": "received", "received_at": T0,
            "status_at": status_at, "last_message_at": T0, "case_id": case_id}


@dataclass
class Scenario:
    """Complaints to store first, timeline entries already there, and the events to deliver (fetch by fetch)."""

    complaints: list[dict[str, Any]] = field(default_factory=list)
    on_timeline: list[dict[str, Any]] = field(default_factory=list)
    fetches: list[list[Envelope]] = field(default_factory=list)

    async def seed(self, db: Database) -> None:
        """Store the complaints and the timeline entries."""
        async with db.transaction() as conn:
            await conn.execute(sa.insert(complaints), self.complaints)
            if self.on_timeline:
                await conn.execute(sa.insert(timeline), self.on_timeline)


def envelope(data: EventData, complaint_id: str, minutes: float) -> Envelope:
    """``data`` as a downstream service emits it for ``complaint_id``, made ``minutes`` after T0."""
    env = new_event(data, source="/redress/tests", subject=complaint_id, correlation_id=complaint_id)
    return env.model_copy(update={"time": T0 + timedelta(minutes=minutes)})


def records(envelopes: list[Envelope]) -> list[ConsumerRecord]:
    """The envelopes as the consumer fetches them (one partition, in order)."""
    out = []
    for offset, env in enumerate(envelopes):
        key, value, headers = to_kafka(env)
        out.append(ConsumerRecord(topic="cases", partition=0, offset=offset, timestamp=0, timestamp_type=0,
                                  key=key, value=value, checksum=None, serialized_key_size=len(key or b""),
                                  serialized_value_size=len(value), headers=headers))
    return out


def routed(complaint_id: str, case_id: str) -> CaseRouted:
    """Routing opened ``case_id`` for the complaint."""
    return CaseRouted(case_id=case_id, complaint_id=complaint_id, customer_id=f"cust-{complaint_id}",
                      severity=Severity.P3, category=Category.PRODUCT_USAGE, queue="product_support",
                      deadlines=Deadlines(), received_at=T0, routed_at=T0)


def acknowledged(complaint_id: str, case_id: str) -> CaseAcknowledged:
    """An agent answered first."""
    return CaseAcknowledged(case_id=case_id, complaint_id=complaint_id, customer_id=f"cust-{complaint_id}",
                            by="agent-7", at=T0, first_response_seconds=30.0)


def resolved(complaint_id: str, case_id: str) -> CaseResolved:
    """The case was resolved."""
    return CaseResolved(case_id=case_id, complaint_id=complaint_id, customer_id=f"cust-{complaint_id}",
                        severity=Severity.P3, category=Category.PRODUCT_USAGE, queue="product_support",
                        resolution_code="replaced", first_handling=True, resolved_at=T0, resolved_by="agent-7")


def paused(complaint_id: str, case_id: str) -> CasePaused:
    """The case waits on the customer."""
    return CasePaused(case_id=case_id, complaint_id=complaint_id, customer_id=f"cust-{complaint_id}",
                      waiting_on="customer", at=T0)


def resumed(complaint_id: str, case_id: str) -> CaseResumed:
    """The case goes on."""
    return CaseResumed(case_id=case_id, complaint_id=complaint_id, customer_id=f"cust-{complaint_id}", at=T0,
                       paused_seconds=60.0)


def reopened(complaint_id: str, case_id: str) -> CaseReopened:
    """The customer was not satisfied."""
    return CaseReopened(case_id=case_id, complaint_id=complaint_id, customer_id=f"cust-{complaint_id}", at=T0,
                        by="agent-2", reason="still leaks")


def rejected(customer_id: str, case_id: str | None) -> CompensationRejected:
    """A compensation rejected: it names no complaint (found by its correlation id)."""
    return CompensationRejected(compensation_id=f"comp-{uuid.uuid4().hex[:8]}", customer_id=customer_id,
                                case_id=case_id, reason="case_resolved", rejected_by="manager-2")


def points(customer_id: str, case_id: str) -> PointsChanged:
    """Points earned for a case (names no complaint either)."""
    return PointsChanged(customer_id=customer_id, entry_id=f"entry-{uuid.uuid4().hex[:8]}", kind="earn",
                         points=200, balance=200, reason="goodwill", case_id=case_id)


def mixed_scenario() -> Scenario:
    """Several events of one complaint in a fetch, events older than the stored status, equal times, events
    found by correlation id, events of complaints intake does not have, an event already on the timeline,
    the same event twice in a fetch and again in the next one."""
    a, b, c, d, e, f = (f"cmp-{uuid.uuid4().hex[:10]}-{n}" for n in "abcdef")
    stranger = f"cmp-{uuid.uuid4().hex[:10]}-x"
    scenario = Scenario(complaints=[
        _complaint_row(a), _complaint_row(b), _complaint_row(c), _complaint_row(d, case_id="case-d-first"),
        _complaint_row(e), _complaint_row(f, status_at=None),
    ])
    e_routed = envelope(routed(e, "case-e"), e, 1)  # on e's timeline already: no effect at all
    scenario.on_timeline.append({"complaint_id": e, "at": e_routed.time, "event_type": e_routed.type,
                                 "event_id": e_routed.id, "status": "routed", "detail": {}})
    a_acknowledged, a_resolved = envelope(acknowledged(a, "case-a"), a, 2), envelope(resolved(a, "case-a"), a, 5)
    scenario.fetches = [
        [
            envelope(routed(a, "case-a"), a, 1),
            envelope(rejected(f"cust-{b}", "case-b-compensation"), b, 1),  # by correlation: sets b's case first
            a_acknowledged,
            envelope(routed(stranger, "case-x"), stranger, 1),  # not intake's
            envelope(routed(b, "case-b"), b, 3),
            a_resolved,
            envelope(resolved(c, "case-c"), c, 10),
            envelope(routed(c, "case-c"), c, 4),  # older than the resolution: on the timeline, status stays
            envelope(paused(a, "case-a"), a, 4),  # older than a's resolution
            envelope(acknowledged(d, "case-d-second"), d, 2),  # d keeps its first case
            e_routed,
            envelope(reopened(a, "case-a"), a, 5),  # as old as the resolution: the later one wins
            envelope(points(f"cust-{c}", "case-c"), c, 12),
            a_acknowledged,  # the same event twice in one fetch
            envelope(rejected("cust-nobody", None), stranger, 2),  # an incident's or someone else's
            envelope(routed(f, "case-f"), f, 0),  # f never had a status time
        ],
        [
            envelope(resumed(b, "case-b"), b, 2),  # older than b's routing
            a_resolved,  # delivered again
            envelope(resolved(a, "case-a"), a, 6),
            envelope(reopened(c, "case-c"), c, 11),
            envelope(points(f"cust-{f}", "case-f-points"), f, 1),  # f's case is set already
        ],
    ]
    return scenario


async def outcome(db: Database, ids: list[str]) -> dict[str, Any]:
    """The complaints' status, status time and case, and every timeline row in the order they were added."""
    async with db.engine.connect() as conn:
        stored = (await conn.execute(
            sa.select(complaints.c.id, complaints.c.status, complaints.c.status_at, complaints.c.case_id)
            .where(complaints.c.id.in_(ids))
        )).all()
        entries = (await conn.execute(
            sa.select(timeline.c.complaint_id, timeline.c.at, timeline.c.event_type, timeline.c.event_id,
                      timeline.c.status, timeline.c.detail).order_by(timeline.c.id)
        )).all()
    return {"complaints": {row.id: (row.status, row.status_at, row.case_id) for row in stored},
            "timeline": [tuple(row) for row in entries]}


def test_a_fetch_handled_as_a_run_has_the_effects_of_one_event_at_a_time(
    databases: tuple[Settings, Settings],
) -> None:
    scenario = mixed_scenario()
    ids = [row["id"] for row in scenario.complaints]
    fetches = [records(fetch) for fetch in scenario.fetches]

    async def run(settings: Settings, *, batch: bool) -> dict[str, Any]:
        async with intake_consumer(settings, batch=batch) as consumer:
            await scenario.seed(consumer.db)
            if batch:
                for fetch in fetches:
                    await consumer.process(fetch)
            else:
                for record in (record for fetch in fetches for record in fetch):
                    await consumer.process([record])
            return await outcome(consumer.db, ids)

    as_run, one_by_one = databases
    batched, single = asyncio.run(run(as_run, batch=True)), asyncio.run(run(one_by_one, batch=False))
    assert batched == single
    a, b, c, d, e, f = ids
    minutes = {cid: (status, at and round((at - T0).total_seconds() / 60), case)
               for cid, (status, at, case) in batched["complaints"].items()}
    assert minutes == {
        a: ("resolved", 6, "case-a"),
        b: ("routed", 3, "case-b-compensation"),
        c: ("reopened", 11, "case-c"),
        d: ("in_progress", 2, "case-d-first"),
        e: ("received", 0, None),
        f: ("routed", 0, "case-f"),
    }
    per_complaint = {cid: sum(1 for row in batched["timeline"] if row[0] == cid) for cid in ids}
    assert per_complaint == {a: 6, b: 3, c: 4, d: 1, e: 1, f: 2}
    assert len(batched["timeline"]) == 17  # the seeded entry and 16 new ones, none for the stranger


def test_a_runs_statements_do_not_grow_with_its_events(databases: tuple[Settings, Settings]) -> None:
    async def statements(size: int) -> int:
        ids = [f"cmp-{uuid.uuid4().hex[:10]}" for _ in range(size)]
        scenario = Scenario(complaints=[_complaint_row(cid) for cid in ids])
        fetch = [envelope(make(cid, f"case-{cid}"), cid, minutes)
                 for minutes, make in enumerate((routed, acknowledged, resolved), start=1) for cid in ids]
        async with intake_consumer(databases[0], batch=True) as consumer:
            await scenario.seed(consumer.db)
            await consumer.process(records(fetch[:1]))  # statements prepared, pool warm
            counted: list[str] = []
            sa.event.listen(consumer.db.engine.sync_engine, "before_cursor_execute",
                            lambda *args: counted.append(args[2]))
            await consumer.process(records(fetch[1:]))
            resolved_ = await outcome(consumer.db, ids)
        assert {status for status, _, _ in resolved_["complaints"].values()} == {"resolved"}
        return len(counted)

    small, large = asyncio.run(statements(2)), asyncio.run(statements(40))
    assert small == large, (small, large)
    assert large <= 6  # inbox, lock, timeline, update (and BEGIN/COMMIT where the driver counts them)


def test_an_incidents_events_leave_no_inbox_rows(databases: tuple[Settings, Settings]) -> None:
    """An incident's compensations and their points name no case: intake passes them over before its inbox,
    while a compensation of a complaint's case in the same fetch still joins the timeline."""
    incident = f"inc-{uuid.uuid4().hex[:10]}"
    complaint = f"cmp-{uuid.uuid4().hex[:10]}"
    incident_events = [
        envelope(rejected(f"cust-{n}", None), incident, n) for n in range(3)
    ] + [envelope(PointsChanged(customer_id=f"cust-{n}", entry_id=f"entry-{n}", kind="earn", points=200, balance=200,
                                reason="compensation: incident"), incident, n) for n in range(3)]
    ours = envelope(rejected(f"cust-{complaint}", "case-ours"), complaint, 4)

    async def run(settings: Settings, whole_fetch: bool) -> tuple[set[str], list[str]]:
        async with intake_consumer(settings, batch=True) as consumer:
            await Scenario(complaints=[_complaint_row(complaint)]).seed(consumer.db)
            fetch = records([*incident_events, ours])
            for part in ([fetch] if whole_fetch else [[r] for r in fetch]):
                await consumer.process(part)
            async with consumer.db.engine.connect() as conn:
                inbox = set(await conn.scalars(sa.select(delivery.inbox.c.event_id)))
            return inbox, [row[3] for row in (await outcome(consumer.db, [complaint]))["timeline"]]

    for settings, whole_fetch in zip(databases, (True, False), strict=True):
        inbox, on_timeline = asyncio.run(run(settings, whole_fetch))
        assert inbox == {ours.id}
        assert on_timeline == [ours.id]
