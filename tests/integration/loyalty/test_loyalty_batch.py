"""Grants handled a fetch at a time give exactly what the same events give one at a time.

The consumer hands a run of `compensation.issued.v1` to loyalty's batch form in one call. These
tests feed the same events (same customer twice, a redelivered event, the same compensation under a
new event id, a reversal and a purchase in between) once as one fetch through the batch form and
once event by event through the per-event form, on PostgreSQL, and compare balances, tiers, lots,
ledger entries and the events written to the outbox.
"""

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from services.loyalty import accounts, ledger
from services.loyalty.models import customers, delivery, orders
from services.loyalty.policy import default_policy
from services.loyalty.sweep import _tx, sweep_once
from shared.bus import KafkaBus
from shared.db import Database
from shared.envelope import Envelope, new_event
from shared.events import EventData
from shared.events.cases import CaseResolved
from shared.events.compensation import CompensationIssued, CompensationReversed, Remedy
from shared.events.orders import OrderCompleted, OrderRefunded
from shared.events.vocabulary import Category, CustomerTier, Severity
from shared.outbox import Emitter
from tests.integration.loyalty.helpers import consumer_settings, feed, loyalty_consumer, new_id
from tests.support.stack import private_service_env

# Fields that differ between two correct runs: generated ids, tokens and the time of handling.
_VOLATILE = re.compile(r"(_at|_id_token|^token|^entry_id|^survey_id)$")


