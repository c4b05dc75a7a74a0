"""Intake policy: normalization limits, follow-up rules and the repeat-contact window, plus pure decisions.

The figures live in ``policy.yaml`` next to this module (versioned); a bad file fails at start with a
message naming the field. The functions here decide from data alone (no I/O): whether a new message is
a follow-up of one of the customer's open complaints, and how similar two complaint texts are.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.intake.normalize import NormalizeConfig
from shared.policy_file import Duration

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FollowUpRule(_Strict):
    """When a message continues an open complaint instead of opening a new one."""

    window: Duration = Field(default=timedelta(hours=72), description="After the complaint's last message.")
    same_order: bool = True
    email_thread: bool = True
    min_text_similarity: float = Field(default=0.4, gt=0, le=1)
    max_candidates: int = Field(default=20, ge=1, le=200)


class RepeatContacts(_Strict):
    """How far back earlier contacts of the customer count."""

    window: Duration = Field(default=timedelta(days=30))


class IntakePolicy(_Strict):
    """The whole intake policy file."""

    version: str = Field(min_length=1)
    normalization: NormalizeConfig = Field(default_factory=NormalizeConfig)
    follow_up: FollowUpRule = Field(default_factory=FollowUpRule)
    repeat_contacts: RepeatContacts = Field(default_factory=RepeatContacts)


class PolicyError(ValueError):
    """The policy file is missing, not YAML, or has a bad field (the message names it)."""


def parse_policy(data: Any, source: str = "intake policy") -> IntakePolicy:
    """Validate a loaded YAML document; errors name the field path."""
    try:
        return IntakePolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"{source} is invalid: {problems}") from exc


def load_policy(path: Path | str | None = None) -> IntakePolicy:
    """Load and validate the intake policy YAML (the packaged default when no path is given)."""
    source = Path(path) if path else DEFAULT_POLICY_PATH
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read intake policy {source}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"intake policy {source} is not valid YAML: {exc}") from exc
    return parse_policy(data, str(source))


# --- text similarity -------------------------------------------------------------------------------------------


def _pairs(text: str) -> set[str]:
    """Character pairs of the letters and digits of a text (works the same for Chinese and English)."""
    letters = "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())
    return {letters[i : i + 2] for i in range(len(letters) - 1)}


def text_similarity(a: str, b: str) -> float:
    """Dice overlap of character pairs, 0 (nothing shared) to 1 (same letters in the same order)."""
    left, right = _pairs(a), _pairs(b)
    if not left or not right:
        return 0.0
    return 2 * len(left & right) / (len(left) + len(right))


# --- follow-ups ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenComplaint:
    """What the follow-up rule needs to know of one of the customer's open complaints."""

    complaint_id: str
    text: str
    order_ref: str | None
    last_message_at: datetime
    email_message_ids: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class NewMessage:
    """What the follow-up rule needs to know of the message just received."""

    text: str
    order_ref: str | None
    received_at: datetime
    replies_to: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class FollowUpMatch:
    """The complaint a message follows up, and why."""

    complaint_id: str
    reason: str


def _match(candidate: OpenComplaint, message: NewMessage, rule: FollowUpRule) -> str | None:
    if message.received_at - candidate.last_message_at > rule.window:
        return None
    if rule.email_thread and message.replies_to & candidate.email_message_ids:
        return "answers one of its e-mails"
    if rule.same_order and message.order_ref and message.order_ref == candidate.order_ref:
        return f"same order {message.order_ref}"
    similarity = text_similarity(message.text, candidate.text)
    if similarity >= rule.min_text_similarity:
        return f"text similarity {similarity:.2f} >= {rule.min_text_similarity:g}"
    return None


def find_follow_up(candidates: list[OpenComplaint], message: NewMessage, rule: FollowUpRule) -> FollowUpMatch | None:
    """The open complaint a message continues (the most recently active match), or None for a new complaint."""
    ordered = sorted(candidates, key=lambda c: c.last_message_at, reverse=True)
    for candidate in ordered[: rule.max_candidates]:
        reason = _match(candidate, message, rule)
        if reason:
            return FollowUpMatch(candidate.complaint_id, reason)
    return None
