"""Loyalty: points ledger, tiers and benefits, satisfaction surveys and care follow-ups."""

from services.loyalty.api import router
from services.loyalty.handlers import build_handlers, build_timer_handlers
from services.loyalty.models import delivery
from services.loyalty.policy import load_policy
from services.loyalty.settings import Settings
from services.loyalty.sweep import sweeper
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import load_settings
from shared.topics import Topic

settings = load_settings(Settings)
policy = load_policy(settings.policy_path)


async def _on_start(runtime: Runtime) -> None:
    runtime.state["policy"] = policy


spec = ServiceSpec(
    name="loyalty",
    description="Keeps points, tiers and benefits right, measures satisfaction and schedules care.",
    settings=settings,
    tables=delivery,
    routers=[router],
    handlers=build_handlers(policy),
    consumes=[Topic.COMPENSATION, Topic.CASES, Topic.ORDERS, Topic.COMPLAINTS],
    timer_handlers=build_timer_handlers(policy),
    tasks=[sweeper(policy, settings.sweep_interval_seconds, settings.sweep_batch)],
    on_start=_on_start,
    version=policy.version,
    openapi_tags=[{"name": "loyalty", "description": "Points, tiers, benefits, surveys and satisfaction."}],
)
app = create_app(spec)
