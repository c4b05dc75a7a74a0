"""What every versioned policy file shares: durations written for people, and errors that name fields."""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError

_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_duration(value: Any) -> timedelta:
    """Read ``"2h"``, ``"30d"``, ``"1d 12h"``, ``"90m"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match or not any(match.groups()):
        raise ValueError(f"duration {value!r} must look like '30m', '2h', '30d', '1d 12h' or a number of seconds")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def describe_errors(err: ValidationError) -> list[str]:
    """One line per problem, each naming the field path (``tiers.P2.first_response: ...``)."""
    return [f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors()]
