"""Web form adapter: structured fields typed into the complaint form on the website."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, AwareDatetime, Field, StringConstraints

from services.intake.channels.base import (
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

Locale = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$", max_length=35)]


class WebFormPayload(StrictModel):
    """A complaint submitted through the website's form.

    The form's free text is ``text`` (``description`` is accepted too) and its submission id
    ``external_ref`` (or ``submission_id``).
    """

    external_ref: Identifier | None = Field(None, validation_alias=AliasChoices("external_ref", "submission_id"))
    customer_id: CustomerId | None = None
    name: ShortText | None = None
    email: EmailAddress | None = None
    phone: PhoneNumber | None = None
    topic: ShortText | None = None
    subject: ShortText | None = None
    text: Annotated[Body, StringConstraints(min_length=1)] = Field(validation_alias=AliasChoices("text", "description"))
    order_ref: OrderRef | None = None
    page_url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    locale: Locale | None = None
    submitted_at: AwareDatetime | None = None


class WebFormAdapter(ChannelAdapter[WebFormPayload]):
    """Maps a web form submission to a complaint."""

    channel = Channel.WEB
    payload_model = WebFormPayload

    def to_complaint(self, payload: WebFormPayload, config: NormalizeConfig) -> NormalizedComplaint:
        """The free text is the complaint; the form's topic and page stay as channel details."""
        details = {"topic": payload.topic, "page_url": payload.page_url, "locale": payload.locale}
        return build_complaint(
            config,
            channel=self.channel,
            text=payload.text,
            text_field=("text",),
            subject=payload.subject,
            external_ref=payload.external_ref,
            contact=ContactHints(
                customer_id=payload.customer_id, email=payload.email, phone=payload.phone, name=payload.name
            ),
            order_ref=payload.order_ref,
            occurred_at=payload.submitted_at,
            channel_details={key: value for key, value in details.items() if value is not None},
        )
