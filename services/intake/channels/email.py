"""E-mail adapter: the JSON an inbound-email webhook posts for each message received."""

# Chinese full-width punctuation (：，！) in patterns and docs is intentional.

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AwareDatetime, Field, StringConstraints, field_validator, model_validator

from services.intake import normalize
from services.intake.channels.base import (
    MAX_HTML_CHARS,
    Attachment,
    Body,
    ChannelAdapter,
    ContactHints,
    Identifier,
    NormalizedComplaint,
    PayloadError,
    RequiredEmail,
    ShortText,
    StrictModel,
    build_complaint,
)
from services.intake.normalize import NormalizeConfig
from shared.events.vocabulary import Channel

_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|aw|wg)\s*(?:\[\d+\])?\s*[:：]|(?:回复|答复|转发)\s*[:：])\s*", re.I)


def strip_reply_prefixes(subject: str) -> str:
    """Drop any number of "Re:", "Fwd:", "回复：", "转发：" prefixes so a thread keeps one subject."""
    previous = None
    while previous != subject:
        previous, subject = subject, _REPLY_PREFIX.sub("", subject, count=1)
    return subject.strip()


def _bare_message_id(value: str) -> str:
    return value.strip().strip("<>").strip()


class EmailAttachment(Attachment):
    """Attachment metadata from the webhook; any inline content is accepted and dropped."""

    content_id: Annotated[str, StringConstraints(max_length=255)] | None = None
    content: str | None = Field(None, description="Base64 content some providers inline; never stored.")


class InboundEmailPayload(StrictModel):
    """One inbound e-mail as the provider's webhook sends it."""

    sender: RequiredEmail = Field(alias="from")
    from_name: ShortText | None = None
    to: list[RequiredEmail] = Field(min_length=1, max_length=50)
    cc: list[RequiredEmail] = Field(default_factory=list, max_length=50)
    subject: Annotated[str, StringConstraints(max_length=998)] | None = None
    text: Body | None = None
    html: Annotated[str, StringConstraints(max_length=MAX_HTML_CHARS)] | None = None
    message_id: Identifier
    in_reply_to: Identifier | None = None
    references: list[Identifier] = Field(default_factory=list, max_length=100)
    attachments: list[EmailAttachment] = Field(default_factory=list, max_length=50)
    received_at: AwareDatetime | None = None

    @field_validator("to", "cc", mode="before")
    @classmethod
    def _split_addresses(cls, value: object) -> object:
        """Providers send recipients either as a list or as one comma-separated header value."""
        if isinstance(value, str):
            return [part for part in (p.strip() for p in value.split(",")) if part]
        return value

    @field_validator("message_id", "in_reply_to")
    @classmethod
    def _bare(cls, value: str | None) -> str | None:
        return _bare_message_id(value) if value else value

    @model_validator(mode="after")
    def _has_body(self) -> InboundEmailPayload:
        if not ((self.text and self.text.strip()) or (self.html and self.html.strip())):
            raise ValueError("an e-mail needs a text or an html body")
        return self


class EmailAdapter(ChannelAdapter[InboundEmailPayload]):
    """Maps an inbound e-mail to a complaint: plain text preferred, HTML rendered, quoted replies stripped."""

    channel = Channel.EMAIL
    payload_model = InboundEmailPayload

    @staticmethod
    def _body(payload: InboundEmailPayload) -> str:
        """The new words of the message: the text part, or the rendered HTML when the text part is empty."""
        if payload.text and payload.text.strip():
            body = normalize.strip_quoted_reply(normalize.clean_text(payload.text))
            if body:
                return body
        if payload.html:
            return normalize.strip_quoted_reply(normalize.html_to_text(payload.html))
        return ""

    def to_complaint(self, payload: InboundEmailPayload, config: NormalizeConfig) -> NormalizedComplaint:
        """Sender becomes the contact; threading headers stay as channel details for follow-up matching."""
        body = self._body(payload)
        if not body:
            raise PayloadError(("html",) if payload.html else ("text",), "the e-mail body has no readable text")
        details = {
            "message_id": payload.message_id,
            "in_reply_to": payload.in_reply_to,
            "references": [_bare_message_id(ref) for ref in payload.references] or None,
            "to": payload.to,
            "cc": payload.cc or None,
        }
        return build_complaint(
            config,
            channel=self.channel,
            text=body,
            text_field=("text",),
            subject=strip_reply_prefixes(payload.subject) if payload.subject else None,
            external_ref=payload.message_id,
            contact=ContactHints(email=payload.sender, name=payload.from_name),
            occurred_at=payload.received_at,
            channel_details={key: value for key, value in details.items() if value is not None},
            attachments=[
                Attachment(filename=a.filename, content_type=a.content_type, size_bytes=a.size_bytes, url=a.url)
                for a in payload.attachments
            ],
        )
