"""Bulk NDJSON back-fill: every line accounted for, bad lines reported, a re-run creates nothing twice."""

from __future__ import annotations

import json
import time

from tests.integration.intake.conftest import Intake
from tests.integration.intake.helpers import fresh, problem, sign, unique
from tests.support.events import EventTap


def _lines() -> list[object]:
    return [
        fresh("email_en"),
        fresh("email_zh"),
        b"{not json",
        fresh("email_en", to=["not-an-address"]),
        fresh("email_en"),
    ]


async def test_bulk_import_accepts_good_lines_and_reports_bad_ones(intake: Intake, broker_address: str) -> None:
    lines = _lines()
    async with EventTap(broker_address, from_beginning=False) as tap:
        response = intake.channels.bulk("email", lines)
        assert response.status_code == 200, response.text
        result = response.json()
        created = [r["complaint_id"] for r in result["results"] if r["outcome"] == "created"]
        events = await tap.wait_for(lambda e: e.subject in created and e.type == "complaint.received.v1", count=3)
    assert (result["lines"], result["created"], result["rejected"], result["duplicates"]) == (5, 3, 2, 0)
    assert [r["outcome"] for r in result["results"]] == ["created", "created", "rejected", "rejected", "created"]
    assert result["results"][2]["errors"][0]["field"] == "line.3"
    assert result["results"][3]["errors"][0]["field"] == "line.4.to.0"
    assert all(e.data["backfill"] is True for e in events)


def test_running_the_same_import_again_creates_nothing_twice(intake: Intake) -> None:
    lines = [fresh("store_en"), fresh("store_zh")]
    first = intake.channels.bulk("store", lines).json()
    body = b"\n".join(json.dumps(line, ensure_ascii=False).encode() for line in lines)
    again = intake.channels.client.post(
        "/v1/channels/store/complaints/bulk",
        content=body,
        headers={
            "content-type": "application/x-ndjson",
            **sign(*intake.channels.key("store"), body, timestamp=int(time.time()) + 1),
        },
    ).json()
    assert [r["outcome"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert [r["complaint_id"] for r in again["results"]] == [r["complaint_id"] for r in first["results"]]


def test_bulk_lines_need_an_external_reference(intake: Intake) -> None:
    line = fresh("store_en")
    del line["report_id"]
    result = intake.channels.bulk("store", [line]).json()
    assert result["results"][0]["outcome"] == "rejected"
    assert "external reference" in result["results"][0]["errors"][0]["message"]


def test_bulk_import_must_be_signed_and_not_replayed(intake: Intake) -> None:
    body = json.dumps(fresh("generic_en")).encode()
    unsigned = intake.channels.client.post("/v1/channels/generic/complaints/bulk", content=body)
    assert problem(unsigned, 401)["type"].endswith("/signature-missing")
    headers = sign(*intake.channels.key("generic"), body)
    assert intake.channels.client.post("/v1/channels/generic/complaints/bulk", content=body, headers=headers).is_success
    replay = intake.channels.client.post("/v1/channels/generic/complaints/bulk", content=body, headers=headers)
    assert problem(replay, 401)["type"].endswith("/signature-replayed")


def test_oversized_bulk_line_is_reported_not_fatal(intake: Intake) -> None:
    big = fresh("generic_en", text="x" * 70_000, external_id=unique("big"))
    result = intake.channels.bulk("generic", [big, fresh("generic_zh", external_id=unique("ok"))]).json()
    assert [r["outcome"] for r in result["results"]] == ["rejected", "created"]
    assert "at most 65536" in result["results"][0]["errors"][0]["message"]


def test_bulk_body_over_the_service_limit_gets_413(intake: Intake) -> None:
    lines = [fresh("generic_en", text="y" * 15_000) for _ in range(20)]  # ~300 KB over the test's 256 KiB
    assert problem(intake.channels.bulk("generic", lines), 413)["title"] == "Payload too large"


def test_import_with_more_lines_than_allowed_gets_413(strict_intake: Intake) -> None:
    lines = [fresh("app_en"), fresh("app_zh"), fresh("app_en")]
    assert "at most 2" in problem(strict_intake.channels.bulk("app", lines), 413)["detail"]
