"""AsyncAPI 3.0 document of the event flow, generated from the event models in ``shared.events``.

One channel per topic, one message per event type (payload: the pydantic model's JSON schema;
headers: the CloudEvents Kafka binding ``ce_*`` headers; key: the customer id), and for each
service the operations it sends and receives. Every service serves its own document at
``/asyncapi.json``; ``redress asyncapi`` prints the whole system's, committed as
``docs/asyncapi/redress.asyncapi.json`` (a test fails when an event model changes without it).
"""

from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import metadata
from typing import Any

from fastapi import APIRouter
from pydantic.json_schema import models_json_schema

from shared.events import EVENT_TYPES, EventData
from shared.topics import Topic

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
SCHEMAS = "#/components/schemas/"
DEAD_LETTER_MESSAGE = "dead-letter"

# The topics each service publishes through its outbox (one producing service per topic; the
# orders topic is written by the shop, outside Redress). Every consuming service also sends its
# dead letters.
SENDS: dict[str, tuple[Topic, ...]] = {
    "intake": (Topic.COMPLAINTS,),
    "routing": (Topic.CASES,),
    "recovery": (Topic.COMPENSATION,),
    "loyalty": (Topic.LOYALTY,),
}
SERVICES = tuple(SENDS)

_TOPIC_DESCRIPTIONS = {
    Topic.COMPLAINTS: "Complaints from every channel, normalized and classified by intake.",
    Topic.CASES: "Case lifecycle from routing: severity, queue, SLA clocks, escalations, resolution.",
    Topic.COMPENSATION: "Compensation decisions and incidents from recovery.",
    Topic.LOYALTY: "Points ledger, tiers, benefits, surveys and care signals from loyalty.",
    Topic.ORDERS: "Purchases and refunds from the shop (loyalty earns points from them).",
    Topic.DEAD_LETTER: "Messages a consumer could not handle after bounded retries, with the error in dlq_* headers.",
}

_CE_HEADERS: dict[str, tuple[str, str | None]] = {
    "ce_id": ("Event id (UUID); consumers deduplicate on it.", None),
    "ce_source": ("Producing service, e.g. /redress/intake.", "uri-reference"),
    "ce_type": ("Versioned event type, e.g. complaint.received.v1.", None),
    "ce_specversion": ("CloudEvents version: 1.0.", None),
    "ce_time": ("When the event happened (RFC 3339, UTC).", "date-time"),
    "ce_subject": ("What the event is about (complaint, case, compensation id).", None),
    "ce_correlationid": ("The complaint id through the whole flow.", None),
    "ce_causationid": ("Id of the event that caused this one.", None),
    "ce_partitionkey": ("Kafka key: the customer id (an incident id for incident events).", None),
    "ce_traceparent": ("W3C trace context (CloudEvents distributed tracing extension).", None),
    "content-type": ("Content type of the value: application/json.", None),
}
_DLQ_HEADERS = {
    "dlq_error": "Why the consumer gave up on the message.",
    "dlq_consumer": "Consumer group that gave up, e.g. redress-routing.",
    "dlq_source_topic": "Topic the message came from.",
    "dlq_source_partition": "Partition it came from.",
    "dlq_source_offset": "Offset it had there.",
    "dlq_at": "When it was dead-lettered (RFC 3339, UTC).",
}


def channel_name(topic: Topic) -> str:
    """The channel key of a topic: ``redress.cases.v1`` -> ``cases``, the dead-letter topic -> ``deadLetter``."""
    return "deadLetter" if topic is Topic.DEAD_LETTER else topic.value.split(".")[1]


def _headers_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, (description, fmt) in _CE_HEADERS.items():
        properties[name] = {"type": "string", "description": description, **({"format": fmt} if fmt else {})}
    properties["ce_specversion"]["const"] = "1.0"
    required = ["ce_id", "ce_source", "ce_type", "ce_specversion", "ce_correlationid"]
    return {
        "type": "object",
        "description": "CloudEvents 1.0 Kafka protocol binding, binary mode: one ce_ header per attribute.",
        "properties": properties,
        "required": required,
    }


def _message(event_type: str, model: type[EventData]) -> dict[str, Any]:
    doc = (model.__doc__ or "").strip().splitlines()
    key = "incident id" if model.key_field == "incident_id" else "customer id"
    return {
        "name": event_type,
        "title": model.__name__,
        "summary": doc[0] if doc else event_type,
        "contentType": "application/json",
        "headers": {
            "allOf": [
                {"$ref": SCHEMAS + "CloudEventsHeaders"},
                {"type": "object", "properties": {"ce_type": {"type": "string", "const": event_type}}},
            ]
        },
        "payload": {"$ref": SCHEMAS + model.__name__},
        "correlationId": {"$ref": "#/components/correlationIds/complaint"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"The {key} ({model.key_field}): keeps its events in order."},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _dead_letter_message() -> dict[str, Any]:
    dlq = {name: {"type": "string", "description": text} for name, text in _DLQ_HEADERS.items()}
    return {
        "name": DEAD_LETTER_MESSAGE,
        "title": "Dead letter",
        "summary": "The original message (key, value and ce_ headers unchanged) plus why it was given up.",
        "contentType": "application/json",
        "headers": {
            "allOf": [
                {"$ref": SCHEMAS + "CloudEventsHeaders"},
                {"type": "object", "properties": dlq, "required": list(dlq)},
            ]
        },
        "payload": {"description": "The original value, as received (it may not be valid JSON)."},
        "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": KAFKA_BINDING}},
    }


