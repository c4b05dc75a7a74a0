"""The key a channel integration signs with, as intake knows it (``INTAKE_CHANNEL_KEYS``)."""

from dataclasses import dataclass

from shared.events.vocabulary import Channel


@dataclass(frozen=True)
class ChannelKey:
    """A key id and its secret."""

    key_id: str
    secret: str


def channel_key(channel: Channel, configured: str | None, key_id: str | None = None) -> ChannelKey | None:
    """The key of ``channel`` from intake's settings (the same parsing and development defaults)."""
    from services.intake.settings import Settings

    settings = Settings() if configured is None else Settings(channel_keys=configured)  # type: ignore[call-arg]
    keys = getattr(settings, "channel_keys", {}) or {}
    for kid, spec in dict(keys).items():
        if key_id and kid != key_id:
            continue
        return ChannelKey(kid, str(spec))
    return None
