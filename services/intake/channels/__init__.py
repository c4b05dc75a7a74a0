"""Channel adapters and the registry mapping each channel to its adapter."""

from __future__ import annotations

from typing import Any

from services.intake.channels.app import AppFeedbackAdapter
from services.intake.channels.base import ChannelAdapter, ContactHints, NormalizedComplaint, PayloadError
from services.intake.channels.chat import ChatAdapter
from services.intake.channels.email import EmailAdapter
from services.intake.channels.generic import GenericAdapter
from services.intake.channels.phone import PhoneCallAdapter
from services.intake.channels.social import SocialAdapter
from services.intake.channels.store import StoreAdapter
from services.intake.channels.web import WebFormAdapter
from services.intake.normalize import NormalizeConfig
from shared.events.vocabulary import Channel

ADAPTERS: dict[Channel, ChannelAdapter[Any]] = {
    adapter.channel: adapter
    for adapter in (
        WebFormAdapter(),
        AppFeedbackAdapter(),
        EmailAdapter(),
        PhoneCallAdapter(),
        ChatAdapter(),
        SocialAdapter(),
        StoreAdapter(),
        GenericAdapter(),
    )
}


def adapter_for(channel: Channel | str) -> ChannelAdapter[Any]:
    """The adapter of a channel; raises KeyError naming the known channels for an unknown one."""
    try:
        return ADAPTERS[Channel(channel)]
    except ValueError:
        raise KeyError(f"unknown channel {channel!r}; known: {', '.join(c.value for c in Channel)}") from None


def normalize_payload(channel: Channel | str, raw: Any, config: NormalizeConfig | None = None) -> NormalizedComplaint:
    """Validate a channel's native payload and turn it into a normalized complaint.

    Raises pydantic.ValidationError (field errors) or PayloadError (a valid shape without a complaint).
    """
    return adapter_for(channel).normalize(raw, config or NormalizeConfig())


__all__ = [
    "ADAPTERS",
    "ChannelAdapter",
    "ContactHints",
    "NormalizedComplaint",
    "PayloadError",
    "adapter_for",
    "normalize_payload",
]
