"""OpenAPI for the channel endpoint: every channel's native payload schema, with an example of each."""

from __future__ import annotations

from typing import Any

from services.intake.channels import ADAPTERS
from shared.events.vocabulary import Channel

EXAMPLES: dict[Channel, dict[str, Any]] = {
    Channel.WEB: {
        "external_ref": "wf-20241123-88120", "customer_id": "C-100234", "email": "emily@example.com",
        "subject": "Laptop won't boot", "text": "The laptop from order 2024110800417 restarts at the logo screen.",
        "locale": "en-US",
    },
    Channel.APP: {
        "feedback_id": "fb-9a01be", "customer_id": "C-200311", "message": "我的账号在异地登录了，不是我本人操作的！",
        "app_version": "5.3.0", "device": {"platform": "harmonyos", "os_version": "4.2", "model": "Mate 60"},
    },
    Channel.EMAIL: {
        "from": "Zhang Wei <zhang.wei@example.com>", "to": ["support@shop.example.com"],
        "subject": "Re: Charged twice for order 2024111500982",
        "text": "I was charged twice.\n\nOn Mon, 18 Nov 2024, Support <support@shop.example.com> wrote:\n> Hello",
        "message_id": "<CAF=abc123@mail.gmail.com>", "in_reply_to": "<reply-55@shop.example.com>",
        "attachments": [{"filename": "statement.pdf", "content_type": "application/pdf", "size_bytes": 48211}],
    },
    Channel.PHONE: {
        "call_id": "CN-IVR-5520931", "caller_number": "139 1234 5678", "ivr_path": ["账户与安全", "账户被盗"],
        "duration_seconds": 185, "segments": [{"speaker": "customer", "text": "我的账户里少了一千五百八十元"}],
    },
    Channel.CHAT: {
        "conversation_id": "conv-8812-aa", "customer_id": "C-100990",
        "messages": [{"role": "bot", "text": "How can I help?"},
                     {"role": "customer", "text": "Order #A778812 arrived broken."}],
    },
    Channel.SOCIAL: {
        "platform": "weibo", "handle": "小王爱吃饭", "post_id": "4987123456789012", "visibility": "public",
        "text": "@某某电器 热水器漏电，全家都不敢洗澡了！", "follower_count": 56000,
    },
    Channel.STORE: {
        "report_id": "R-0091", "store_id": "BJ-XIDAN-01", "staff_id": "E10442", "phone": "010-6612 3456",
        "notes": "Customer says staff ignored her for 20 minutes and refused to check her receipt.",
    },
    Channel.GENERIC: {
        "source": "regulator-referral", "external_id": "SAMR-2024-11-0042", "email": "consumer@example.net",
        "text": "Consumer reports a refund of 699 for order 2024103100211 has not been received.",
    },
}


def _model_name(channel: Channel) -> str:
    return ADAPTERS[channel].payload_model.__name__


def channel_request_body() -> dict[str, Any]:
    """``requestBody`` of the channel endpoint: one of the channels' payloads (the path says which)."""
    return {
        "required": True,
        "description": "The channel's native payload: the schema whose name matches the `{channel}` in the path.",
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"$ref": f"#/components/schemas/{_model_name(c)}"} for c in Channel]},
                "examples": {c.value: {"summary": f"{c.value} payload", "value": EXAMPLES[c]} for c in Channel},
            }
        },
    }


def add_channel_schemas(schema: dict[str, Any]) -> dict[str, Any]:
    """Put every channel payload model (and the models it uses) into the document's components."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for adapter in ADAPTERS.values():
        model_schema = adapter.payload_model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(model_schema.pop("$defs", {}))
        components[adapter.payload_model.__name__] = model_schema
    return schema
