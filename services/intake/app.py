"""Intake: channel integrations POST complaints; intake normalizes, classifies and publishes them."""

from services.intake.api import router
from services.intake.models import delivery
from services.intake.settings import Settings
from shared.service import ServiceSpec, create_app
from shared.settings import load_settings

spec = ServiceSpec(
    name="intake",
    description="One front door for every channel: complaints in, `complaint.received.v1` out.",
    settings=load_settings(Settings),
    tables=delivery,
    routers=[router],
)
app = create_app(spec)
