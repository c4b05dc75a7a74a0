"""Caps and budgets hold when many compensations for the same customer or department race each other."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.devstack import ServiceProcess
from shared.events.vocabulary import CustomerTier, Role, Severity
from tests.integration.recovery.conftest import policy_file, recovery_process
from tests.integration.recovery.helpers import Publisher, World, resolved, routed, uid
from tests.support.stack import operator_token

pytestmark = pytest.mark.slow

BILLING_BUDGET = 50_000  # 500 yuan this month for billing in the test policy


@pytest.fixture(scope="module")
def tight(
    recovery_env: dict[str, str], artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A second recovery on the same database and broker (a replica), with a tight billing budget."""
    path = policy_file(tmp_path_factory.mktemp("policy"), "tight", budgets__monthly_minor={"billing": BILLING_BUDGET})
    with recovery_process(recovery_env, artifacts_dir / "recovery-it", "tight", RECOVERY_POLICY_PATH=str(path)) as p:
        yield p


def _headers(role: Role, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {operator_token(role, subject)}"}


async def _post_all(urls: list[str], bodies: list[dict], role: Role) -> list[httpx.Response]:
    """Fire every request at once, spread over the given service replicas."""
    async with httpx.AsyncClient(timeout=60) as http:
        return await asyncio.gather(
            *[
                http.post(f"{urls[i % len(urls)]}/v1/compensations", json=body, headers=_headers(role, f"op-{i}"))
                for i, body in enumerate(bodies)
            ]
        )


async def test_customer_cap_holds_under_concurrent_writes(world: World, tight: ServiceProcess) -> None:
    customer = uid("cust")  # potential: at most 300 yuan and 3 compensations in 30 days
    bodies = [
        {"customer_id": customer, "remedy": {"kind": "account_credit", "amount_minor": 10_000}, "note": f"gesture {i}"}
        for i in range(16)
    ]
    responses = await _post_all([world.proc.url, tight.url], bodies, Role.SUPERVISOR)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [409] * 13, [r.text for r in responses if r.status_code not in (201, 409)]
    rows = await world.sql(
        "SELECT count(*), sum(value_minor) FROM compensations WHERE customer_id = :c AND status = 'issued'",
        c=customer,
    )
    assert tuple(rows[0]) == (3, 30_000)
    refused = [r.json() for r in responses if r.status_code == 409]
    assert all(p["type"].endswith("no-compensation") for p in refused)


async def test_department_budget_holds_under_concurrent_writes(world: World, tight: ServiceProcess) -> None:
    customers = [uid("bill") for _ in range(12)]
    bodies = [
        {
            "customer_id": c,
            "department": "billing",
            "note": "double charge",
            "remedy": {"kind": "account_credit", "amount_minor": 10_000},
        }
        for c in customers
    ]
    responses = await _post_all([tight.url], bodies, Role.SUPERVISOR)
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    by_status: dict[str, int] = {}
    for r in responses:
        by_status[r.json()["status"]] = by_status.get(r.json()["status"], 0) + 1
    # 5 x 100 yuan fit the 500-yuan budget; every further one needs a manager.
    assert by_status == {"issued": 5, "pending_approval": 7}
    assert {r.json()["required_role"] for r in responses if r.json()["status"] == "pending_approval"} == {"manager"}
    async with httpx.AsyncClient(base_url=tight.url, headers=_headers(Role.MANAGER, "mgr-chen")) as http:
        billing = {b["department"]: b for b in (await http.get("/v1/budgets")).json()}["billing"]
    assert billing["spent_minor"] == BILLING_BUDGET
    assert billing["reserved_minor"] == 7 * 10_000
    assert billing["left_minor"] == -70_000


async def test_events_and_operators_racing_on_one_customer_respect_the_cap(world: World, tight: ServiceProcess) -> None:
    customer = uid("cust")
    cases = [routed(customer, Severity.P2, tier=CustomerTier.POTENTIAL) for _ in range(6)]
    publisher: Publisher = world.publisher
    for case in cases:
        await publisher.publish(case)
    manual = [
        {"customer_id": customer, "remedy": {"kind": "points", "points": 9000}, "note": f"n{i}"} for i in range(6)
    ]
    results = await asyncio.gather(
        *[publisher.publish(resolved(case)) for case in cases],
        _post_all([world.proc.url, tight.url], manual, Role.SUPERVISOR),
    )
    ids = [env.id for env in results[:-1]]
    await world.until(
        lambda: world.sql("SELECT 1 FROM inbox WHERE event_id = ANY(:ids) HAVING count(*) = :n", ids=ids, n=len(ids))
    )
    rows = await world.sql(
        "SELECT count(*), coalesce(sum(value_minor), 0) FROM compensations "
        "WHERE customer_id = :c AND status IN ('issued', 'offered', 'pending_approval')",
        c=customer,
    )
    count, value = rows[0]
    assert count <= 3 and value <= 30_000
    assert count >= 1
