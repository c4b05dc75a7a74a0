"""Events intake publishes."""

from datetime import datetime

from pydantic import BaseModel, Field

from shared.events.base import EventData, register
from shared.events.vocabulary import Category, Channel, Department, Sentiment, UrgencyCue
from shared.topics import Topic


class Classification(BaseModel):
    """What intake's rules decided about a complaint, with the reasons."""

    category: Category
    urgency_cues: list[UrgencyCue] = Field(default_factory=list)
    sentiment: Sentiment = Sentiment.NEUTRAL
    sentiment_score: float = 0.0
    departments: list[Department] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list, description="Rules that matched, for explanation.")


class Exposure(BaseModel):
    """How public a complaint is (a social post with reach is urgent)."""

    public: bool = False
    reach: int = 0
    platform: str | None = None


@register
class ComplaintReceived(EventData):
    """A new complaint, normalized from any channel."""

    event_type = "complaint.received.v1"
    topic = Topic.COMPLAINTS

    complaint_id: str
    customer_id: str
    channel: Channel
    received_at: datetime
    text: str
    language: str = "en"
    subject: str | None = None
    external_ref: str | None = None
    order_ref: str | None = None
    provisional_customer: bool = False
    repeat_contacts_30d: int = 0
    exposure: Exposure = Field(default_factory=Exposure)
    classification: Classification
    occurred_at: datetime | None = Field(None, description="When the customer wrote, as the channel reported it.")
    backfill: bool = Field(False, description="Imported from an earlier system (bulk back-fill), not live.")


@register
class ComplaintFollowedUp(EventData):
    """The customer wrote again about an open complaint."""

    event_type = "complaint.followed_up.v1"
    topic = Topic.COMPLAINTS

    complaint_id: str
    customer_id: str
    channel: Channel
    received_at: datetime
    text: str
    follow_up_count: int = 1
    message_id: str | None = Field(None, description="Intake's id of this message.")
    external_ref: str | None = None
    order_ref: str | None = None
    language: str | None = None
    match_reason: str | None = Field(None, description="Why intake took the message for a follow-up.")
    classification: Classification | None = Field(None, description="The follow-up's own text, classified.")
