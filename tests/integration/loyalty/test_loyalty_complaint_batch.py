"""Complaints handled a fetch at a time give exactly what the same events give one at a time.

The consumer hands a run of `complaint.received.v1` to loyalty's batch form in one call. These
tests feed the same events (new customers, a customer with pending follow-ups complaining four
times across the churn threshold, a complaint id seen before or earlier in the fetch, a redelivered
event, a resolution in between that splits the run) once as one fetch through the batch form and
once event by event through the per-event form, on PostgreSQL and on SQLite, and compare customers, follow-ups,
timers, recorded complaints and the events written to the outbox. A second test shows the batch
form's statements do not grow with the number of complaints.
"""

import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from services.loyalty.models import delivery
from services.loyalty.policy import LoyaltyPolicy, default_policy
from services.loyalty.settings import Settings
from shared.bus import KafkaBus
from shared.db import Database, make_engine
from shared.devstack import ROOT
from shared.envelope import Envelope, new_event
from shared.events import EventData
from shared.events.cases import CaseResolved
from shared.events.complaints import Classification, ComplaintReceived
from shared.events.vocabulary import Category, Channel, CustomerTier, Severity
from tests.integration.loyalty.helpers import consumer_settings, feed, loyalty_consumer, new_id
from tests.support.stack import private_service_env, stack_env

