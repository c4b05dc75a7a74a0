"""Signature checks of channel requests, each refusal with its reason; channel key settings."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from services.intake.security import authenticate
from services.intake.settings import DEV_CHANNEL_KEYS, ChannelKey, Settings
from shared.events.vocabulary import Channel
from shared.problems import ProblemError
from shared.signing import signed_headers

NOW = 1_800_000_000
OLD = ChannelKey(key_id="web-2025", secret=SecretStr("old-secret-0123456789"))
NEW = ChannelKey(key_id="web-2026", secret=SecretStr("new-secret-0123456789"))
BODY = b'{"text": "broken"}'


def _check(headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> str:
    return authenticate([OLD, NEW], "web", headers, body, now, 300).key_id


def _refusal(headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> ProblemError:
    with pytest.raises(ProblemError) as exc:
        _check(headers, body, now)
    assert exc.value.status == 401
    assert exc.value.headers["WWW-Authenticate"].startswith("Signature")
    return exc.value


def test_both_keys_of_a_rotation_verify() -> None:
    assert _check(signed_headers("web-2025", "old-secret-0123456789", NOW, BODY)) == "web-2025"
    assert _check(signed_headers("web-2026", "new-secret-0123456789", NOW, BODY)) == "web-2026"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "signature-missing"),
        ({"X-Redress-Key-Id": "web-2026"}, "signature-missing"),
        ({"X-Redress-Signature": "t=1,v1=ab"}, "signature-missing"),
        ({"X-Redress-Key-Id": "web-1999", "X-Redress-Signature": "t=1,v1=ab"}, "unknown-key"),
        ({"X-Redress-Key-Id": "web-2026", "X-Redress-Signature": "v1=ab"}, "signature-malformed"),
        ({"X-Redress-Key-Id": "web-2026", "X-Redress-Signature": "t=soon,v1=ab"}, "signature-malformed"),
    ],
)
def test_malformed_or_missing_headers(headers: dict[str, str], code: str) -> None:
    assert _refusal(headers).code == code


def test_wrong_secret_tampered_body_and_other_key_do_not_verify() -> None:
    assert _refusal(signed_headers("web-2026", "guessed-secret-000000", NOW, BODY)).code == "signature-mismatch"
    assert _refusal(signed_headers("web-2026", "new-secret-0123456789", NOW, BODY), body=b"{}").code == (
        "signature-mismatch"
    )
    # The old key's signature presented under the new key's id.
    forged = signed_headers("web-2025", "old-secret-0123456789", NOW, BODY) | {"X-Redress-Key-Id": "web-2026"}
    assert _refusal(forged).code == "signature-mismatch"


@pytest.mark.parametrize(("age", "words"), [(301, "301s old"), (-301, "301s in the future")])
def test_timestamps_outside_the_window(age: int, words: str) -> None:
    refusal = _refusal(signed_headers("web-2026", "new-secret-0123456789", NOW - age, BODY))
    assert refusal.code == "signature-stale" and words in (refusal.detail or "")


def test_timestamps_at_the_edge_of_the_window_verify() -> None:
    assert _check(signed_headers("web-2026", "new-secret-0123456789", NOW - 300, BODY)) == "web-2026"


def test_uppercase_digest_verifies() -> None:
    headers = signed_headers("web-2026", "new-secret-0123456789", NOW, BODY)
    headers["X-Redress-Signature"] = headers["X-Redress-Signature"].upper().replace("T=", "t=").replace("V1=", "v1=")
    assert _check(headers) == "web-2026"


def test_channel_keys_come_from_json_with_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {"web": [{"key_id": "a", "secret": "a" * 16}, {"key_id": "b", "secret": "b" * 16}]}
    monkeypatch.setenv("INTAKE_CHANNEL_KEYS", json.dumps(keys))
    settings = Settings()
    assert [k.key_id for k in settings.keys_for(Channel.WEB)] == ["a", "b"]
    assert settings.keys_for(Channel.EMAIL) == []
    assert "a" * 16 not in repr(settings)  # secrets never show in logs or errors


def test_development_keys_are_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("OPERATOR_TOKEN_SECRET", "p" * 40)
    with pytest.raises(ValueError, match="development key of web is refused in production"):
        Settings()
    monkeypatch.setenv("INTAKE_CHANNEL_KEYS", json.dumps({"web": [{"key_id": "prod", "secret": "s" * 32}]}))
    assert Settings().keys_for(Channel.WEB)[0].key_id == "prod"


def test_short_secrets_and_bad_channels_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_CHANNEL_KEYS", json.dumps({"web": [{"key_id": "a", "secret": "short"}]}))
    with pytest.raises(ValueError, match=r"channel_keys\.web\.0\.secret"):
        Settings()
    monkeypatch.setenv("INTAKE_CHANNEL_KEYS", json.dumps({"fax": [{"key_id": "a", "secret": "s" * 16}]}))
    with pytest.raises(ValueError, match="channel_keys"):
        Settings()


def test_every_channel_has_a_development_key() -> None:
    assert set(DEV_CHANNEL_KEYS) == set(Channel)
