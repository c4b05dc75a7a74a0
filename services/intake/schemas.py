"""Intake's API bodies: answers to a submitted complaint, the complaint view, pages and bulk results."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.events.complaints import Classification, Exposure
from shared.events.vocabulary import Category, Channel, UrgencyCue

Outcome = Literal["created", "followed_up"]


class ComplaintAccepted(BaseModel):
    """Answer to an accepted message: the complaint it opened or followed up.

    A re-sent message (same channel and external reference, or same Idempotency-Key) gets this same
    answer again, with the header ``Idempotent-Replayed: true`` and no second effect.
    """

    complaint_id: str = Field(examples=["6f1c2d9e-8a61-4b1e-9d55-2f7c0b1a3e10"])
    message_id: str
    outcome: Outcome = Field(description="created: a new complaint; followed_up: added to an open one.")
    customer_id: str = Field(examples=["C-100234"])
    provisional_customer: bool = Field(description="The customer was only known by contacts, not by id.")
    channel: Channel
    category: Category
    urgency_cues: list[UrgencyCue] = Field(default_factory=list)
    language: str = Field(examples=["zh"])
    order_ref: str | None = Field(default=None, examples=["2024112300123"])
    status: str = Field(examples=["received"])
    follow_up_count: int = 0
    received_at: datetime


class TimelineEntry(BaseModel):
    """One step of a complaint's life, from intake or from a downstream service's event."""

    at: datetime
    event_type: str = Field(examples=["case.routed.v1"])
    event_id: str
    status: str | None = Field(default=None, description="The status this step moved the complaint to, if any.")
    detail: dict[str, Any] = Field(default_factory=dict)


class MessageView(BaseModel):
    """A message of the complaint: the first one or a follow-up."""

    id: str
    kind: Literal["complaint", "follow_up"]
    channel: Channel
    external_ref: str | None
    text: str
    order_ref: str | None
    received_at: datetime


class ComplaintView(BaseModel):
    """A complaint as intake knows it, with its status timeline."""

    id: str
    customer_id: str
    provisional_customer: bool
    channel: Channel
    external_ref: str | None
    subject: str | None
    text: str
    text_truncated: bool
    language: str
    order_ref: str | None
    category: Category
    classification: Classification | None
    exposure: Exposure | None
    contact: dict[str, Any] | None
    channel_details: dict[str, Any] | None
    attachments: list[dict[str, Any]] | None
    status: str = Field(examples=["routed"])
    status_at: datetime | None
    case_id: str | None
    follow_up_count: int
    repeat_contacts: int = Field(description="Earlier contacts of the customer within the repeat window.")
    received_at: datetime
    occurred_at: datetime | None
    last_message_at: datetime | None
    backfill: bool
    messages: list[MessageView]
    timeline: list[TimelineEntry]


class ComplaintSummary(BaseModel):
    """A complaint in a list."""

    id: str
    customer_id: str
    channel: Channel
    subject: str | None
    excerpt: str
    language: str
    category: Category
    status: str
    case_id: str | None
    follow_up_count: int
    received_at: datetime


class ComplaintPage(BaseModel):
    """A page of a customer's complaints, newest first."""

    customer_id: str
    customer_ids: list[str] = Field(description="The customer's id and provisional ids merged into it.")
    items: list[ComplaintSummary]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= for the next page; None at the end.")


class BulkLineResult(BaseModel):
    """What happened to one line of a bulk import."""

    line: int
    outcome: Literal["created", "followed_up", "duplicate", "rejected"]
    complaint_id: str | None = None
    errors: list[dict[str, str]] | None = None


class BulkResult(BaseModel):
    """Summary of a bulk import; every line is accounted for."""

    lines: int
    created: int
    followed_up: int
    duplicates: int
    rejected: int
    results: list[BulkLineResult]
