"""Recovery: compensation by customer tier, approvals, budgets and incident-wide recovery."""

from services.recovery.api import router
from services.recovery.api_figures import router as figures_router
from services.recovery.api_incidents import router as incidents_router
from services.recovery.backpressure import ConsumerBackpressure
from services.recovery.fanout import FanOut
from services.recovery.handlers import make_handlers, make_timer_handlers
from services.recovery.models import delivery
from services.recovery.policy import PolicyError, load_policy
from services.recovery.settings import Settings
from shared.lag import GroupLagReader
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import load_settings
from shared.topics import Topic

settings = load_settings(Settings)
try:
    # Validated at start: a bad policy file stops the service with the field it names.
    policy = load_policy(settings.policy_path)
except PolicyError as err:
    raise SystemExit(str(err)) from None


async def on_start(runtime: Runtime) -> None:
    """Make the policy reachable from routes."""
    runtime.state["policy"] = policy


async def run_fan_out(runtime: Runtime) -> None:
    """Collect incident segments and issue their compensations in the background."""
    reader = GroupLagReader(runtime.bus, settings.lag_groups, str(Topic.COMPENSATION))
    backpressure = ConsumerBackpressure(reader, settings.incident_max_consumer_lag, settings.incident_lag_check_seconds)
    fan_out = FanOut(runtime.db, runtime.emitter, policy, settings, backpressure)
    try:
        await fan_out.run(lambda: runtime.shutting_down)
    finally:
        await backpressure.close()


spec = ServiceSpec(
    name="recovery",
    description="Decides and issues compensation for cases and for incidents that hit many customers.",
    settings=settings,
    tables=delivery,
    routers=[router, incidents_router, figures_router],
    handlers=make_handlers(policy),
    consumes=[Topic.CASES, Topic.LOYALTY],
    timer_handlers=make_timer_handlers(policy),
    tasks=[run_fan_out],
    on_start=on_start,
    openapi_tags=[
        {"name": "compensation", "description": "Decisions, offers, approvals and the append-only ledger."},
        {"name": "incidents", "description": "Incident-wide recovery: one compensation per affected customer."},
    ],
)
app = create_app(spec)
