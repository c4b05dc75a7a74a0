"""Commerce events loyalty consumes (published by the shop, or by loyalty's import)."""

from datetime import datetime

from pydantic import Field

from shared.events.base import EventData, register
from shared.topics import Topic


@register
class OrderCompleted(EventData):
    """A customer completed a purchase."""

    event_type = "order.completed.v1"
    topic = Topic.ORDERS

    order_id: str
    customer_id: str
    amount_minor: int = Field(ge=0)
    currency: str = "CNY"
    completed_at: datetime


@register
class OrderRefunded(EventData):
    """A purchase was refunded, in whole or in part."""

    event_type = "order.refunded.v1"
    topic = Topic.ORDERS

    order_id: str
    customer_id: str
    amount_minor: int = Field(ge=0)
    currency: str = "CNY"
    refunded_at: datetime
