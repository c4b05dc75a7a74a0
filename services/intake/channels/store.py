"""Store and field staff adapter: notes typed by the employee who took the complaint in person."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from services.intake.channels.base import (
    Attachment,
    Body,
    ChannelAdapter,
    ContactHints,
    CustomerId,
    EmailAddress,
    Identifier,
    NormalizedComplaint,
    OrderRef,
    PhoneNumber,
    ShortText,
    StrictModel,
    build_complaint,
)
from services.intake.normalize import NormalizeConfig
from shared.events.vocabulary import Channel

StaffCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class StoreReportPayload(StrictModel):
    """A complaint recorded by store or field staff on behalf of the customer."""

    report_id: Identifier | None = None
    source: Literal["store", "field"] = "store"
    store_id: StaffCode
    staff_id: StaffCode
    notes: Annotated[Body, StringConstraints(min_length=1)]
    customer_id: CustomerId | None = None
    customer_name: ShortText | None = None
    phone: PhoneNumber | None = None
    email: EmailAddress | None = None
    order_ref: OrderRef | None = None
    location: ShortText | None = Field(None, description="Where a field visit took place.")
    photos: list[Attachment] = Field(default_factory=list, max_length=10)
    recorded_at: AwareDatetime | None = None


class StoreAdapter(ChannelAdapter[StoreReportPayload]):
    """Maps a staff report to a complaint; the staff member is the first owner (first-contact ownership)."""

    channel = Channel.STORE
    payload_model = StoreReportPayload

    def to_complaint(self, payload: StoreReportPayload, config: NormalizeConfig) -> NormalizedComplaint:
        """The notes are the complaint; store, staff and location stay as channel details."""
        details = {
            "source": payload.source,
            "store_id": payload.store_id,
            "staff_id": payload.staff_id,
            "location": payload.location,
        }
        return build_complaint(
            config,
            channel=self.channel,
            text=payload.notes,
            text_field=("notes",),
            external_ref=f"{payload.store_id}:{payload.report_id}" if payload.report_id else None,
            contact=ContactHints(
                customer_id=payload.customer_id, phone=payload.phone, email=payload.email, name=payload.customer_name
            ),
            order_ref=payload.order_ref,
            occurred_at=payload.recorded_at,
            channel_details={key: value for key, value in details.items() if value is not None},
            attachments=payload.photos,
        )