# Fields that differ between two correct runs: generated ids, tokens and the time of handling.
_VOLATILE = re.compile(r"(_at|_id_token|^token|^entry_id|^survey_id)$")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_T0 = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def complaint_env(loyalty_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A loyalty schema of its own: no running service's timers or sweep touch these rows meanwhile."""
    with private_service_env("loyalty", tmp_path_factory.mktemp("loyalty-complaints"), loyalty_broker) as env:
        yield env


@pytest.fixture(scope="module")
def sqlite_dir(complaint_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding loyalty's SQLite file (the embedded default), migrated."""
    data_dir = tmp_path_factory.mktemp("loyalty-complaints-sqlite")
    env = stack_env("", complaint_env["KAFKA_BOOTSTRAP_SERVERS"], data_dir)
    subprocess.run([sys.executable, "-m", "shared.migrate", "loyalty"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    return data_dir


@pytest.fixture(params=["postgresql", "sqlite"])
async def database(request: pytest.FixtureRequest, complaint_env: dict[str, str]) -> AsyncIterator[Database]:
    """Loyalty's schema, without the service: on PostgreSQL, and on the embedded SQLite file."""
    if request.param == "sqlite":
        settings = Settings(database_url="", data_dir=request.getfixturevalue("sqlite_dir"),
                            kafka_bootstrap_servers=complaint_env["KAFKA_BOOTSTRAP_SERVERS"])
        engine = make_engine(settings)
        schema = None
    else:
        engine = create_async_engine(
            complaint_env["DATABASE_URL"], connect_args={"server_settings": {"search_path": "loyalty"}}
        )
        schema = "loyalty"
    yield Database(engine, delivery, schema)
    await engine.dispose()


@pytest.fixture
async def kafka_bus(complaint_env: dict[str, str]) -> AsyncIterator[KafkaBus]:
    """Where the consumer dead-letters."""
    bus = KafkaBus(consumer_settings(complaint_env), client_id="loyalty-complaint-batch-test")
    yield bus
    await bus.close()


def _policy(cooldown_days: int | None) -> LoyaltyPolicy:
    """The packaged policy, with the churn-alert cooldown changed when given."""
    policy = default_policy()
    if cooldown_days is None:
        return policy
    churn = policy.care.churn.model_copy(update={"cooldown_days": cooldown_days})
    return policy.model_copy(update={"care": policy.care.model_copy(update={"churn": churn})})


def _event(data: EventData) -> Envelope:
    return new_event(data, source="/test", subject=None, correlation_id=new_id("corr"))


def _complaint(p: str, complaint: str, customer: str, days_ago: float = 0) -> ComplaintReceived:
    return ComplaintReceived(
        complaint_id=f"{p}-{complaint}", customer_id=f"{p}-{customer}", channel=Channel.WEB,
        received_at=_T0 - timedelta(days=days_ago), text="it broke again",
        classification=Classification(category=Category.PRODUCT_USAGE),
    )


def _resolved(p: str, case: str, customer: str, days_ago: float = 0) -> CaseResolved:
    return CaseResolved(
        case_id=f"{p}-{case}", complaint_id=f"{p}-{case}-cmp", customer_id=f"{p}-{customer}", severity=Severity.P3,
        category=Category.PRODUCT_USAGE, queue="product_support", customer_tier=CustomerTier.POTENTIAL,
        resolution_code="fixed", first_handling=True, resolved_at=_T0 - timedelta(days=days_ago),
        resolved_by="agent-1",
    )


def _scenario(p: str) -> tuple[list[Envelope], list[Envelope]]:
    """Events seeding known customers, then one fetch's worth of events in fetch order.

    With the packaged rules (two complaints in the last 90 days and more than in the 90 before),
    `known`'s second complaint raises an alert and the cooldown holds back its third and fourth.
    """
    seed = [
        _event(_resolved(p, "case-k1", "known", days_ago=1)),  # pending follow-ups on days 3 and 7
        _event(_resolved(p, "case-k2", "known", days_ago=2)),
        _event(_resolved(p, "case-x", "other", days_ago=1)),  # someone else's: they stay pending
        *[_event(_complaint(p, f"old-{n}", "old", days_ago=120 + n)) for n in range(3)],  # the window before
        _event(_complaint(p, "al-1", "alerted", days_ago=10)),
        _event(_complaint(p, "al-2", "alerted", days_ago=5)),  # raises an alert: the cooldown starts
    ]
    first = _event(_complaint(p, "k1", "known"))
    fetch = [
        first,  # cancels known's four follow-ups; one complaint is not yet a signal
        _event(_complaint(p, "n1", "new1")),  # a customer loyalty never heard of
        _event(_complaint(p, "k2", "known")),  # the second: an alert
        _event(_complaint(p, "o1", "old")),  # one recent against three before: no signal
        first,  # the same event delivered twice
        _event(_complaint(p, "k1", "new2")),  # a complaint id earlier in the fetch: nothing, no customer
        _event(_complaint(p, "al-3", "alerted")),  # a signal within the cooldown of the seeded alert
        _event(_complaint(p, "k3", "known")),  # a signal within the cooldown of this fetch's alert
        _event(_complaint(p, "old-0", "old", days_ago=120)),  # seen before the fetch: nothing
        _event(_complaint(p, "anc", "new3", days_ago=200)),  # too old to count, but the customer is created
        _event(_resolved(p, "case-k3", "known")),  # not a complaint: the run ends, new follow-ups
        _event(_complaint(p, "k4", "known")),  # cancels case-k3's follow-ups
        _event(_complaint(p, "o2", "old")),  # two recent against three before: still no signal
        _event(_complaint(p, "n2", "new1")),  # new1's second: an alert
    ]
    return seed, fetch


async def _snapshot(db: Database, p: str, events_in: list[Envelope]) -> dict[str, Any]:
    """What a user would check, with the run's prefix and volatile values taken out.

    Each event written names the incoming event that caused it by its place in `events_in`.
    """
    places: dict[str, int] = {}
    for place, env in enumerate(events_in):
        places.setdefault(env.id, place)
    like = {"p": f"{p}-%"}
    async with db.engine.connect() as conn:
        customers = (await conn.execute(sa.text(
            "SELECT customer_id, balance, tier, tier_year, last_churn_alert_at IS NOT NULL FROM customers "
            "WHERE customer_id LIKE :p ORDER BY customer_id"), like)).all()
        followups = (await conn.execute(sa.text(
            "SELECT timer_key, customer_id, case_id, day, status FROM care_followups "
            "WHERE customer_id LIKE :p ORDER BY timer_key"), like)).all()
        complaints = (await conn.execute(sa.text(
            "SELECT complaint_id, customer_id, received_at FROM complaints_seen "
            "WHERE customer_id LIKE :p ORDER BY complaint_id"), like)).all()
        timers = (await conn.execute(sa.text(
            "SELECT kind, key, cancelled_at IS NOT NULL, fired_at IS NOT NULL FROM timers "
            "WHERE key LIKE :p ORDER BY kind, key"), like)).all()
        events = (await conn.execute(sa.text(
            "SELECT event_type, envelope FROM outbox WHERE envelope LIKE :p ORDER BY id"), {"p": f"%{p}-%"})).all()
    snapshot = {
        "customers": [tuple(c) for c in customers],
        "followups": [tuple(f) for f in followups],
        "complaints": [tuple(c) for c in complaints],
        "timers": [tuple(t) for t in timers],
        "events": [_written(json.loads(e.envelope), places) for e in events],
    }
    return json.loads(json.dumps(snapshot, default=str).replace(p, "P"))


def _written(envelope: dict[str, Any], places: dict[str, int]) -> tuple[Any, ...]:
    subject = _UUID.sub("<generated>", envelope["subject"] or "")  # a survey's subject is its new id
    return (envelope["type"], subject, places.get(envelope["causationid"]), _stable(envelope["data"]))


def _stable(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _stable(v) for k, v in data.items() if not _VOLATILE.search(k)}
    return data


def _alerts(snapshot: dict[str, Any]) -> list[str]:
    return [e[3]["customer_id"] for e in snapshot["events"] if e[0] == "care.churn_risk.v1"]


@pytest.mark.parametrize(
    ("cooldown_days", "fetch_alerts"),
    [
        (None, ["P-known", "P-new1"]),
        # Without a cooldown every complaint with the signal alerts, the same customer's again and again.
        (0, ["P-known", "P-alerted", "P-known", "P-known", "P-new1"]),
    ],
)
async def test_a_fetch_of_complaints_gives_what_the_events_give_one_at_a_time(
    database: Database, kafka_bus: KafkaBus, complaint_env: dict[str, str], caplog: pytest.LogCaptureFixture,
    cooldown_days: int | None, fetch_alerts: list[str],
) -> None:
    batched, single = new_id("bat"), new_id("one")
    policy = _policy(cooldown_days)
    caplog.set_level(logging.INFO, logger="shared.consumer")
    handled: dict[str, list[Envelope]] = {}
    for prefix, one_fetch in ((batched, True), (single, False)):
        seed, fetch = _scenario(prefix)
        consumer = loyalty_consumer(database, kafka_bus, complaint_env, policy, batched=one_fetch)
        await feed(consumer, seed, one_fetch=False)
        await feed(consumer, fetch, one_fetch=one_fetch)
        handled[prefix] = seed + fetch
    # The fetch went through in one transaction: no fallback to one at a time hid a batch failure.
    assert "one by one" not in caplog.text
    got = await _snapshot(database, batched, handled[batched])
    expected = await _snapshot(database, single, handled[single])
    assert got == expected
    # And what they are.
    assert _alerts(got) == ["P-alerted", *fetch_alerts]  # the seeded alert, then the fetch's in order
    # The seeded alert came from the seed's last event; `known`'s from its second complaint, the fetch's
    # third event (place 8 + 2), not from its first counting the later ones.
    assert [e[2] for e in got["events"] if e[0] == "care.churn_risk.v1"][:2] == [7, 8 + 2]
    assert {c[0]: c[4] for c in got["customers"]} == {
        "P-alerted": True, "P-known": True, "P-new1": True, "P-new3": False, "P-old": False, "P-other": False}
    assert {f[2]: f[4] for f in got["followups"]} == {
        "P-case-k1": "cancelled", "P-case-k2": "cancelled", "P-case-k3": "cancelled", "P-case-x": "pending"}
    assert {t[1].split("@")[0]: t[2] for t in got["timers"]} == {
        "P-case-k1": True, "P-case-k2": True, "P-case-k3": True, "P-case-x": False}
    recorded = {c[0]: c[1] for c in got["complaints"]}
    assert recorded["P-k1"] == "P-known" and recorded["P-old-0"] == "P-old" and len(recorded) == 15


def _crowd(p: str, customers: int) -> tuple[list[Envelope], list[Envelope]]:
    """Customers with pending follow-ups, then a fetch of three complaints from each (an alert apiece)."""
    seed = [_event(_resolved(p, f"case{n}", f"c{n}", days_ago=1)) for n in range(customers)]
    fetch = [_event(_complaint(p, f"cmp{n}-{k}", f"c{n}")) for k in range(3) for n in range(customers)]
    return seed, fetch


async def test_a_fetch_of_complaints_costs_the_same_statements_whatever_its_size(
    database: Database, kafka_bus: KafkaBus, complaint_env: dict[str, str]
) -> None:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    consumer = loyalty_consumer(database, kafka_bus, complaint_env, default_policy(), batched=True)
    costs: dict[int, int] = {}
    alerts: dict[int, int] = {}
    for customers in (2, 20):
        p = new_id("n")
        seed, fetch = _crowd(p, customers)
        await feed(consumer, seed, one_fetch=False)
        sa.event.listen(database.engine.sync_engine, "before_cursor_execute", count)
        try:
            statements.clear()
            await feed(consumer, fetch, one_fetch=True)
            costs[customers] = len(statements)
        finally:
            sa.event.remove(database.engine.sync_engine, "before_cursor_execute", count)
        snapshot = await _snapshot(database, p, fetch)
        alerts[customers] = len(_alerts(snapshot))
        assert {f[4] for f in snapshot["followups"]} == {"cancelled"}
    assert alerts == {2: 2, 20: 20}
    # Sixty complaints cost what six do: every step is one statement for the whole run.
    assert costs[20] == costs[2], costs


@pytest.mark.parametrize("one_fetch", [True, False], ids=["batch", "one-by-one"])
async def test_a_complaint_without_a_customer_cancels_nobodys_followups(
    database: Database, kafka_bus: KafkaBus, complaint_env: dict[str, str], one_fetch: bool
) -> None:
    p = new_id("empty")
    consumer = loyalty_consumer(database, kafka_bus, complaint_env, default_policy(), batched=one_fetch)
    await feed(consumer, [_event(_resolved(p, "case", "someone", days_ago=1))], one_fetch=False)
    nameless = [_complaint(p, "nobody", "x"), _complaint(p, "nobody-2", "x")]
    fetch = [_event(c.model_copy(update={"customer_id": ""})) for c in nameless]
    await feed(consumer, fetch, one_fetch=one_fetch)
    snapshot = await _snapshot(database, p, fetch)
    assert {f[2]: f[4] for f in snapshot["followups"]} == {"P-case": "pending"}
