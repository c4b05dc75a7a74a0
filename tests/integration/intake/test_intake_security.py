"""Channel keys and signatures: each failure mode gets 401 with its reason; keys rotate; logs stay masked."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.intake.conftest import Intake
from tests.integration.intake.helpers import fresh, problem, sign, unique
from tests.support.events import EventTap


def _body(name: str = "web_en", **changes: object) -> bytes:
    return json.dumps(fresh(name, **changes), ensure_ascii=False).encode()


def test_unsigned_request_is_refused(intake: Intake) -> None:
    body = problem(intake.channels.post_raw("web", _body()), 401)
    assert body["type"].endswith("/signature-missing")
    assert "not signed" in body["detail"]


@pytest.mark.parametrize("drop", ["X-Redress-Key-Id", "X-Redress-Signature"])
def test_half_signed_request_names_the_missing_header(intake: Intake, drop: str) -> None:
    body = _body()
    headers = sign(*intake.channels.key("web"), body)
    del headers[drop]
    assert drop in problem(intake.channels.post_raw("web", body, headers), 401)["detail"]


def test_unknown_key_is_refused(intake: Intake) -> None:
    body = _body()
    detail = problem(intake.channels.post_raw("web", body, sign("nobody", "x" * 32, body)), 401)["detail"]
    assert detail == "key 'nobody' is not a key of channel web"


def test_another_channels_key_is_refused(intake: Intake) -> None:
    body = _body()
    response = intake.channels.post_raw("web", body, sign(*intake.channels.key("email"), body))
    assert problem(response, 401)["type"].endswith("/unknown-key")


def test_tampered_body_is_refused(intake: Intake) -> None:
    body = _body()
    headers = sign(*intake.channels.key("web"), body)
    tampered = body.replace(b"restarts", b"explodes")
    assert problem(intake.channels.post_raw("web", tampered, headers), 401)["type"].endswith("/signature-mismatch")


def test_wrong_secret_is_refused(intake: Intake) -> None:
    body = _body()
    key_id, _ = intake.channels.key("web")
    response = intake.channels.post_raw("web", body, sign(key_id, "a-guessed-secret-0000000000", body))
    assert problem(response, 401)["detail"] == "signature does not match the body for this key"


def test_malformed_signature_header_is_refused(intake: Intake) -> None:
    headers = {"X-Redress-Key-Id": intake.channels.key("web")[0], "X-Redress-Signature": "sha256=abc"}
    assert problem(intake.channels.post_raw("web", _body(), headers), 401)["type"].endswith("/signature-malformed")


@pytest.mark.parametrize(("shift", "words"), [(-301, "old"), (301, "in the future")])
def test_signature_outside_the_five_minute_window_is_refused(intake: Intake, shift: int, words: str) -> None:
    body = _body()
    headers = sign(*intake.channels.key("web"), body, timestamp=int(time.time()) + shift)
    detail = problem(intake.channels.post_raw("web", body, headers), 401)["detail"]
    assert words in detail and "the window is 300s" in detail


async def test_replayed_request_is_refused_and_has_no_second_effect(intake: Intake, broker_address: str) -> None:
    body = _body()
    headers = sign(*intake.channels.key("web"), body)
    async with EventTap(broker_address, from_beginning=False) as tap:
        first = intake.channels.post_raw("web", body, headers)
        assert first.status_code == 202, first.text
        again = problem(intake.channels.post_raw("web", body, headers), 401)
        marker = intake.channels.post("web", fresh("web_en")).json()["complaint_id"]
        await tap.wait_for(lambda e: e.subject == marker)
    assert again["type"].endswith("/signature-replayed")
    assert len([e for e in tap.events if e.subject == first.json()["complaint_id"]]) == 1


def test_both_keys_of_a_rotation_are_valid(intake: Intake) -> None:
    old = intake.channels.post("web", fresh("web_en"), key=0)
    new = intake.channels.post("web", fresh("web_en"), key=1)
    assert (old.status_code, new.status_code) == (202, 202)


def test_a_channel_key_over_its_rate_gets_429(strict_intake: Intake) -> None:
    answers = [strict_intake.channels.post("store", fresh("store_en")) for _ in range(5)]
    assert [a.status_code for a in answers[:3]] == [202, 202, 202]
    limited = problem(answers[-1], 429)
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert "store-it" in limited["detail"]


def test_logs_never_hold_full_phone_numbers_emails_or_bodies(intake: Intake) -> None:
    secret_words = f"my unmistakable complaint words {unique('w')}"
    payload = fresh("web_zh", email=f"{unique('private')}@example.com", phone="13987654321", description=secret_words)
    assert intake.channels.post("web", payload).status_code == 202
    bad = fresh("web_en", email="leaky.person@example.com", phone="12345")  # refused: the error must not leak either
    assert intake.channels.post("web", bad).status_code == 422
    log = intake.log.read_text(encoding="utf-8")
    assert "139****4321" in log or "+86*******4321" in log
    for leaked in ("13987654321", payload["email"], "leaky.person@example.com", secret_words):
        assert leaked not in log