def _types_by_topic() -> dict[Topic, list[str]]:
    by_topic: dict[Topic, list[str]] = {topic: [] for topic in Topic}
    for event_type in sorted(EVENT_TYPES):
        by_topic[EVENT_TYPES[event_type].topic].append(event_type)
    return by_topic


def _channels() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for topic, types in _types_by_topic().items():
        names = [DEAD_LETTER_MESSAGE] if topic is Topic.DEAD_LETTER else types
        channels[channel_name(topic)] = {
            "address": topic.value,
            "title": topic.value,
            "description": _TOPIC_DESCRIPTIONS[topic],
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
            "bindings": {"kafka": {"topic": topic.value, "bindingVersion": KAFKA_BINDING}},
        }
    return channels


def _schemas() -> dict[str, Any]:
    models = [(EVENT_TYPES[t], "validation") for t in sorted(EVENT_TYPES)]
    _, top = models_json_schema(models, ref_template=SCHEMAS + "{model}")
    schemas = dict(sorted(top.get("$defs", {}).items()))
    return {"CloudEventsHeaders": _headers_schema(), **schemas}


def _operation(action: str, topic: Topic, messages: list[str], summary: str) -> dict[str, Any]:
    channel = channel_name(topic)
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in messages],
    }


def service_operations(service: str, receives: Iterable[str]) -> dict[str, Any]:
    """The operations of one service: what its outbox sends, what its handlers receive, its dead letters."""
    by_topic = _types_by_topic()
    operations: dict[str, Any] = {}
    for topic in SENDS.get(service, ()):
        summary = f"{service} publishes these events through its outbox."
        operations[f"{service}.send.{channel_name(topic)}"] = _operation("send", topic, by_topic[topic], summary)
    handled = set(receives)
    for topic, types in by_topic.items():
        mine = [t for t in types if t in handled]
        if mine:
            summary = f"{service} handles these events (consumer group redress-{service})."
            operations[f"{service}.receive.{channel_name(topic)}"] = _operation("receive", topic, mine, summary)
    if handled:
        summary = "Events that still fail after bounded retries go to the dead-letter topic."
        operations[f"{service}.send.deadLetter"] = _operation("send", Topic.DEAD_LETTER, [DEAD_LETTER_MESSAGE], summary)
    return operations


def _version() -> str:
    try:
        return metadata.version("redress")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def build_document(receives: Mapping[str, Iterable[str]], *, service: str | None = None) -> dict[str, Any]:
    """The AsyncAPI document: the whole system's, or one service's operations when ``service`` is given.

    ``receives`` maps each service to the event types its handlers take (``ServiceSpec.handlers``).
    """
    names = [service] if service else list(dict.fromkeys([*SERVICES, *receives]))
    operations: dict[str, Any] = {}
    for name in names:
        operations.update(service_operations(name, receives.get(name, ())))
    title = f"Redress {service} events" if service else "Redress events"
    messages = {t: _message(t, EVENT_TYPES[t]) for t in sorted(EVENT_TYPES)}
    messages[DEAD_LETTER_MESSAGE] = _dead_letter_message()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": _version(),
            "description": (
                "CloudEvents 1.0 over Kafka (binary mode: ce_ headers, JSON value), keyed by customer id, "
                "with one correlation id (the complaint id) through the whole flow. Generated from shared/events."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The Kafka cluster of the deployment (KAFKA_BOOTSTRAP_SERVERS).",
                "variables": {"bootstrap": {"default": "localhost:9092"}},
            }
        },
        "channels": _channels(),
        "operations": operations,
        "components": {
            "schemas": _schemas(),
            "messages": messages,
            "correlationIds": {
                "complaint": {
                    "description": "The complaint id, carried by every event of the complaint's flow.",
                    "location": "$message.header#/ce_correlationid",
                }
            },
        },
    }


@lru_cache(maxsize=8)
def _service_document(service: str, receives: tuple[str, ...]) -> dict[str, Any]:
    return build_document({service: receives}, service=service)


def asyncapi_router(service: str, receives: Iterable[str]) -> APIRouter:
    """``GET /asyncapi.json``: the events this service sends and receives, next to its OpenAPI."""
    router = APIRouter(tags=["operations"])
    handled = tuple(sorted(receives))

    @router.get("/asyncapi.json", summary="AsyncAPI 3.0 document of the events this service sends and receives")
    async def asyncapi() -> dict[str, Any]:
        return _service_document(service, handled)

    return router
