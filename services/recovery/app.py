"""Recovery: compensation by customer tier, approvals, budgets and incident-wide recovery."""

from services.recovery.api import router
from services.recovery.handlers import HANDLERS
from services.recovery.models import delivery
from services.recovery.settings import Settings
from shared.service import ServiceSpec, create_app
from shared.settings import load_settings
from shared.topics import Topic

spec = ServiceSpec(
    name="recovery",
    description="Decides and issues compensation for cases and for incidents that hit many customers.",
    settings=load_settings(Settings),
    tables=delivery,
    routers=[router],
    handlers=HANDLERS,
    consumes=[Topic.CASES, Topic.LOYALTY],
)
app = create_app(spec)
