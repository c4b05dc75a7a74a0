"""The key a channel integration signs with, as intake knows it: ``INTAKE_CHANNEL_KEYS`` or its development keys.

Intake's own settings class reads them, so the CLI parses the variable and falls back to the
development keys exactly as intake does (``services/intake/settings.py``).
"""

from dataclasses import dataclass

from pydantic import ValidationError

from shared.cli.common import BAD_INPUT, CliError
from shared.events.vocabulary import Channel


@dataclass(frozen=True)
class ChannelKey:
    """A key id and its secret."""

    key_id: str
    secret: str


def channel_key(channel: Channel, key_id: str | None = None) -> ChannelKey | None:
    """The key of ``channel`` (the one named ``key_id``, else the first: during a rotation both are valid)."""
    from services.intake.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CliError(f"intake settings are invalid here ({problems}): fix INTAKE_CHANNEL_KEYS or pass --key-id "
                       "and --secret", BAD_INPUT) from exc
    for key in settings.keys_for(channel):
        if key_id is None or key.key_id == key_id:
            return ChannelKey(key.key_id, key.secret.get_secret_value())
    return None
