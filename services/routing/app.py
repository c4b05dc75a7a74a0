"""Routing: severity tiers, SLA clocks, escalation and case queues."""

from datetime import timedelta

from services.routing.api import router
from services.routing.handlers import make_handlers, make_timer_handlers
from services.routing.models import delivery
from services.routing.policy import PolicyError, RoutingPolicy, load_policy
from services.routing.settings import Settings
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import load_settings
from shared.topics import Topic


def load_routing_policy(settings: Settings) -> RoutingPolicy:
    """The policy file, validated at start; a bad file stops the service with the field named."""
    try:
        return load_policy(settings.policy_path)
    except PolicyError as exc:
        raise SystemExit(str(exc)) from None


settings = load_settings(Settings)
policy = load_routing_policy(settings)


async def _on_start(runtime: Runtime) -> None:
    runtime.state["policy"] = policy


spec = ServiceSpec(
    name="routing",
    description="Gives every complaint a severity tier, an owner and three SLA clocks; escalates before they pass.",
    settings=settings,
    tables=delivery,
    routers=[router],
    handlers=make_handlers(policy),
    consumes=[Topic.COMPLAINTS, Topic.LOYALTY],
    timer_handlers=make_timer_handlers(policy, timedelta(seconds=settings.timer_busy_retry_seconds)),
    on_start=_on_start,
    openapi_tags=[
        {"name": "queues", "description": "Case queues per department and the green channel."},
        {"name": "cases", "description": "Cases with their tier, owner, three clocks and full history."},
        {"name": "actions", "description": "Operator actions; each is recorded with who took it."},
        {"name": "figures", "description": "Routing figures against the KPI targets."},
        {"name": "policy", "description": "The routing policy in force."},
    ],
)
app = create_app(spec)
