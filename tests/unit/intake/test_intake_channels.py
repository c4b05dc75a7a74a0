"""Channel adapters: realistic payloads in both languages become one normalized complaint; bad ones are refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.intake.channels import ADAPTERS, PayloadError, adapter_for, normalize_payload
from services.intake.normalize import NormalizeConfig
from shared.events.vocabulary import Channel

PAYLOADS = Path(__file__).resolve().parents[2] / "data" / "intake" / "payloads"
FIXTURES = sorted(PAYLOADS.glob("*.json"))


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))


def _payload(name: str) -> dict[str, Any]:
    return copy.deepcopy(_fixture(name)["payload"])


def _locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str | int, ...]]:
    return [tuple(error["loc"]) for error in exc.value.errors()]


def test_every_channel_has_an_adapter() -> None:
    assert set(ADAPTERS) == set(Channel)
    for channel, adapter in ADAPTERS.items():
        assert adapter.channel is channel


def test_unknown_channel_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: web, app, email"):
        adapter_for("fax")


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_realistic_payload_normalizes_as_expected(path: Path) -> None:
    fixture = json.loads(path.read_text(encoding="utf-8"))
    channel = path.stem.split("_")[0]
    complaint = normalize_payload(channel, fixture["payload"])
    got = complaint.model_dump(mode="json")
    assert got["channel"] == channel
    for key, expected in fixture["expect"].items():
        if key == "attachments":
            assert len(got["attachments"]) == expected
        elif key == "contact":
            for field, value in expected.items():
                assert got["contact"][field] == value, field
        else:
            assert got[key] == expected, key
    assert complaint.text and complaint.text == complaint.text.strip()


def test_web_form_keeps_structured_fields_and_finds_order() -> None:
    complaint = normalize_payload("web", _payload("web_zh"))
    assert complaint.order_ref == "2024112000315"
    assert complaint.contact.phone == "+8613812345678"
    assert complaint.channel_details["topic"] == "售后服务"


def test_web_form_accepts_the_short_field_names() -> None:
    payload = {"customer_id": "cust-1", "text": "My order 2024112300123 arrived broken.", "external_ref": "web-1"}
    complaint = normalize_payload("web", payload)
    assert (complaint.external_ref, complaint.order_ref, complaint.contact.customer_id) == (
        "web-1",
        "2024112300123",
        "cust-1",
    )
    with pytest.raises(ValidationError) as exc:
        normalize_payload("web", {"customer_id": "cust-1"})
    assert _locs(exc) == [("text",)]


def test_explicit_order_ref_wins_over_one_in_text() -> None:
    payload = _payload("web_en") | {"order_ref": " so-5512 "}
    assert normalize_payload("web", payload).order_ref == "SO-5512"


def test_app_feedback_carries_version_device_and_screenshots() -> None:
    complaint = normalize_payload("app", _payload("app_en"))
    assert complaint.channel_details["app_version"] == "5.2.1"
    assert complaint.channel_details["device"]["model"] == "Pixel 8"
    assert complaint.attachments[0].filename == "crash.png"


def test_email_html_is_rendered_and_the_quoted_reply_dropped() -> None:
    complaint = normalize_payload("email", _payload("email_en"))
    assert "We are looking into it" not in complaint.text
    assert "wrote:" not in complaint.text
    assert "<b>" not in complaint.text and "color:red" not in complaint.text
    assert complaint.subject == "Charged twice for order 2024111500982"


def test_email_keeps_only_attachment_metadata() -> None:
    complaint = normalize_payload("email", _payload("email_en"))
    dumped = complaint.model_dump()
    assert dumped["attachments"] == [
        {"filename": "statement.pdf", "content_type": "application/pdf", "size_bytes": 48211, "url": None}
    ]
    assert "JVBERi0" not in json.dumps(complaint.model_dump(mode="json"))


def test_email_plain_text_wins_over_html_and_chinese_quote_is_stripped() -> None:
    complaint = normalize_payload("email", _payload("email_zh"))
    assert "原始邮件" not in complaint.text
    assert "发自我的iPhone" not in complaint.text
    assert complaint.subject == "退款还没到账"


def test_email_with_empty_text_falls_back_to_html() -> None:
    payload = _payload("email_en") | {"text": "   "}
    assert "charged twice" in normalize_payload("email", payload).text


def test_email_whose_html_has_no_text_is_refused_with_the_field() -> None:
    payload = _payload("email_en") | {"html": "<html><body><img src='x.png'></body></html>"}
    with pytest.raises(PayloadError) as exc:
        normalize_payload("email", payload)
    assert exc.value.loc == ("html",)


def test_phone_takes_the_customer_turns_and_reads_the_ivr_path_as_subject() -> None:
    complaint = normalize_payload("phone", _payload("phone_en"))
    assert "how can I help" not in complaint.text
    assert complaint.subject == "Product faults > Kitchen appliances"


def test_phone_without_segments_uses_the_transcript() -> None:
    complaint = normalize_payload("phone", _payload("phone_zh"))
    assert complaint.text.startswith("客户：你好")


@pytest.mark.parametrize("withheld", ["anonymous", "Unknown", "匿名", None])
def test_phone_withheld_caller_is_accepted_without_a_number(withheld: str | None) -> None:
    payload = _payload("phone_en") | {"caller_number": withheld}
    complaint = normalize_payload("phone", payload)
    assert complaint.contact.phone is None
    assert complaint.channel_details["caller_withheld"] is True


def test_chat_complaint_is_only_the_customer_turns() -> None:
    complaint = normalize_payload("chat", _payload("chat_en"))
    assert "How can I help" not in complaint.text
    assert "transferred" not in complaint.text
    assert complaint.order_ref == "A778812"


def test_social_public_post_carries_its_reach() -> None:
    complaint = normalize_payload("social", _payload("social_zh"))
    assert complaint.exposure.public is True
    assert complaint.exposure.reach == 56000
    assert complaint.contact.social_handle == "weibo:小王爱吃饭"


def test_social_direct_message_is_not_public_and_reach_takes_views() -> None:
    payload = _payload("social_en") | {"visibility": "private", "follower_count": 10, "view_count": 900}
    complaint = normalize_payload("social", payload)
    assert complaint.exposure.public is False
    assert complaint.exposure.reach == 900


def test_social_post_ids_are_scoped_by_platform() -> None:
    weibo = normalize_payload("social", _payload("social_zh"))
    other = normalize_payload("social", _payload("social_zh") | {"platform": "douyin"})
    assert weibo.external_ref != other.external_ref


def test_store_report_keeps_store_staff_and_photos() -> None:
    complaint = normalize_payload("store", _payload("store_zh"))
    assert complaint.channel_details["staff_id"] == "tech.zhao"
    assert complaint.attachments[0].content_type == "image/jpeg"


def test_generic_source_scopes_the_external_id() -> None:
    complaint = normalize_payload("generic", _payload("generic_en"))
    assert complaint.external_ref == "regulator-referral:SAMR-2024-11-0042"


def test_long_text_is_cut_to_the_configured_limit() -> None:
    payload = _payload("web_en") | {"description": "word " * 400}
    complaint = normalize_payload("web", payload, NormalizeConfig(max_text_chars=200))
    assert complaint.text_truncated is True
    assert len(complaint.text) <= 200
    assert complaint.text.endswith("…")


def test_default_country_decides_national_phone_numbers() -> None:
    payload = _payload("web_en") | {"phone": "(415) 555-2671"}
    us = normalize_payload("web", payload, NormalizeConfig(default_country="US"))
    assert us.contact.phone == "+14155552671"
    # The same digits read as a Chinese landline (area code 415) under the default country.
    assert normalize_payload("web", payload).contact.phone == "+864155552671"
    with pytest.raises(ValidationError) as exc:
        normalize_payload("web", payload | {"phone": "555-2671"}, NormalizeConfig(default_country="US"))
    assert ("phone",) in _locs(exc)


def _without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


def _deep(payload: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return payload


MALFORMED: list[tuple[str, str, Any, tuple[str | int, ...]]] = [
    # (fixture, description of the fault, mutation, expected error location)
    ("web_en", "missing text", lambda p: _without(p, "description"), ("text",)),
    ("web_en", "empty description", lambda p: p | {"description": ""}, ("description",)),
    ("web_en", "misspelt field", lambda p: p | {"descripton": "x"}, ("descripton",)),
    ("web_en", "bad e-mail", lambda p: p | {"email": "emily@"}, ("email",)),
    ("web_zh", "bad phone", lambda p: p | {"phone": "12345"}, ("phone",)),
    ("web_en", "naive timestamp", lambda p: p | {"submitted_at": "2024-11-23T09:15:00"}, ("submitted_at",)),
    ("web_en", "description too long", lambda p: p | {"description": "x" * 50_001}, ("description",)),
    ("web_en", "bad locale", lambda p: p | {"locale": "english please"}, ("locale",)),
    ("web_en", "customer id too long", lambda p: p | {"customer_id": "c" * 101}, ("customer_id",)),
    ("web_en", "order reference too long", lambda p: p | {"order_ref": "9" * 65}, ("order_ref",)),
    ("social_en", "post id too long", lambda p: p | {"post_id": "1" * 129}, ("post_id",)),
    ("app_en", "missing app version", lambda p: _without(p, "app_version"), ("app_version",)),
    ("app_en", "bad app version", lambda p: p | {"app_version": "v5"}, ("app_version",)),
    ("app_en", "unknown platform", lambda p: _deep(p, ("device", "platform"), "windows"), ("device", "platform")),
    ("app_zh", "device without os version", lambda p: _deep(p, ("device", "os_version"), ""), ("device", "os_version")),
    ("app_en", "too many screenshots", lambda p: p | {"screenshots": p["screenshots"] * 11}, ("screenshots",)),
    ("email_en", "missing sender", lambda p: _without(p, "from"), ("from",)),
    ("email_en", "bad recipient", lambda p: p | {"to": ["support@"]}, ("to", 0)),
    ("email_en", "no recipients", lambda p: p | {"to": []}, ("to",)),
    ("email_zh", "no body at all", lambda p: _without(p, "text"), ()),
    ("email_en", "html too long", lambda p: p | {"html": "<p>" + "x" * 500_001}, ("html",)),
    (
        "email_en",
        "bad attachment type",
        lambda p: _deep(p, ("attachments", 0, "content_type"), "pdf"),
        ("attachments", 0, "content_type"),
    ),
    ("email_zh", "missing message id", lambda p: _without(p, "message_id"), ("message_id",)),
    ("phone_en", "missing call id", lambda p: _without(p, "call_id"), ("call_id",)),
    ("phone_en", "negative duration", lambda p: p | {"duration_seconds": -5}, ("duration_seconds",)),
    ("phone_zh", "no words", lambda p: _without(p, "transcript"), ()),
    ("phone_zh", "bad caller number", lambda p: p | {"caller_number": "1391234"}, ("caller_number",)),
    (
        "phone_en",
        "unknown speaker",
        lambda p: _deep(p, ("segments", 0, "speaker"), "robot"),
        ("segments", 0, "speaker"),
    ),
    ("phone_en", "menu too deep", lambda p: p | {"ivr_path": ["1"] * 21}, ("ivr_path",)),
    ("chat_en", "no messages", lambda p: p | {"messages": []}, ("messages",)),
    ("chat_zh", "customer never spoke", lambda p: p | {"messages": [{"role": "agent", "text": "hello"}]}, ()),
    ("chat_en", "unknown role", lambda p: _deep(p, ("messages", 1, "role"), "visitor"), ("messages", 1, "role")),
    ("chat_en", "message too long", lambda p: _deep(p, ("messages", 1, "text"), "x" * 5001), ("messages", 1, "text")),
    ("social_en", "unknown platform", lambda p: p | {"platform": "myspace"}, ("platform",)),
    ("social_en", "unknown visibility", lambda p: p | {"visibility": "friends"}, ("visibility",)),
    ("social_zh", "negative reach", lambda p: p | {"follower_count": -1}, ("follower_count",)),
    ("social_en", "handle without a name", lambda p: p | {"handle": "@"}, ("handle",)),
    ("social_zh", "missing post id", lambda p: _without(p, "post_id"), ("post_id",)),
    ("store_en", "store id with spaces", lambda p: p | {"store_id": "BJ XIDAN"}, ("store_id",)),
    ("store_zh", "missing staff id", lambda p: _without(p, "staff_id"), ("staff_id",)),
    ("store_en", "empty notes", lambda p: p | {"notes": ""}, ("notes",)),
    ("store_zh", "unknown source", lambda p: p | {"source": "kiosk"}, ("source",)),
    ("generic_en", "source with capitals and spaces", lambda p: p | {"source": "Partner Portal"}, ("source",)),
    ("generic_zh", "handle without platform", lambda p: p | {"social_handle": "zhou_min"}, ("social_handle",)),
    ("generic_en", "too much metadata", lambda p: p | {"metadata": {f"k{i}": i for i in range(51)}}, ("metadata",)),
    ("generic_en", "nested metadata", lambda p: p | {"metadata": {"a": {"b": 1}}}, ("metadata", "a", "str")),
]


@pytest.mark.parametrize(("fixture", "fault", "mutate", "loc"), MALFORMED, ids=[f"{m[0]}: {m[1]}" for m in MALFORMED])
def test_malformed_payload_is_refused_with_the_field_path(
    fixture: str, fault: str, mutate: Any, loc: tuple[str | int, ...]
) -> None:
    channel = fixture.split("_")[0]
    with pytest.raises(ValidationError) as exc:
        normalize_payload(channel, mutate(_payload(fixture)))
    assert loc in _locs(exc), f"{fault}: {_locs(exc)}"


@pytest.mark.parametrize("channel", [c.value for c in Channel])
def test_a_payload_that_is_not_an_object_is_refused(channel: str) -> None:
    with pytest.raises(ValidationError):
        normalize_payload(channel, ["not", "an", "object"])


def test_whitespace_only_text_makes_no_complaint() -> None:
    with pytest.raises(PayloadError) as exc:
        normalize_payload("generic", {"source": "partner", "text": " \u200b\n\t "})
    assert exc.value.loc == ("text",)
