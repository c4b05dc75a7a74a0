"""Abuse the running services: every attempt is refused with problem+json and nothing is stored."""

import json
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from shared.auth import issue_token
from shared.events.vocabulary import Role
from shared.signing import KEY_ID_HEADER, SIGNATURE_HEADER, signature_header
from tests.support.complaints import signed_post, web_complaint
from tests.support.infra import TEST_CHANNEL_KEYS, TEST_OPERATOR_SECRET
from tests.support.stack import Stack, operator_token, running_stack

pytestmark = pytest.mark.slow
WEB_KEY = TEST_CHANNEL_KEYS["web"][0]
AGENT = {"Authorization": f"Bearer {operator_token(Role.AGENT, 'abuse-test')}"}


def _signed(raw: bytes, timestamp: int | None = None, secret: str | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {"content-type": "application/json", KEY_ID_HEADER: WEB_KEY["key_id"],
            SIGNATURE_HEADER: signature_header(secret or WEB_KEY["secret"], stamp, raw)}


def _post_raw(stack: Stack, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{stack.url('intake')}/v1/channels/web/complaints", content=raw, headers=headers, timeout=10)


def _assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"]
    return body


def _stored_for(stack: Stack, customer_id: str) -> list[object]:
    response = httpx.get(f"{stack.url('intake')}/v1/complaints", params={"customer_id": customer_id}, timeout=10,
                         headers=AGENT)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["items"] if isinstance(body, dict) else body


@pytest.mark.parametrize("case", ["unsigned", "wrong-signature", "stale", "unknown-key"])
def test_bad_channel_signatures_get_401_with_reason_and_store_nothing(stack: Stack, case: str) -> None:
    body = web_complaint()
    raw = json.dumps(body).encode()
    headers = {
        "unsigned": {"content-type": "application/json"},
        "wrong-signature": _signed(raw, secret="not-the-secret-0123456789"),
        "stale": _signed(raw, timestamp=int(time.time()) - 3600),
        "unknown-key": {**_signed(raw), KEY_ID_HEADER: "no-such-key"},
    }[case]
    problem = _assert_problem(_post_raw(stack, raw, headers), 401)
    assert problem["detail"]
    assert _stored_for(stack, body["customer_id"]) == []


def test_replayed_request_is_refused(stack: Stack) -> None:
    body = web_complaint()
    raw = json.dumps(body).encode()
    headers = _signed(raw)
    first = _post_raw(stack, raw, headers)
    assert first.status_code == 202, first.text
    _assert_problem(_post_raw(stack, raw, headers), 401)
    assert len(_stored_for(stack, body["customer_id"])) == 1


def test_oversized_body_gets_413(stack: Stack) -> None:
    raw = json.dumps(web_complaint(text="x" * 2_000_000)).encode()
    _assert_problem(_post_raw(stack, raw, _signed(raw)), 413)
    for service in ("routing", "recovery", "loyalty"):
        response = httpx.post(f"{stack.url(service)}/v1/anything", content=b"{" + b" " * 2_000_000 + b"}",
                              headers={"content-type": "application/json"}, timeout=10)
        _assert_problem(response, 413)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"customer_id": "c", "text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"customer_id": "c", "text": "\xff\xfe\xfa broken utf-8"}',
        b'{"customer_id": "c", "text": "' + b"\\ud800" + b'"}',
        b"[1, 2, 3]",
        b"",
    ],
    ids=["deeply-nested", "invalid-utf8", "lone-surrogate", "not-an-object", "empty"],
)
def test_malformed_bodies_get_4xx_problem_not_500(stack: Stack, raw: bytes) -> None:
    response = _post_raw(stack, raw, _signed(raw))
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_huge_string_names_the_field(stack: Stack) -> None:
    with httpx.Client(timeout=10) as client:
        response = signed_post(client, stack.url("intake"), "web", web_complaint(text="长" * 60_000))
    problem = _assert_problem(response, 422)
    assert any(e["field"].endswith("text") for e in problem["errors"])


INJECTIONS = [
    "'; DROP TABLE complaints; --",
    "<script>alert('x')</script><img src=x onerror=alert(1)>",
    "{{7*7}} ${7*7} %s%s%n",
    "\" OR 1=1 -- 订单号：A12345 );",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_is_stored_and_shown_back_verbatim(stack: Stack, text: str) -> None:
    body = web_complaint(text=f"My parcel never came. {text}")
    with httpx.Client(timeout=10) as client:
        accepted = signed_post(client, stack.url("intake"), "web", body)
        assert accepted.status_code == 202, accepted.text
        shown = client.get(f"{stack.url('intake')}/v1/complaints/{accepted.json()['complaint_id']}", headers=AGENT)
    assert shown.status_code == 200
    assert shown.headers["content-type"].startswith("application/json")
    assert text.strip() in json.dumps(shown.json(), ensure_ascii=False)
    assert len(_stored_for(stack, body["customer_id"])) == 1


def test_operator_tokens_expired_forged_or_missing_get_401(stack: Stack) -> None:
    expired = issue_token(TEST_OPERATOR_SECRET, "old", Role.MANAGER, ttl=timedelta(seconds=-5))
    forged = issue_token("another-secret-that-is-long-enough-123", "mallory", Role.MANAGER)
    for token in (expired, forged, "not-a-jwt"):
        response = httpx.get(f"{stack.url('routing')}/v1/cases/{uuid.uuid4()}",
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
        _assert_problem(response, 401)
    _assert_problem(httpx.get(f"{stack.url('routing')}/v1/cases/{uuid.uuid4()}", timeout=10), 401)


def test_rate_limits_per_channel_key_and_per_operator(migrated_env: dict[str, str], artifacts_dir: Path) -> None:
    env = {**migrated_env, "INTAKE_CHANNEL_RATE_PER_SECOND": "1", "INTAKE_CHANNEL_RATE_BURST": "3",
           "ROUTING_OPERATOR_RATE_PER_SECOND": "1", "ROUTING_OPERATOR_RATE_BURST": "3"}
    with running_stack(env, artifacts_dir / "rate-limits", names=("intake", "routing")) as limited:
        with httpx.Client(timeout=10) as client:
            channel = [signed_post(client, limited.url("intake"), "web", web_complaint()) for _ in range(6)]
        token = issue_token(TEST_OPERATOR_SECRET, "busy-agent", Role.AGENT)
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            operator = [client.get(f"{limited.url('routing')}/v1/cases/{uuid.uuid4()}") for _ in range(6)]
    for responses in (channel, operator):
        limited_ones = [r for r in responses if r.status_code == 429]
        assert limited_ones, [r.status_code for r in responses]
        assert int(limited_ones[0].headers["retry-after"]) >= 1
        _assert_problem(limited_ones[0], 429)
    assert [r.status_code for r in channel[:3]] == [202, 202, 202]
