"""The AsyncAPI document: generated from the event models, committed, and served by every service."""

import importlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from shared.asyncapi import SERVICES, build_document, channel_name
from shared.events import EVENT_TYPES
from shared.events.cases import CaseRouted, Deadlines
from shared.events.vocabulary import Category, CustomerTier, Severity
from shared.topics import Topic

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "docs" / "asyncapi" / "redress.asyncapi.json"
REGENERATE = "regenerate it: .venv/bin/redress asyncapi --output docs/asyncapi/redress.asyncapi.json"


def apps() -> dict[str, Any]:
    return {name: importlib.import_module(f"services.{name}.app") for name in SERVICES}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document({name: list(module.spec.handlers) for name, module in apps().items()})


def test_committed_document_follows_the_event_models(document: dict[str, Any]) -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    for part in ("channels", "components"):
        if committed[part] != document[part]:
            old, new = committed[part], document[part]
            changed = sorted(
                f"{section}.{key}"
                for section in set(old) | set(new)
                for key in set(old.get(section, {})) | set(new.get(section, {}))
                if old.get(section, {}).get(key) != new.get(section, {}).get(key)
            ) if part == "components" else sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            pytest.fail(f"docs/asyncapi/redress.asyncapi.json is out of date ({part}: {', '.join(changed)}); "
                        + REGENERATE)
        assert committed[part] == document[part]


def test_every_topic_and_event_type_is_described(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert {c["address"] for c in document["channels"].values()} == {t.value for t in Topic}
    messages = document["components"]["messages"]
    for event_type, model in EVENT_TYPES.items():
        channel = document["channels"][channel_name(model.topic)]
        assert event_type in channel["messages"]
        message = messages[event_type]
        assert message["payload"] == {"$ref": f"#/components/schemas/{model.__name__}"}
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        assert message["headers"]["allOf"][1]["properties"]["ce_type"]["const"] == event_type
    headers = document["components"]["schemas"]["CloudEventsHeaders"]["properties"]
    for name in ("ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "ce_correlationid",
                 "ce_causationid", "ce_partitionkey", "ce_traceparent", "content-type"):
        assert name in headers


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_every_reference_resolves_and_operations_use_their_channel(document: dict[str, Any]) -> None:
    for ref in _refs(document):
        assert ref.startswith("#/"), ref
        _resolve(document, ref)
    for name, operation in document["operations"].items():
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel + "/messages/"), name


def test_payload_schema_validates_a_real_event_and_rejects_a_broken_one(document: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    event = CaseRouted(
        case_id="c-1", complaint_id="k-1", customer_id="cust-1", severity=Severity.P2, category=Category.OTHER,
        queue="product_support", customer_tier=CustomerTier.MID_VALUE, deadlines=Deadlines(), received_at=now,
        routed_at=now,
    ).model_dump(mode="json")
    registry = Registry().with_resource("urn:redress", DRAFT202012.create_resource(document))
    schema = {"$ref": "urn:redress#/components/schemas/CaseRouted"}
    validator = Draft202012Validator(schema, registry=registry)
    assert not list(validator.iter_errors(event))
    broken = {**event, "severity": "P9"}
    assert list(validator.iter_errors(broken))


def test_operations_follow_each_service_handlers(document: dict[str, Any]) -> None:
    messages_of = {
        name: {m["$ref"].rsplit("/", 1)[-1] for m in op["messages"]}
        for name, op in document["operations"].items()
    }
    for name, module in apps().items():
        received = set().union(*[m for op, m in messages_of.items() if op.startswith(f"{name}.receive.")])
        assert received == set(module.spec.handlers), name
    assert messages_of["intake.send.complaints"] == {"complaint.received.v1", "complaint.followed_up.v1"}
    assert messages_of["routing.send.cases"] >= {"case.routed.v1", "case.resolved.v1"}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_serves_its_document_next_to_openapi(service: str) -> None:
    app = apps()[service].app
    client = TestClient(app)  # no lifespan: the document needs no database or broker
    served = client.get("/asyncapi.json")
    assert served.status_code == 200
    doc = served.json()
    assert doc["info"]["title"] == f"Redress {service} events"
    assert all(op.startswith(f"{service}.") for op in doc["operations"])
    assert f"{service}.send.{channel_name(Topic(_own_topic(service)))}" in doc["operations"]
    assert "/asyncapi.json" in client.get("/openapi.json").json()["paths"]


def _own_topic(service: str) -> str:
    return {"intake": Topic.COMPLAINTS, "routing": Topic.CASES, "recovery": Topic.COMPENSATION,
            "loyalty": Topic.LOYALTY}[service].value
