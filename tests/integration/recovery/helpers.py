"""Helpers for recovery's integration tests: publish upstream events, call the API, read the database."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import create_async_engine

from shared.devstack import ServiceProcess
from shared.envelope import Envelope, new_event, to_kafka
from shared.events import EventData
from shared.events.cases import CaseResolved, CaseRouted, CaseSlaBreached, Deadlines
from shared.events.loyalty import SurveyAnswered, TierChanged
from shared.events.vocabulary import Category, CustomerTier, Department, Role, Severity
from tests.support.events import EventTap
from tests.support.stack import operator_token


def now() -> datetime:
    """Timezone-aware UTC now."""
    return datetime.now(UTC)


def uid(prefix: str) -> str:
    """A fresh id with a readable prefix."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Publisher:
    """Publishes events the way the other services do (CloudEvents binary mode, keyed by customer)."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")

    async def start(self) -> None:
        """Connect."""
        await self.producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self.producer.stop()

    async def publish(self, data: EventData, correlation_id: str | None = None, source: str = "/test") -> Envelope:
        """Publish one event and wait for the broker's acknowledgement."""
        env = new_event(
            data, source=source, subject=getattr(data, "case_id", None), correlation_id=correlation_id or uid("corr")
        )
        await self.send(env)
        return env

    async def send(self, env: Envelope) -> None:
        """Send a ready envelope (again, to simulate a redelivery)."""
        key, value, headers = to_kafka(env)
        await self.producer.send_and_wait(str(type(env.payload()).topic), value=value, key=key, headers=headers)


@dataclass
class World:
    """A running recovery, its environment, a publisher and a tap on every topic."""

    proc: ServiceProcess
    env: dict[str, str]
    publisher: Publisher
    tap: EventTap

    def client(self, role: Role | None = Role.AGENT, subject: str = "agent-wang") -> httpx.Client:
        """An HTTP client, as an operator with ``role`` (None: no token)."""
        headers = {"Authorization": f"Bearer {operator_token(role, subject)}"} if role else {}
        return httpx.Client(base_url=self.proc.url, headers=headers, timeout=30)

    async def sql(self, query: str, **params: Any) -> list[sa.Row[Any]]:
        """Run SQL in recovery's schema and return the rows."""
        engine = create_async_engine(
            self.env["DATABASE_URL"], connect_args={"server_settings": {"search_path": "recovery"}}
        )
        try:
            async with engine.begin() as conn:
                result = await conn.execute(sa.text(query), params)
                return list(result) if result.returns_rows else []
        finally:
            await engine.dispose()

    async def events(self, event_type: str, match: Callable[[Envelope], bool], count: int = 1) -> list[Envelope]:
        """Wait until ``count`` events of a type match."""
        return await self.tap.wait_for(lambda e: e.type == event_type and match(e), timeout=30, count=count)

    async def settle(self, seconds: float = 1.0) -> None:
        """Let in-flight events drain before asserting that something did not happen."""
        await asyncio.sleep(seconds)

    async def until(self, check: Callable[[], Any], timeout: float = 60) -> Any:
        """Poll an async check until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError("condition not reached in time")

    async def expire_now(self, compensation_id: str) -> None:
        """Move an offer's expiry timer to the past: the clock ran out (the timer fires as it would)."""
        await self.sql("UPDATE timers SET due_at = now() - interval '1 second' WHERE key = :k", k=compensation_id)


def routed(
    customer_id: str,
    severity: Severity = Severity.P3,
    tier: CustomerTier = CustomerTier.POTENTIAL,
    case_id: str | None = None,
    department: Department | None = Department.LOGISTICS,
) -> CaseRouted:
    """case.routed.v1 for a fresh case."""
    at = now()
    return CaseRouted(
        case_id=case_id or uid("case"),
        complaint_id=uid("cmp"),
        customer_id=customer_id,
        severity=severity,
        category=Category.PRODUCT_USAGE,
        queue="logistics",
        departments=[department] if department else [],
        customer_tier=tier,
        deadlines=Deadlines(resolution_due=at + timedelta(hours=24)),
        received_at=at,
        routed_at=at,
    )


def resolved(
    case: CaseRouted,
    *,
    first_handling: bool = True,
    sla_breached: bool = False,
    resolution_code: str = "replaced_item",
    severity: Severity | None = None,
) -> CaseResolved:
    """case.resolved.v1 of a routed case."""
    return CaseResolved(
        case_id=case.case_id,
        complaint_id=case.complaint_id,
        customer_id=case.customer_id,
        severity=severity or case.severity,
        category=case.category,
        queue=case.queue,
        customer_tier=case.customer_tier,
        resolution_code=resolution_code,
        first_handling=first_handling,
        sla_breached=sla_breached,
        department=case.departments[0].value if case.departments else None,
        resolved_at=now(),
        resolved_by="agent-li",
    )


def breached(case: CaseRouted, clock: str = "resolution") -> CaseSlaBreached:
    """case.sla_breached.v1 of a routed case."""
    return CaseSlaBreached(
        case_id=case.case_id,
        complaint_id=case.complaint_id,
        customer_id=case.customer_id,
        clock=clock,
        due_at=now() - timedelta(minutes=1),
        severity=case.severity,
        customer_tier=case.customer_tier,
    )


def survey(case: CaseRouted, csat: int | None = None, nps: int | None = None) -> SurveyAnswered:
    """survey.answered.v1 about a case."""
    return SurveyAnswered(
        survey_id=uid("srv"),
        customer_id=case.customer_id,
        case_id=case.case_id,
        csat=csat,
        nps=nps,
        answered_at=now(),
        customer_tier=case.customer_tier,
    )


def tier_changed(
    customer_id: str, tier: CustomerTier, region: str | None = None, at: datetime | None = None
) -> TierChanged:
    """loyalty.tier_changed.v1 (with a region, as loyalty may carry it)."""
    extra = {"region": region} if region else {}
    return TierChanged(customer_id=customer_id, from_tier=None, to_tier=tier, changed_at=at or now(), **extra)
