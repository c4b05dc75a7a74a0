"""Generic adapter: any other source that can send a text and whatever contact it knows."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field, StringConstraints, field_validator

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

SourceName = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
MetaValue = str | int | float | bool | None


class GenericPayload(StrictModel):
    """A complaint from a source without its own adapter (partner portals, regulators' referrals, ...)."""

    source: SourceName
    external_id: Identifier | None = None
    text: Annotated[Body, StringConstraints(min_length=1)]
    subject: ShortText | None = None
    customer_id: CustomerId | None = None
    name: ShortText | None = None
    email: EmailAddress | None = None
    phone: PhoneNumber | None = None
    social_handle: Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)] | None = None
    order_ref: OrderRef | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    metadata: dict[Annotated[str, StringConstraints(max_length=64)], MetaValue] = Field(default_factory=dict)
    occurred_at: AwareDatetime | None = None

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, MetaValue]) -> dict[str, MetaValue]:
        if len(value) > 50:
            raise ValueError("metadata holds at most 50 keys")
        if any(isinstance(v, str) and len(v) > 1000 for v in value.values()):
            raise ValueError("metadata values are at most 1000 characters")
        return value

    @field_validator("social_handle")
    @classmethod
    def _platform_handle(cls, value: str | None) -> str | None:
        if value is None:
            return None
        platform, sep, handle = value.partition(":")
        if not sep or not platform or not handle.strip().lstrip("@"):
            raise ValueError("a social handle is written platform:handle, e.g. weibo:小王")
        return f"{platform.strip().lower()}:{handle.strip().lstrip('@').casefold()}"


class GenericAdapter(ChannelAdapter[GenericPayload]):
    """Maps a generic submission to a complaint; the source name scopes its external id."""

    channel = Channel.GENERIC
    payload_model = GenericPayload

    def to_complaint(self, payload: GenericPayload, config: NormalizeConfig) -> NormalizedComplaint:
        """External ids are unique per source only, so the external reference carries the source."""
        return build_complaint(
            config,
            channel=self.channel,
            text=payload.text,
            text_field=("text",),
            subject=payload.subject,
            external_ref=f"{payload.source}:{payload.external_id}" if payload.external_id else None,
            contact=ContactHints(
                customer_id=payload.customer_id,
                email=payload.email,
                phone=payload.phone,
                social_handle=payload.social_handle,
                name=payload.name,
            ),
            order_ref=payload.order_ref,
            occurred_at=payload.occurred_at,
            channel_details={"source": payload.source, **({"metadata": payload.metadata} if payload.metadata else {})},
            attachments=payload.attachments,
        )
