"""One complaint travels the whole way through four running services."""

import time

import pytest

from shared.events.vocabulary import Role
from shared.signing import signed_headers
from tests.support.complaints import submit, web_complaint
from tests.support.events import EventTap
from tests.support.infra import TEST_CHANNEL_KEYS
from tests.support.stack import Stack

pytestmark = pytest.mark.slow


async def test_complaint_flows_to_loyalty_with_one_correlation_id(stack: Stack, broker_address: str) -> None:
    async with EventTap(broker_address, from_beginning=False) as tap:
        accepted = submit(stack, web_complaint())
        assert accepted.status_code == 202, accepted.text
        complaint = accepted.json()
        cid = complaint["complaint_id"]

        def chain(event_type: str):
            return lambda e: e.type == event_type and e.correlationid == cid

        [received] = await tap.wait_for(chain("complaint.received.v1"))
        [routed] = await tap.wait_for(chain("case.routed.v1"))
        case_id = routed.data["case_id"]

        with stack.client("routing", Role.AGENT) as routing:
            resolved_resp = routing.post(f"/v1/cases/{case_id}/resolve", json={"resolution_code": "replaced_item"})
        assert resolved_resp.status_code == 200, resolved_resp.text

        [resolved] = await tap.wait_for(chain("case.resolved.v1"))
        [issued] = await tap.wait_for(chain("compensation.issued.v1"))
        [points] = await tap.wait_for(chain("loyalty.points_changed.v1"))

    assert received.causationid is None
    assert routed.causationid == received.id
    assert issued.causationid == resolved.id
    assert points.causationid == issued.id
    assert {e.partitionkey for e in (received, routed, resolved, issued, points)} == {complaint["customer_id"]}
    assert points.data["points"] == issued.data["remedy"]["points"] > 0

    with stack.client("loyalty", Role.AGENT) as loyalty:
        view = loyalty.get(f"/v1/customers/{complaint['customer_id']}/loyalty").json()
    assert view["balance"] == issued.data["remedy"]["points"]


def test_invalid_complaint_gets_problem_json_naming_the_field(stack: Stack) -> None:
    body = web_complaint()
    del body["text"]
    response = submit(stack, body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert [e["field"] for e in problem["errors"]] == ["body.text"]


def test_malformed_json_gets_problem_json(stack: Stack) -> None:
    raw = b"{not json"
    key = TEST_CHANNEL_KEYS["web"][0]
    signature = signed_headers(key["key_id"], key["secret"], int(time.time()), raw)
    headers = {"content-type": "application/json", **signature}
    with stack.client("intake") as client:
        response = client.post("/v1/channels/web/complaints", content=raw, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].startswith("body")


def test_resolving_twice_is_a_conflict(stack: Stack) -> None:
    with stack.client("routing", Role.AGENT) as routing:
        missing = routing.post("/v1/cases/no-such-case/resolve", json={"resolution_code": "x"})
        unauthenticated = routing.post("/v1/cases/no-such-case/resolve", json={"resolution_code": "x"},
                                       headers={"Authorization": ""})
    assert missing.status_code == 404
    assert unauthenticated.status_code == 401
