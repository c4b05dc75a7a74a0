"""Phone / IVR adapter: the call record the contact-centre platform posts when a call ends."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints, field_validator, model_validator

from services.intake.channels.base import (
    Body,
    ChannelAdapter,
    ContactHints,
    CustomerId,
    Identifier,
    NormalizedComplaint,
    PayloadError,
    PhoneNumber,
    StrictModel,
    build_complaint,
)
from services.intake.normalize import NormalizeConfig
from shared.events.vocabulary import Channel

# Values carriers and PBXs put in the caller field when the number is withheld.
_WITHHELD = frozenset({"anonymous", "unknown", "private", "withheld", "restricted", "unavailable", "匿名", "未知"})

MenuChoice = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class TranscriptSegment(StrictModel):
    """One speaker turn of a diarized call transcript."""

    speaker: Literal["customer", "agent", "ivr"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=5000)]
    offset_seconds: float | None = Field(None, ge=0)


class PhoneCallPayload(StrictModel):
    """A finished call: who called, the menu path taken, and what the customer said."""

    call_id: Identifier
    caller_number: PhoneNumber | None = Field(None, description="None or 'anonymous' when withheld.")
    called_number: PhoneNumber | None = None
    customer_id: CustomerId | None = Field(None, description="Set when the IVR identified the caller.")
    transcript: Body | None = None
    segments: list[TranscriptSegment] = Field(default_factory=list, max_length=1000)
    ivr_path: list[MenuChoice] = Field(default_factory=list, max_length=20)
    duration_seconds: int = Field(ge=0, le=86_400)
    started_at: AwareDatetime | None = None
    agent_id: Identifier | None = None

    @field_validator("caller_number", mode="before")
    @classmethod
    def _withheld_is_none(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in _WITHHELD:
            return None
        return value

    @model_validator(mode="after")
    def _has_words(self) -> PhoneCallPayload:
        has_customer_turn = any(s.speaker == "customer" for s in self.segments)
        if not ((self.transcript and self.transcript.strip()) or has_customer_turn):
            raise ValueError("a call needs a transcript or at least one customer segment")
        return self


class PhoneCallAdapter(ChannelAdapter[PhoneCallPayload]):
    """Maps a call to a complaint: the customer's words are the text, the IVR path reads as a subject."""

    channel = Channel.PHONE
    payload_model = PhoneCallPayload

    def to_complaint(self, payload: PhoneCallPayload, config: NormalizeConfig) -> NormalizedComplaint:
        """Customer segments win over the flat transcript, which also holds the agent's words."""
        customer_turns = [s.text for s in payload.segments if s.speaker == "customer"]
        text = "\n".join(customer_turns) if customer_turns else (payload.transcript or "")
        if not text.strip():
            raise PayloadError(("segments",), "the customer said nothing readable")
        details = {
            "call_id": payload.call_id,
            "ivr_path": payload.ivr_path or None,
            "duration_seconds": payload.duration_seconds,
            "called_number": payload.called_number,
            "agent_id": payload.agent_id,
            "caller_withheld": payload.caller_number is None,
        }
        return build_complaint(
            config,
            channel=self.channel,
            text=text,
            text_field=("transcript",),
            subject=" > ".join(payload.ivr_path) if payload.ivr_path else None,
            external_ref=payload.call_id,
            contact=ContactHints(customer_id=payload.customer_id, phone=payload.caller_number),
            occurred_at=payload.started_at,
            channel_details={key: value for key, value in details.items() if value is not None},
        )
