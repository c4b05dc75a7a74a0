"""Incident-wide recovery through the running service: lists, uploads, segments, crashes, bad requests."""

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from shared.events.vocabulary import CustomerTier, Role
from tests.integration.recovery.conftest import recovery_process
from tests.integration.recovery.helpers import World, now, tier_changed, uid
from tests.support.events import EventTap
from tests.support.stack import operator_token

pytestmark = pytest.mark.slow

SUPERVISOR = (Role.SUPERVISOR, "sup-zhao")


def _incident(**fields: object) -> dict:
    return {"title": "Network outage in Hangzhou", "started_at": now().isoformat(), **fields}


def _progress(http: httpx.Client, incident_id: str) -> dict:
    return http.get(f"/v1/incidents/{incident_id}").json()


async def _completed(world: World, incident_id: str) -> dict:
    [done] = await world.events("incident.completed.v1", lambda e: e.data["incident_id"] == incident_id)
    return done.data


async def test_a_declared_list_gets_one_compensation_each_by_tier(world: World) -> None:
    high, mid, unknown = uid("h"), uid("m"), uid("u")
    await world.publisher.publish(tier_changed(high, CustomerTier.HIGH_VALUE))
    await world.publisher.publish(tier_changed(mid, CustomerTier.MID_VALUE))
    await world.until(lambda: world.sql("SELECT 1 FROM customers WHERE customer_id = :c AND tier IS NOT NULL", c=mid))
    body = _incident(customer_ids=[high, mid, unknown, high])
    with world.client(*SUPERVISOR) as http:
        declared = http.post("/v1/incidents", json=body, headers={"Idempotency-Key": "inc-" + high})
        replay = http.post("/v1/incidents", json=body, headers={"Idempotency-Key": "inc-" + high})
    assert declared.status_code == 201, declared.text
    assert replay.json() == declared.json()
    incident_id = declared.json()["incident_id"]
    assert declared.json()["total"] == 3

    done = await _completed(world, incident_id)
    assert (done["total"], done["issued"], done["failed"], done["skipped"]) == (3, 3, 0, 0)
    [announced] = await world.events("incident.declared.v1", lambda e: e.data["incident_id"] == incident_id)
    assert announced.data["remedies_by_tier"]["high_value"]["amount_minor"] == 30000
    with world.client() as http:
        progress = _progress(http, incident_id)
        items = http.get("/v1/compensations", params={"incident_id": incident_id}).json()["items"]
    assert (progress["status"], progress["issued"], progress["pending"]) == ("completed", 3, 0)
    with world.client() as http:
        detail = http.get(f"/v1/compensations/{items[0]['compensation_id']}").json()
    assert any(r.startswith("incidents.") for r in detail["reasons"])  # the tier's reasons, kept on the incident
    assert detail["ledger"][0]["entry_kind"] == "issue"
    amounts = {c["customer_id"]: c["value_minor"] for c in items}
    assert amounts == {high: 30000, mid: 20000, unknown: 20000}  # DOMAIN.md: 200 yuan each, high value more
    issued = [
        e for e in world.tap.events if e.type == "compensation.issued.v1" and e.data["incident_id"] == incident_id
    ]
    assert len(issued) == 3
    assert {e.causationid for e in issued} == {announced.id}
    assert {e.correlationid for e in issued} == {incident_id}


async def test_an_uploaded_list_in_parts_with_one_operator_remedy(world: World) -> None:
    incident_id = uid("inc")
    first = [uid("c") for _ in range(30)]
    second = [uid("c") for _ in range(30)]
    remedy = {"kind": "points", "points": 5000, "description": "sorry for the outage"}
    with world.client(*SUPERVISOR) as http:
        declared = http.post(
            "/v1/incidents",
            json=_incident(incident_id=incident_id, customer_ids=first, more_customers=True, remedy=remedy),
        )
        duplicate = http.post("/v1/incidents", json=_incident(incident_id=incident_id, customer_ids=first))
        part = http.post(f"/v1/incidents/{incident_id}/customers", json={"customer_ids": second + first[:5]})
        closed = http.post(f"/v1/incidents/{incident_id}/complete")
        late = http.post(f"/v1/incidents/{incident_id}/customers", json={"customer_ids": [uid("c")]})
    assert declared.status_code == 201, declared.text
    assert declared.json()["collecting"] is True
    assert duplicate.status_code == 409
    assert part.status_code == 200 and part.json()["total"] == 60
    assert closed.status_code == 200
    assert late.status_code == 409
    done = await _completed(world, incident_id)
    assert (done["total"], done["issued"]) == (60, 60)
    rows = await world.sql(
        "SELECT count(*), count(DISTINCT customer_id), sum(points) FROM compensation_ledger WHERE incident_id = :i",
        i=incident_id,
    )
    assert tuple(rows[0]) == (60, 60, 300000)


async def test_a_segment_by_region_is_collected_from_the_projection(world: World) -> None:
    region = uid("region")
    inside = sorted(uid("s") for _ in range(25))
    for i, customer in enumerate(inside):
        tier = CustomerTier.HIGH_VALUE if i % 5 == 0 else CustomerTier.POTENTIAL
        await world.publisher.publish(tier_changed(customer, tier, region=region))
    await world.publisher.publish(tier_changed(uid("s"), CustomerTier.HIGH_VALUE, region=uid("elsewhere")))
    await world.until(lambda: world.sql("SELECT 1 FROM customers WHERE region = :r HAVING count(*) = 25", r=region))
    with world.client(*SUPERVISOR) as http:
        declared = http.post("/v1/incidents", json=_incident(segment={"region": region}))
        high_only = http.post("/v1/incidents", json=_incident(segment={"region": region, "tier": "high_value"}))
    assert declared.status_code == 201, declared.text
    done = await _completed(world, declared.json()["incident_id"])
    assert (done["total"], done["issued"]) == (25, 25)
    high = await _completed(world, high_only.json()["incident_id"])
    assert high["total"] == 5
    rows = await world.sql(
        "SELECT customer_id FROM compensations WHERE incident_id = :i ORDER BY customer_id",
        i=declared.json()["incident_id"],
    )
    assert [r[0] for r in rows] == inside


