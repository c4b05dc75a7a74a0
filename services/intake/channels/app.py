"""Mobile app adapter: the in-app feedback form, with the app version and the device."""

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

Version = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d+(\.\d+){0,3}([-+][\w.]+)?$")]


class Device(StrictModel):
    """The device the app runs on."""

    platform: Literal["ios", "android", "harmonyos", "ipados", "other"]
    os_version: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    model: ShortText | None = None
    locale: Annotated[str, StringConstraints(max_length=35)] | None = None


class AppFeedbackPayload(StrictModel):
    """A complaint sent from the mobile app's feedback screen."""

    feedback_id: Identifier | None = None
    customer_id: CustomerId | None = None
    email: EmailAddress | None = None
    phone: PhoneNumber | None = None
    topic: ShortText | None = None
    subject: ShortText | None = None
    message: Annotated[Body, StringConstraints(min_length=1)]
    order_ref: OrderRef | None = None
    app_version: Version
    device: Device
    screen: ShortText | None = Field(None, description="The app screen the feedback was opened from.")
    screenshots: list[Attachment] = Field(default_factory=list, max_length=10)
    submitted_at: AwareDatetime | None = None


class AppFeedbackAdapter(ChannelAdapter[AppFeedbackPayload]):
    """Maps in-app feedback to a complaint; app version and device help product support reproduce faults."""

    channel = Channel.APP
    payload_model = AppFeedbackPayload

    def to_complaint(self, payload: AppFeedbackPayload, config: NormalizeConfig) -> NormalizedComplaint:
        """The message is the complaint; version, device and screen stay as channel details."""
        details = {
            "app_version": payload.app_version,
            "device": payload.device.model_dump(exclude_none=True),
            "topic": payload.topic,
            "screen": payload.screen,
        }
        return build_complaint(
            config,
            channel=self.channel,
            text=payload.message,
            text_field=("message",),
            subject=payload.subject,
            external_ref=payload.feedback_id,
            contact=ContactHints(customer_id=payload.customer_id, email=payload.email, phone=payload.phone),
            order_ref=payload.order_ref,
            occurred_at=payload.submitted_at,
            channel_details={key: value for key, value in details.items() if value is not None},
            attachments=payload.screenshots,
        )
