"""``redress submit``: post a complaint on any channel, signed like a real channel integration.

The body is the channel's native payload: built from ``--customer`` and ``--text``, or read from
``--json-body FILE`` (any payload the channel accepts). The request carries an HMAC-SHA256
signature over ``timestamp.body`` with the channel's key (``shared.signing``), an
``Idempotency-Key`` and an ``X-Correlation-Id``.
"""

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from shared.cli.channel_keys import ChannelKey, channel_key
from shared.cli.common import BAD_INPUT, FAILED, OK, UNREACHABLE, CliError
from shared.events.vocabulary import Channel
from shared.signing import signed_headers

DEFAULT_INTAKE = "http://127.0.0.1:8001"
DEFAULT_TEXT = "My order 2024112300123 arrived broken and nobody answers."


def add_submit(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``redress submit``."""
    parser = sub.add_parser(
        "submit",
        help="post a complaint on any channel, signed like a real integration",
        description="Post one complaint to intake on a channel, signed with the channel's key. Prints the "
        "complaint id on stdout (details on stderr).",
    )
    parser.add_argument("--channel", choices=[c.value for c in Channel], default=Channel.WEB.value)
    parser.add_argument("--customer", metavar="ID", help="customer id (default: a new one)")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="what the customer says")
    parser.add_argument("--email", help="sender address (email channel; default derived from the customer id)")
    parser.add_argument("--json-body", type=Path, metavar="FILE", help="send this native channel payload as is")
    parser.add_argument("--intake", metavar="URL", help=f"intake base URL (default: REDRESS_INTAKE_URL or "
                        f"{DEFAULT_INTAKE})")
    parser.add_argument("--key-id", help="channel key id (default: from INTAKE_CHANNEL_KEYS or the development keys)")
    parser.add_argument("--secret", help="channel key secret (default: as --key-id)")
    parser.add_argument("--idempotency-key", help="default: a new UUID (repeat one to test replays)")
    parser.add_argument("--json", action="store_true", help="print intake's whole answer as JSON")
    parser.set_defaults(func=_submit)


def native_body(channel: Channel, customer: str, text: str, ref: str, email: str | None = None) -> dict[str, Any]:
    """A minimal valid native payload of ``channel`` (see services/intake/channels/)."""
    bodies: dict[Channel, dict[str, Any]] = {
        Channel.WEB: {"external_ref": ref, "customer_id": customer, "text": text},
        Channel.APP: {"feedback_id": ref, "customer_id": customer, "message": text, "app_version": "1.0.0",
                      "device": {"platform": "other", "os_version": "redress-cli"}},
        Channel.EMAIL: {"from": email or _email_of(customer), "to": ["service@redress.example"],
                        "subject": "Complaint", "text": text, "message_id": f"{ref}@redress-cli"},
        Channel.PHONE: {"call_id": ref, "customer_id": customer, "duration_seconds": 60,
                        "segments": [{"speaker": "customer", "text": text}]},
        Channel.CHAT: {"conversation_id": ref, "customer_id": customer,
                       "messages": [{"role": "customer", "text": text}]},
        Channel.SOCIAL: {"platform": "weibo", "handle": customer, "post_id": ref, "visibility": "private",
                         "text": text, "customer_id": customer},
        Channel.STORE: {"report_id": ref, "store_id": "cli", "staff_id": "operator", "notes": text,
                        "customer_id": customer},
        Channel.GENERIC: {"source": "redress-cli", "external_id": ref, "text": text, "customer_id": customer},
    }
    return bodies[channel]


def _email_of(customer: str) -> str:
    local = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in customer) or "customer"
    return f"{local}@customers.example"


def _body(args: argparse.Namespace, channel: Channel) -> bytes:
    if args.json_body:
        try:
            raw = args.json_body.read_text(encoding="utf-8")
            json.loads(raw)
        except OSError as exc:
            raise CliError(f"cannot read {args.json_body}: {exc}", BAD_INPUT) from exc
        except json.JSONDecodeError as exc:
            raise CliError(f"{args.json_body} is not JSON: {exc}", BAD_INPUT) from exc
        return raw.encode("utf-8")
    customer = args.customer or f"cust-{uuid.uuid4().hex[:8]}"
    ref = f"cli-{uuid.uuid4().hex[:12]}"
    body = native_body(channel, customer, args.text, ref, args.email)
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _key(args: argparse.Namespace, channel: Channel) -> ChannelKey:
    if args.key_id and args.secret:
        return ChannelKey(args.key_id, args.secret)
    key = channel_key(channel, args.key_id)
    if key is None:
        raise CliError(f"no key for channel {channel.value}: set INTAKE_CHANNEL_KEYS as intake has it, or pass "
                       "--key-id and --secret", BAD_INPUT)
    return key


def _problem(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return response.text[:500]
    lines = [f"{problem.get('title', response.reason_phrase)}: {problem.get('detail', '')}".rstrip(": ")]
    lines += [f"  {e.get('field')}: {e.get('message')}" for e in problem.get("errors") or []]
    return "\n".join(lines)


def _submit(args: argparse.Namespace) -> int:
    channel = Channel(args.channel)
    base = (args.intake or os.environ.get("REDRESS_INTAKE_URL") or DEFAULT_INTAKE).rstrip("/")
    body = _body(args, channel)
    key = _key(args, channel)
    headers = {
        "content-type": "application/json",
        "Idempotency-Key": args.idempotency_key or str(uuid.uuid4()),
        **signed_headers(key.key_id, key.secret, int(time.time()), body),
    }
    url = f"{base}/v1/channels/{channel.value}/complaints"
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=15)
    except httpx.HTTPError as exc:
        raise CliError(f"intake is not reachable at {base} ({type(exc).__name__}: {exc}). Start the stack with "
                       "`make run`, or pass --intake URL / set REDRESS_INTAKE_URL.", UNREACHABLE) from exc
    if response.status_code == 422:
        raise CliError(f"intake refused the payload ({url}):\n{_problem(response)}", BAD_INPUT)
    if response.status_code in (401, 403):
        raise CliError(f"intake refused the signature ({response.status_code}): {_problem(response)}\n"
                       f"check the channel key (key id {key.key_id}): INTAKE_CHANNEL_KEYS or --key-id/--secret",
                       FAILED)
    if response.status_code >= 400:
        raise CliError(f"intake answered {response.status_code}: {_problem(response)}", FAILED)
    answer = response.json()
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        complaint = answer.get("complaint_id", "?")
        print(complaint)
        print(f"accepted {channel.value} complaint {complaint} of customer {answer.get('customer_id', '?')} "
              f"({response.status_code}); follow it with: redress watch --follow {complaint}", file=sys.stderr)
    return OK
