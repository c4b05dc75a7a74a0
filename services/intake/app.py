"""Intake: channel integrations POST complaints; intake normalizes, classifies and publishes them."""

import asyncio
import contextlib
import logging
from datetime import timedelta

from services.intake import store
from services.intake.acceptance import IntakeService
from services.intake.api import router
from services.intake.classify import POLICY_FILE, Classifier
from services.intake.classify import PolicyError as RulesError
from services.intake.classify import load_policy as load_rules
from services.intake.handlers import make_handlers
from services.intake.models import delivery
from services.intake.openapi import add_channel_schemas
from services.intake.policy import IntakePolicy, PolicyError, load_policy
from services.intake.settings import Settings
from shared.db import utcnow
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import load_settings
from shared.topics import Topic

log = logging.getLogger(__name__)


def load_intake_policy(settings: Settings) -> tuple[IntakePolicy, Classifier]:
    """The policy and the classification rules, validated at start; a bad file stops the service naming the field."""
    try:
        return load_policy(settings.policy_path), Classifier(load_rules(settings.classification_path or POLICY_FILE))
    except (PolicyError, RulesError) as exc:
        raise SystemExit(str(exc)) from None


settings = load_settings(Settings)
policy, classifier = load_intake_policy(settings)


async def _on_start(runtime: Runtime) -> None:
    runtime.state["intake"] = IntakeService(runtime, policy, classifier)


async def _forget_old_signatures(runtime: Runtime) -> None:
    """Signatures older than the window are refused by their timestamp; their digests need not be kept."""
    keep = timedelta(seconds=2 * settings.signature_window_seconds)
    while not runtime.shutting_down:
        with contextlib.suppress(Exception):
            async with runtime.db.transaction() as conn:
                await store.purge_signatures(conn, utcnow() - keep)
        for _ in range(60):  # a minute between purges, but stop at once on shutdown
            if runtime.shutting_down:
                return
            await asyncio.sleep(1)


spec = ServiceSpec(
    name="intake",
    description="One front door for every channel: native payloads in, normalized, deduplicated and classified "
    "complaints out as `complaint.received.v1` (or `complaint.followed_up.v1`).",
    settings=settings,
    tables=delivery,
    routers=[router],
    handlers=make_handlers(),
    consumes=[Topic.CASES, Topic.COMPENSATION, Topic.LOYALTY],
    tasks=[_forget_old_signatures],
    on_start=_on_start,
    openapi_tags=[
        {"name": "channels", "description": "Channel integrations submit complaints, signed with their key."},
        {"name": "complaints", "description": "Operators read complaints with their status timeline."},
    ],
)
app = create_app(spec)
_document = app.openapi


def _openapi() -> dict[str, object]:
    """FastAPI's document plus the channel payload schemas the channel endpoint refers to."""
    if app.openapi_schema is None:
        add_channel_schemas(_document())
    return app.openapi_schema  # type: ignore[return-value]


app.openapi = _openapi  # type: ignore[method-assign]