@pytest.fixture(scope="module")
def batch_env(loyalty_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A loyalty schema of its own: no running service's sweep touches these customers meanwhile."""
    with private_service_env("loyalty", tmp_path_factory.mktemp("loyalty-batch"), loyalty_broker) as env:
        yield env


@pytest.fixture
async def database(batch_env: dict[str, str]) -> AsyncIterator[Database]:
    """Loyalty's schema, without the service."""
    engine = create_async_engine(
        batch_env["DATABASE_URL"], connect_args={"server_settings": {"search_path": "loyalty"}}
    )
    yield Database(engine, delivery, "loyalty")
    await engine.dispose()


@pytest.fixture
async def kafka_bus(batch_env: dict[str, str]) -> AsyncIterator[KafkaBus]:
    """Where the consumer dead-letters."""
    bus = KafkaBus(consumer_settings(batch_env), client_id="loyalty-batch-test")
    yield bus
    await bus.close()


def _event(data: EventData) -> Envelope:
    return new_event(data, source="/test", subject=None, correlation_id=new_id("corr"))


def _issued(p: str, n: int, customer: str, points: int, reason: str = "incident") -> CompensationIssued:
    return CompensationIssued(
        compensation_id=f"{p}-comp{n}", customer_id=f"{p}-{customer}", case_id=f"{p}-case{n}", reason=reason,
        remedy=Remedy(option_id="o1", kind="points", points=points), issued_at=_T0,
    )


_T0 = datetime.now(UTC).replace(microsecond=0)
# The tier reason of a customer loyalty created through a grant: settled for the year, with no purchases.
NO_PURCHASES = "annual spend 0.00 CNY below 10,000.00 CNY and 0 repeat purchase(s) below 1"


def _scenario(p: str) -> tuple[list[Envelope], list[Envelope]]:
    """Events seeding a known customer, then one fetch's worth of events in fetch order."""
    seed = [_event(_issued(p, 0, "known", 1000)),
            _event(OrderCompleted(order_id=f"{p}-ord0", customer_id=f"{p}-known", amount_minor=40_000,
                                  completed_at=_T0 - timedelta(days=2)))]
    first = _event(_issued(p, 1, "new", 200))
    again = _issued(p, 1, "new", 200)  # the same compensation published again under a new event id
    fetch = [
        first,
        _event(_issued(p, 2, "known", 300)),
        _event(_issued(p, 3, "new", 50)),  # the same customer twice in one fetch
        first,  # the same event delivered twice
        _event(again),
        _event(_issued(p, 4, "zero", 0)),  # nothing to grant
        _event(_issued(p, 5, "known", 70, reason="low_survey")),
        _event(CompensationReversed(compensation_id=f"{p}-comp2", customer_id=f"{p}-known", case_id=f"{p}-case2",
                                    remedy=Remedy(option_id="o1", kind="points", points=300), reversed_by="sup",
                                    reason="incident", reversed_at=_T0)),
        _event(_issued(p, 6, "known", 40)),
        _event(OrderCompleted(order_id=f"{p}-ord1", customer_id=f"{p}-new", amount_minor=2_000_000,
                              completed_at=_T0)),  # a purchase that moves the tier, between grants
        _event(_issued(p, 7, "new", 25)),
        _event(CaseResolved(case_id=f"{p}-case9", complaint_id=f"{p}-cmp9", customer_id=f"{p}-other",
                            severity=Severity.P3, category=Category.PRODUCT_USAGE, queue="product_support",
                            customer_tier=CustomerTier.POTENTIAL, resolution_code="fixed", first_handling=True,
                            resolved_at=_T0, resolved_by="agent-1")),
        _event(_issued(p, 8, "other", 10)),
        _event(_issued(p, 9, "new", 5)),
    ]
    return seed, fetch


async def _snapshot(db: Database, p: str) -> dict[str, Any]:
    """What a user would check, with the run's prefix and volatile values taken out."""
    like = f"{p}-%"
    async with db.engine.connect() as conn:
        customers = (await conn.execute(sa.text(
            "SELECT customer_id, balance, tier, tier_reasons, tier_year FROM customers "
            "WHERE customer_id LIKE :p ORDER BY customer_id"), {"p": like})).all()
        lots = (await conn.execute(sa.text(
            "SELECT lot_id, customer_id, source_key, points, remaining FROM points_lots "
            "WHERE customer_id LIKE :p ORDER BY customer_id, source_key"), {"p": like})).all()
        entries = (await conn.execute(sa.text(
            "SELECT customer_id, kind, points, balance_after, reason, source_key, compensation_id, case_id, "
            "order_id, takes FROM ledger WHERE customer_id LIKE :p ORDER BY seq"), {"p": like})).all()
        events = (await conn.execute(sa.text(
            "SELECT event_type, envelope FROM outbox WHERE envelope LIKE :p ORDER BY id"),
            {"p": f"%{p}-%"})).all()
        timers = (await conn.execute(sa.text(
            "SELECT kind, key FROM timers WHERE key LIKE :p ORDER BY kind, key"), {"p": f"%{p}-%"})).all()
    lot_source = {lot.lot_id: lot.source_key for lot in lots}
    snapshot = {
        "customers": [tuple(c) for c in customers],
        "lots": [(lot.customer_id, lot.source_key, lot.points, lot.remaining) for lot in lots],
        "ledger": [(*e[:-1], [(lot_source[t["lot_id"]], t["points"]) for t in (e.takes or [])]) for e in entries],
        "events": [(e.event_type, _stable(json.loads(e.envelope)["data"])) for e in events],
        "timers": [tuple(t) for t in timers],
    }
    return json.loads(json.dumps(snapshot, default=str).replace(p, "P"))


def _stable(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _stable(v) for k, v in data.items() if not _VOLATILE.search(k)}
    return data


async def test_a_fetch_of_grants_gives_what_the_events_give_one_at_a_time(
    database: Database, kafka_bus: KafkaBus, batch_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    batched, single = new_id("bat"), new_id("one")
    caplog.set_level(logging.INFO, logger="shared.consumer")
    for prefix, one_fetch in ((batched, True), (single, False)):
        seed, fetch = _scenario(prefix)
        consumer = loyalty_consumer(database, kafka_bus, batch_env, default_policy(), batched=one_fetch)
        await feed(consumer, seed, one_fetch=False)
        await feed(consumer, fetch, one_fetch=one_fetch)
    # The fetch went through in one transaction: no fallback to one at a time hid a batch failure.
    assert "one by one" not in caplog.text
    got, expected = await _snapshot(database, batched), await _snapshot(database, single)
    assert got == expected
    # And what they are: the duplicates granted once, balance_after counting the grants before it.
    balances = {c[0]: c[1] for c in got["customers"]}
    # A compensation without points creates nothing; 20,000 yuan earn 20,000 points at potential, then mid value.
    assert balances == {"P-known": 1000 + 400 + 300 + 70 - 300 + 40, "P-new": 200 + 50 + 20_000 + 25 + 5,
                        "P-other": 10}
    new_entries = [(e[2], e[3]) for e in got["ledger"] if e[0] == "P-new"]
    assert new_entries == [(200, 200), (50, 250), (20_000, 20_250), (25, 20_275), (5, 20_280)]
    changed = [e[1] for e in got["events"] if e[0] == "loyalty.tier_changed.v1"]
    assert [(c["customer_id"], c["to_tier"]) for c in changed] == [("P-new", "mid_value")]


async def test_a_failing_event_in_a_fetch_falls_back_to_one_at_a_time(
    database: Database, kafka_bus: KafkaBus, batch_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shared.consumer")
    p = new_id("fb")
    unknown_refund = OrderRefunded(order_id=f"{p}-nope", customer_id=f"{p}-a", amount_minor=100, refunded_at=_T0)
    fetch = [_event(_issued(p, 1, "a", 100)), _event(unknown_refund), _event(_issued(p, 2, "a", 20))]
    consumer = loyalty_consumer(database, kafka_bus, batch_env, default_policy(), batched=True)
    await feed(consumer, fetch, one_fetch=True)
    got = await _snapshot(database, p)
    # Created by a grant: no purchases, so settled for this year at once (the sweep has nothing to do for it).
    year = default_policy().local_date(datetime.now(UTC)).year
    assert got["customers"] == [["P-a", 120, "potential", [NO_PURCHASES], year]]
    assert [(e[1], e[2], e[3]) for e in got["ledger"]] == [("earn", 100, 100), ("earn", 20, 120)]
    assert "batch of 3 failed" in caplog.text and "dead-lettered order.refunded.v1" in caplog.text


async def test_the_sweep_settles_customers_without_purchases_as_the_full_refresh_would(database: Database) -> None:
    """Customers who never purchased are refreshed by one statement, to the same rows the full path writes."""
    p, policy, now = new_id("sw"), default_policy(), datetime.now(UTC)
    emitter = Emitter(database, source="/redress/loyalty")
    ids = {name: f"{p}-{name}" for name in ("bare", "twin", "buyer", "golden")}
    async with database.transaction() as conn:
        await conn.execute(sa.insert(customers), [
            {"customer_id": cid, "balance": 0, "tier": "high_value" if name == "golden" else "potential",
             "tier_reasons": [], "created_at": now, "updated_at": now} for name, cid in ids.items()])
        await conn.execute(sa.insert(orders).values(
            order_id=f"{p}-o1", customer_id=ids["buyer"], amount_minor=10_000, currency=policy.currency,
            completed_at=now, year=policy.local_date(now).year, points_earned=0))
    async with database.transaction() as conn:  # the full refresh, by hand, of the twin
        tx = _tx(conn, database, emitter, policy, now, ids["twin"])
        await ledger.lock_customer(tx, ids["twin"])
        await accounts.recompute_tier(tx, ids["twin"])
        await accounts.issue_due_benefits(tx, ids["twin"])
    async with database.engine.connect() as conn:
        outbox_before = await conn.scalar(sa.select(sa.func.count()).select_from(database.tables.outbox))

    await sweep_once(database, emitter, policy, batch=10_000, now=now)

    async with database.engine.connect() as conn:
        rows = {r.customer_id: r for r in await conn.execute(sa.select(customers).where(
            customers.c.customer_id.in_(list(ids.values()))))}
        outbox_after = await conn.scalar(sa.select(sa.func.count()).select_from(database.tables.outbox))
    bare, twin = rows[ids["bare"]], rows[ids["twin"]]
    today = policy.local_date(now)
    assert (bare.tier, bare.tier_year, bare.tier_reasons, bare.benefits_checked_on) == (
        twin.tier, twin.tier_year, twin.tier_reasons, twin.benefits_checked_on) == (
        "potential", today.year, twin.tier_reasons, today)
    # The buyer and the customer whose tier an empty history does not give took the full path.
    assert rows[ids["buyer"]].benefits_checked_on == today and rows[ids["buyer"]].tier_year == today.year
    assert rows[ids["golden"]].tier == "potential"  # lowered, with its tier_changed event
    assert outbox_after > outbox_before


async def test_customers_a_grant_creates_are_what_the_sweep_would_make_of_them(database: Database) -> None:
    """A grant (batch or single) creates its new customer settled for the year: the sweep has nothing left
    to do for them, and their tier columns equal those the sweep writes for a customer created bare."""
    p, policy, now = new_id("gs"), default_policy(), datetime.now(UTC)
    emitter = Emitter(database, source="/redress/loyalty")
    ids = {name: f"{p}-{name}" for name in ("batch", "single", "bare")}
    async with database.transaction() as conn:
        tx = _tx(conn, database, emitter, policy, now, p)
        await ledger.credit_many([ledger.Credit(tx, ids["batch"], 200, "incident", source_key=f"{p}-k1")])
        await ledger.credit(tx, ids["single"], 200, "incident", source_key=f"{p}-k2")
        await conn.execute(sa.insert(customers).values(customer_id=ids["bare"], balance=0, tier="potential",
                                                       tier_reasons=[], created_at=now, updated_at=now))
    before = await _tier_columns(database, ids)
    assert before[ids["bare"]] == ("potential", None, [], None)

    done = await sweep_once(database, emitter, policy, batch=10_000, now=now)

    after = await _tier_columns(database, ids)
    today = policy.local_date(now)
    assert after[ids["batch"]] == after[ids["single"]] == after[ids["bare"]] == (
        "potential", today.year, [NO_PURCHASES], today)
    assert {cid: after[cid] for cid in (ids["batch"], ids["single"])} == {
        cid: before[cid] for cid in (ids["batch"], ids["single"])}  # as they were created
    assert done.refreshed >= 1  # the bare one (others of the shared database may be refreshed too)


async def _tier_columns(db: Database, ids: dict[str, str]) -> dict[str, tuple[Any, ...]]:
    """Tier, tier year, reasons and benefits check of the given customers."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(customers.c.customer_id, customers.c.tier, customers.c.tier_year, customers.c.tier_reasons,
                      customers.c.benefits_checked_on).where(customers.c.customer_id.in_(list(ids.values()))))
        return {row[0]: tuple(row[1:]) for row in rows}


async def test_a_grant_a_concurrent_batch_wrote_first_is_granted_once(
    database: Database, kafka_bus: KafkaBus, batch_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The batch reads the source keys before it locks the customers: one written meanwhile fails it over."""
    caplog.set_level(logging.INFO, logger="shared.consumer")
    p = new_id("race")
    issued = _issued(p, 1, "a", 100)
    consumer = loyalty_consumer(database, kafka_bus, batch_env, default_policy(), batched=True)
    emitter = Emitter(database, source="/test")
    async with database.transaction() as conn:
        tx = _tx(conn, database, emitter, default_policy(), _T0, issued.customer_id)
        await ledger.credit_many([ledger.Credit(tx, issued.customer_id, 100, "first",
                                                source_key=f"compensation:{issued.compensation_id}")])
        # The same compensation under another event id, while the first grant is not committed yet:
        # its batch sees no such source key and waits for the customer's row.
        racing = asyncio.create_task(feed(consumer, [_event(issued)], one_fetch=True))
        await asyncio.sleep(0.5)
        assert not racing.done()
    await racing
    got = await _snapshot(database, p)
    assert got["customers"] == [["P-a", 100, "potential", [NO_PURCHASES], default_policy().local_date(_T0).year]]
    assert [(e[1], e[2], e[3]) for e in got["ledger"]] == [("earn", 100, 100)]
    # The ledger's unique source key failed the batch at its commit; handled again, it found the grant made.
    assert "handling it again" in caplog.text and "dead-lettered" not in caplog.text
