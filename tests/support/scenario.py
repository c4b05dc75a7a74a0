"""The fault-test scenario: complaints flow, faults strike, then every effect is checked exactly once."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.support.events import EventTap
from tests.support.load import ComplaintStream
from tests.support.stack import Stack
from tests.support.verify import effects_by, resolve_all, wait_effects_once, wait_outboxes_empty

Fault = Callable[[], Awaitable[None]]


@dataclass
class Report:
    """What a fault test did and found; written for the README's reliability figures."""

    name: str
    faults_injected: int
    complaints_accepted: int
    lost: int = 0
    duplicated_effects: int = 0
    responses: dict[str, int] = field(default_factory=dict)

    def save(self, artifacts_dir: Path) -> None:
        """Write the report as JSON under artifacts/reliability/."""
        folder = artifacts_dir / "reliability"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.name}.json").write_text(json.dumps(asdict(self), indent=2))


async def _run_faults(faults: list[Fault]) -> None:
    for fault in faults:
        await fault()


async def flow_exactly_once(
    name: str,
    stack: Stack,
    tap: EventTap,
    database_url: str,
    artifacts_dir: Path,
    *,
    count: int = 200,
    rate: float = 30,
    during_intake: list[Fault] = (),  # type: ignore[assignment]
    during_resolution: list[Fault] = (),  # type: ignore[assignment]
) -> Report:
    """Submit ``count`` complaints while ``during_intake`` faults strike, resolve every case while
    ``during_resolution`` faults strike, then demand one route, one resolution, one compensation and
    one points grant per complaint, and empty outboxes."""
    stream = ComplaintStream(lambda: stack.url("intake"), count=count, rate=rate).start()
    await _run_faults(list(during_intake))
    await asyncio.to_thread(stream.join)
    assert not stream.failed, f"{len(stream.failed)} complaints never accepted"
    complaints = set(stream.accepted.values())
    answers = list(stream.accepted.values())
    shared = sorted({cid for cid in answers if answers.count(cid) > 1})
    assert len(complaints) == count, (
        f"{len(stream.accepted)} messages accepted, {len(complaints)} complaint ids; given to several: {shared}; "
        f"statuses seen: {dict(stream.statuses)}")

    routed = await wait_effects_once(tap, "case.routed.v1", lambda e: e.correlationid, complaints)
    cases = [e.data["case_id"] for e in routed.values()]
    resolving = asyncio.create_task(asyncio.to_thread(resolve_all, stack, cases))
    await _run_faults(list(during_resolution))
    await resolving

    await wait_effects_once(tap, "case.resolved.v1", lambda e: e.correlationid, complaints)
    issued = await wait_effects_once(tap, "compensation.issued.v1", lambda e: e.data["case_id"], set(cases))
    granted = {e.data["compensation_id"] for e in issued.values() if e.data["remedy"]["points"] > 0}
    await wait_effects_once(tap, "loyalty.points_changed.v1", lambda e: e.data["compensation_id"], granted)
    await wait_outboxes_empty(database_url)

    duplicated = sum(
        len(ids) - 1
        for event_type, key in (("case.routed.v1", "correlationid"), ("compensation.issued.v1", "case_id"))
        for ids in effects_by(tap, event_type, _key(key)).values()
    )
    report = Report(
        name=name,
        faults_injected=len(list(during_intake)) + len(list(during_resolution)),
        complaints_accepted=len(complaints),
        lost=count - len(complaints),
        duplicated_effects=duplicated,
        responses={str(k): v for k, v in stream.statuses.items()},
    )
    report.save(artifacts_dir)
    return report


def _key(name: str) -> Callable:  # type: ignore[type-arg]
    if name == "correlationid":
        return lambda e: e.correlationid
    return lambda e: e.data[name]
