"""Durable SLA timers through running routing processes: catching up in order after a restart, and
two replicas sharing the work without ever escalating a case twice."""

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from shared.topics import Topic
from tests.integration.routing.conftest import complaint, fast_policy, routing_process, unique, wait_unique
from tests.support.events import EventTap

SLA_EVENTS = ("case.sla_warning.v1", "case.sla_breached.v1", "case.escalated.v1")


async def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def _due(event: Any) -> datetime:
    return datetime.fromisoformat(event.data["due_at"])


async def test_timers_fire_in_due_order_after_a_restart(
    routing_env: dict[str, str], publish: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    # First responses due after 8, 12 and 16 s; next updates and resolutions long after the test.
    policy = fast_policy(
        tmp_path, P1=("6s", "2m", "10m"), P2=("8s", "3m", "11m"), P3=("12s", "4m", "12m"), P4=("16s", "5m", "13m")
    )
    env = {**routing_env, "ROUTING_POLICY_PATH": str(policy)}
    customer = "cust-restart"
    sent = [
        complaint(customer_id=customer, category="policy_question"),  # P4
        complaint(customer_id=customer),  # P3
        complaint(customer_id=customer, category="account_anomaly"),  # P2
    ]
    logs = artifacts_dir / "routing-timers"
    async with EventTap(routing_env["KAFKA_BOOTSTRAP_SERVERS"], [str(Topic.CASES)]) as tap:
        with routing_process(env, logs, "restart-first-life") as first:
            for event in sent:
                await publish(event)
            ids = {e.complaint_id for e in sent}
            routed = await wait_unique(
                tap, lambda e: e.type == "case.routed.v1" and e.correlationid in ids, count=3, timeout=60
            )
            first.stop(sig=9)  # a crash: every timer still to come is only a row now
            killed_at = datetime.now(UTC)
        cases = {e.data["case_id"] for e in routed}
        latest_due = max(datetime.fromisoformat(e.data["deadlines"]["first_response_due"]) for e in routed)
        assert [e.data["severity"] for e in routed] == ["P4", "P3", "P2"]
        while datetime.now(UTC) <= latest_due:  # stay down until every first response is overdue
            await asyncio.sleep(0.2)
        restarted_at = datetime.now(UTC)
        with routing_process(env, logs, "restart-second-life"):
            await _wait_until(
                lambda: {e.subject for e in tap.events if e.type == "case.escalated.v1"} >= cases, timeout=60
            )
            seen = unique(e for e in tap.events if e.subject in cases and e.type in SLA_EVENTS)
    caught_up = [e for e in seen if e.type != "case.escalated.v1" and _due(e) <= restarted_at]
    # Every warning and breach due before the restart, each once, in due order; those due after the crash
    # were caught up by the restarted service.
    assert sorted((e.subject, e.type) for e in caught_up) == sorted(
        (case, kind) for case in cases for kind in ("case.sla_warning.v1", "case.sla_breached.v1")
    )
    assert [_due(e) for e in caught_up] == sorted(_due(e) for e in caught_up)
    assert all(e.data["clock"] == "first_response" for e in caught_up)
    assert all(e.time >= restarted_at for e in caught_up if _due(e) > killed_at)
    assert any(_due(e) > killed_at for e in caught_up)
    for case in cases:
        kinds = [e.type for e in seen if e.subject == case]
        assert kinds[:3] == ["case.sla_warning.v1", "case.sla_breached.v1", "case.escalated.v1"]
    escalated = [e for e in seen if e.type == "case.escalated.v1"]
    assert {(e.data["from_level"], e.data["to_level"]) for e in escalated} == {("agent", "supervisor")}


def _timers_fired(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    match = re.search(r'^redress_timers_fired_total\{kind="routing.sla"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def _history_counts(database_url: str, cases: set[str]) -> Counter[tuple[str, str]]:
    engine = create_async_engine(database_url, connect_args={"server_settings": {"search_path": "routing"}})
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT case_id, name FROM case_history WHERE kind = 'event'"),
            )
            return Counter((case_id, name) for case_id, name in rows if case_id in cases)
    finally:
        await engine.dispose()


async def test_two_replicas_never_escalate_a_case_twice(
    routing_env: dict[str, str], publish: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    # A case nobody answers climbs agent/P3 -> supervisor/P2 -> manager/P1, where the ladder ends.
    policy = fast_policy(
        tmp_path, P1=("2s", "2m", "10m"), P2=("3s", "3m", "11m"), P3=("4s", "4m", "12m"), P4=("5s", "5m", "13m")
    )
    env = {**routing_env, "ROUTING_POLICY_PATH": str(policy)}
    sent = [complaint(customer_id=f"cust-replica-{n}") for n in range(24)]
    logs = artifacts_dir / "routing-replicas"
    async with EventTap(routing_env["KAFKA_BOOTSTRAP_SERVERS"], [str(Topic.CASES)]) as tap:
        with routing_process(env, logs, "replica-a") as a, routing_process(env, logs, "replica-b") as b:
            ids = {e.complaint_id for e in sent}
            for event in sent:
                await publish(event)
            routed = await wait_unique(
                tap, lambda e: e.type == "case.routed.v1" and e.correlationid in ids, count=24, timeout=60
            )
            cases = {e.data["case_id"] for e in routed}

            def at_the_top(e: Any) -> bool:
                return e.type == "case.escalated.v1" and e.subject in cases and e.data["to_level"] == "manager"

            await _wait_until(lambda: len({e.subject for e in tap.events if at_the_top(e)}) == len(cases), 120)
            fired = (_timers_fired(a.url), _timers_fired(b.url))
        events = unique(e for e in tap.events if e.subject in cases)
    counts = Counter((e.subject, e.type) for e in events)
    for case in cases:
        assert counts[(case, "case.escalated.v1")] == 2, case
        assert counts[(case, "case.sla_breached.v1")] == 2, case
        assert counts[(case, "case.sla_warning.v1")] == 2, case
    steps = Counter(
        (e.subject, e.data["from_level"], e.data["to_level"]) for e in events if e.type == "case.escalated.v1"
    )
    assert set(steps.values()) == {1}
    recorded = await _history_counts(routing_env["DATABASE_URL"], cases)
    assert {recorded[(case, "case.escalated.v1")] for case in cases} == {2}
    assert all(n > 0 for n in fired), f"both replicas should have fired timers: {fired}"
