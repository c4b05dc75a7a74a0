"""The channel endpoint's OpenAPI: every channel's payload schema is in the document, with a valid example."""

from __future__ import annotations

import json
import re

from services.intake.channels import ADAPTERS, normalize_payload
from services.intake.openapi import EXAMPLES, add_channel_schemas, channel_request_body
from shared.events.vocabulary import Channel


def test_every_channel_has_an_example_its_adapter_accepts() -> None:
    assert set(EXAMPLES) == set(Channel)
    for channel, example in EXAMPLES.items():
        assert normalize_payload(channel, example).text


def test_request_body_refers_to_schemas_the_document_contains() -> None:
    document = add_channel_schemas({"paths": {"/x": {"post": {"requestBody": channel_request_body()}}}})
    text = json.dumps(document)
    refs = set(re.findall(r"#/components/schemas/([A-Za-z0-9_]+)", text))
    assert refs <= set(document["components"]["schemas"])
    assert {adapter.payload_model.__name__ for adapter in ADAPTERS.values()} <= refs
