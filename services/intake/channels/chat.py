"""Live chat adapter: a conversation transcript; the complaint is what the customer wrote."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from services.intake.channels.base import (
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


class ChatMessage(StrictModel):
    """One message of the conversation."""

    role: Literal["customer", "agent", "bot", "system"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=5000)]
    sent_at: AwareDatetime | None = None


class ChatConversationPayload(StrictModel):
    """A chat conversation handed over by the chat platform."""

    conversation_id: Identifier
    customer_id: CustomerId | None = None
    visitor_name: ShortText | None = None
    email: EmailAddress | None = None
    phone: PhoneNumber | None = None
    order_ref: OrderRef | None = None
    messages: list[ChatMessage] = Field(min_length=1, max_length=500)
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _customer_spoke(self) -> ChatConversationPayload:
        if not any(m.role == "customer" and m.text.strip() for m in self.messages):
            raise ValueError("a conversation needs at least one customer message")
        return self


class ChatAdapter(ChannelAdapter[ChatConversationPayload]):
    """Maps a chat to a complaint made of the customer's turns, in order."""

    channel = Channel.CHAT
    payload_model = ChatConversationPayload

    def to_complaint(self, payload: ChatConversationPayload, config: NormalizeConfig) -> NormalizedComplaint:
        """Agent and bot turns are left out of the text: they would skew language and classification."""
        turns = [m.text for m in payload.messages if m.role == "customer"]
        details = {
            "conversation_id": payload.conversation_id,
            "message_count": len(payload.messages),
            "customer_turns": len(turns),
            "ended_at": payload.ended_at.isoformat() if payload.ended_at else None,
        }
        return build_complaint(
            config,
            channel=self.channel,
            text="\n".join(turns),
            text_field=("messages",),
            external_ref=payload.conversation_id,
            contact=ContactHints(
                customer_id=payload.customer_id, email=payload.email, phone=payload.phone, name=payload.visitor_name
            ),
            order_ref=payload.order_ref,
            occurred_at=payload.started_at or payload.messages[0].sent_at,
            channel_details={key: value for key, value in details.items() if value is not None},
        )
