"""Routing: severity tiers, SLA clocks, escalation and case queues."""

from services.routing.api import router
from services.routing.handlers import HANDLERS
from services.routing.models import delivery
from services.routing.settings import Settings
from shared.service import ServiceSpec, create_app
from shared.settings import load_settings
from shared.topics import Topic

spec = ServiceSpec(
    name="routing",
    description="Gives every complaint a severity, an owner and SLA deadlines; escalates before they pass.",
    settings=load_settings(Settings),
    tables=delivery,
    routers=[router],
    handlers=HANDLERS,
    consumes=[Topic.COMPLAINTS, Topic.LOYALTY],
)
app = create_app(spec)