async def test_bad_declarations_are_refused_with_problem_json(world: World) -> None:
    with world.client(Role.AGENT) as agent:
        by_agent = agent.post("/v1/incidents", json=_incident(customer_ids=["a"]))
    with world.client(*SUPERVISOR) as http:
        over_limit = http.post(
            "/v1/incidents",
            json=_incident(customer_ids=["a"], remedy={"kind": "account_credit", "amount_minor": 200000}),
        )
        negative = http.post(
            "/v1/incidents", json=_incident(customer_ids=["a"], remedy={"kind": "account_credit", "amount_minor": -1})
        )
        neither = http.post("/v1/incidents", json=_incident())
        empty_segment = http.post("/v1/incidents", json=_incident(segment={}))
        naive_time = http.post("/v1/incidents", json=_incident(customer_ids=["a"], started_at="2026-11-23T10:00:00"))
        unknown = http.get("/v1/incidents/no-such-incident")
        upload_unknown = http.post("/v1/incidents/no-such-incident/customers", json={"customer_ids": ["a"]})
        segment = http.post("/v1/incidents", json=_incident(segment={"tier": "mid_value"})).json()
        upload_segment = http.post(f"/v1/incidents/{segment['incident_id']}/customers", json={"customer_ids": ["a"]})
    with world.client(Role.MANAGER, "mgr-chen") as manager:
        allowed = manager.post(
            "/v1/incidents",
            json=_incident(customer_ids=["a"], remedy={"kind": "account_credit", "amount_minor": 200000}),
        )
    assert by_agent.status_code == 403
    assert over_limit.status_code == 403 and over_limit.json()["type"].endswith("over-limit")
    assert "needs manager" in over_limit.json()["detail"]
    assert negative.status_code == 422
    assert [e["field"] for e in negative.json()["errors"]] == ["body.remedy.amount_minor"]
    for response in (neither, empty_segment, naive_time):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert unknown.status_code == 404 and upload_unknown.status_code == 404
    assert upload_segment.status_code == 409
    assert allowed.status_code == 201


async def test_fan_out_resumes_after_a_crash_and_never_pays_twice(
    fresh_env: dict[str, str], artifacts_dir: Path
) -> None:
    count, part = 12_000, 4000
    customers = [f"crash-{i:06d}" for i in range(count)]
    env = fresh_env
    headers = {"Authorization": f"Bearer {operator_token(Role.SUPERVISOR, 'sup-zhao')}"}
    logs = artifacts_dir / "recovery-it-crash"
    slow = {"RECOVERY_INCIDENT_RATE_PER_SECOND": "1500", "RECOVERY_INCIDENT_BATCH_SIZE": "500"}
    async with EventTap(env["KAFKA_BOOTSTRAP_SERVERS"], from_beginning=True) as tap:
        with recovery_process(env, logs, "first-life", **slow) as first:
            async with httpx.AsyncClient(base_url=first.url, headers=headers, timeout=30) as http:
                declared = await http.post(
                    "/v1/incidents", json=_incident(customer_ids=customers[:part], more_customers=True)
                )
                incident_id = declared.json()["incident_id"]
                for start in range(part, count, part):
                    added = await http.post(
                        f"/v1/incidents/{incident_id}/customers",
                        json={"customer_ids": customers[start : start + part]},
                    )
                    assert added.status_code == 200, added.text
                await http.post(f"/v1/incidents/{incident_id}/complete")
                while (await http.get(f"/v1/incidents/{incident_id}")).json()["issued"] < 2000:
                    await asyncio.sleep(0.1)
            first.stop(signal.SIGKILL)
        with recovery_process(env, logs, "second-life") as second:
            async with httpx.AsyncClient(base_url=second.url, headers=headers, timeout=30) as http:
                before = (await http.get(f"/v1/incidents/{incident_id}")).json()
                assert 0 < before["issued"] < count, before
                [done] = await tap.wait_for(
                    lambda e: e.type == "incident.completed.v1" and e.data["incident_id"] == incident_id,
                    timeout=120,
                )
                await tap.wait_for(lambda e: e.type == "compensation.issued.v1", timeout=60, count=count)
    world_rows = await _ledger_summary(env, incident_id)
    assert (done.data["issued"], done.data["failed"]) == (count, 0)
    assert world_rows == (count, count)
    # The relay may publish an event again after a crash (at least once); it is the same event id,
    # which consumers' inboxes absorb. One compensation never has two different issued events.
    event_ids: dict[str, set[str]] = {}
    for e in tap.events:
        if e.type == "compensation.issued.v1":
            event_ids.setdefault(e.data["compensation_id"], set()).add(e.id)
    assert len(event_ids) == count
    assert all(len(ids) == 1 for ids in event_ids.values())


async def _ledger_summary(env: dict[str, str], incident_id: str) -> tuple[int, int]:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(env["DATABASE_URL"], connect_args={"server_settings": {"search_path": "recovery"}})
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.text(
                        "SELECT count(*), count(DISTINCT customer_id) FROM compensation_ledger WHERE incident_id = :i"
                    ),
                    {"i": incident_id},
                )
            ).one()
    finally:
        await engine.dispose()
    return int(row[0]), int(row[1])
