"""Loyalty: points ledger, tiers and benefits, satisfaction surveys and care follow-ups."""

from services.loyalty.api import router
from services.loyalty.handlers import HANDLERS
from services.loyalty.models import delivery
from services.loyalty.settings import Settings
from shared.service import ServiceSpec, create_app
from shared.settings import load_settings
from shared.topics import Topic

spec = ServiceSpec(
    name="loyalty",
    description="Keeps points, tiers and benefits right, measures satisfaction and schedules care.",
    settings=load_settings(Settings),
    tables=delivery,
    routers=[router],
    handlers=HANDLERS,
    consumes=[Topic.COMPENSATION, Topic.CASES, Topic.ORDERS],
)
app = create_app(spec)
