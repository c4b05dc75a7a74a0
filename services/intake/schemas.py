"""Intake's API bodies."""

from datetime import datetime

from pydantic import BaseModel, Field

from shared.events.vocabulary import Category, Channel


class WebComplaint(BaseModel):
    """A complaint from the web form."""

    customer_id: str = Field(min_length=1, max_length=100, examples=["cust-1001"])
    text: str = Field(min_length=1, max_length=10_000, examples=["My order 2024112300123 arrived broken."])
    external_ref: str | None = Field(default=None, max_length=200, examples=["web-form-88121"])


class ComplaintAccepted(BaseModel):
    """Answer to an accepted complaint."""

    complaint_id: str
    customer_id: str
    channel: Channel
    category: Category
    status: str
    received_at: datetime
