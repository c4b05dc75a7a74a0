"""What every channel adapter produces, and the helpers adapters share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
)

from services.intake import normalize
from services.intake.normalize import NormalizeConfig
from shared.events.complaints import Exposure
from shared.events.vocabulary import Channel

# Hard caps on raw payload fields; they protect memory and reject garbage. The complaint text itself is
# then cut to NormalizeConfig.max_text_chars, so a long but genuine message is kept, not refused.
MAX_BODY_CHARS = 50_000
MAX_HTML_CHARS = 500_000
# Ids are stored in columns of fixed width: an external id (128) scoped by its platform, store or source
# still fits the 200 of an external reference; customer ids take 100, order references 64.
MAX_ID_CHARS = 128

Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_CHARS)]
CustomerId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
OrderRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Body = Annotated[str, StringConstraints(max_length=MAX_BODY_CHARS)]


def _context_country(info: ValidationInfo) -> str:
    context = info.context or {}
    return str(context.get("default_country", "CN"))


def _valid_phone(value: str | None, info: ValidationInfo) -> str | None:
    """Normalize a phone number to E.164 while validating, so errors name the field."""
    if value is None or not value.strip():
        return None
    try:
        return normalize.to_e164(value, _context_country(info))
    except normalize.PhoneNumberError as exc:
        raise ValueError(f"invalid phone number: {exc}") from exc


def _valid_email(value: str | None) -> str | None:
    """Lower-case and validate an e-mail address."""
    if value is None or not value.strip():
        return None
    try:
        return normalize.normalize_email(value)
    except normalize.EmailAddressError as exc:
        raise ValueError(str(exc)) from exc


def _required_email(value: str) -> str:
    """Like an optional address, but a blank one is an error."""
    if not value.strip():
        raise ValueError("an e-mail address is required")
    return _valid_email(value)  # type: ignore[return-value]


RequiredEmail = Annotated[str, StringConstraints(max_length=320), AfterValidator(_required_email)]
PhoneNumber = Annotated[str, StringConstraints(max_length=40), AfterValidator(_valid_phone)]
EmailAddress = Annotated[str, StringConstraints(max_length=320), AfterValidator(_valid_email)]


class StrictModel(BaseModel):
    """Base of native payloads: unknown fields are errors, so typos surface instead of data vanishing."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Attachment(StrictModel):
    """Metadata of an attachment; intake never keeps the content itself."""

    filename: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    content_type: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^[\w.+-]+/[\w.+-]+$", max_length=127)
    ] = "application/octet-stream"
    size_bytes: int = Field(0, ge=0, le=100 * 1024 * 1024)
    url: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ContactHints(BaseModel):
    """What the payload says about who the customer is, already normalized."""

    customer_id: str | None = None
    email: str | None = None
    phone: str | None = None
    social_handle: str | None = Field(None, description="platform:handle, e.g. weibo:小王爱吃饭")
    name: str | None = None

    def is_empty(self) -> bool:
        """Whether no way to identify the customer was given."""
        return not (self.customer_id or self.email or self.phone or self.social_handle)


class NormalizedComplaint(BaseModel):
    """One complaint in the same shape whatever channel it came from."""

    channel: Channel
    external_ref: str | None = None
    text: str = Field(min_length=1)
    subject: str | None = None
    language: str = "en"
    contact: ContactHints = Field(default_factory=ContactHints)
    order_ref: str | None = None
    exposure: Exposure = Field(default_factory=Exposure)
    occurred_at: datetime | None = None
    channel_details: dict[str, Any] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list)
    text_truncated: bool = False

    def classification_text(self) -> str:
        """Subject and body together, as the classifier reads them."""
        return f"{self.subject}\n{self.text}" if self.subject else self.text


class PayloadError(ValueError):
    """A payload that validated field by field but makes no complaint (for example an empty e-mail body)."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def build_complaint(
    config: NormalizeConfig,
    *,
    channel: Channel,
    text: str,
    text_field: tuple[str | int, ...],
    subject: str | None = None,
    external_ref: str | None = None,
    contact: ContactHints | None = None,
    order_ref: str | None = None,
    exposure: Exposure | None = None,
    occurred_at: datetime | None = None,
    channel_details: dict[str, Any] | None = None,
    attachments: list[Attachment] | None = None,
) -> NormalizedComplaint:
    """Clean and cut text and subject, detect the language, find an order reference, and assemble the result."""
    body = normalize.clean_text(text)
    if not body:
        raise PayloadError(text_field, "the complaint has no readable text")
    body, cut = normalize.truncate(body, config.max_text_chars)
    clean_subject = normalize.clean_text(subject) if subject else ""
    clean_subject = normalize.truncate(clean_subject, config.max_subject_chars)[0] if clean_subject else ""
    whole = f"{clean_subject}\n{body}" if clean_subject else body
    found_order = order_ref.strip().upper() if order_ref and order_ref.strip() else None
    return NormalizedComplaint(
        channel=channel,
        external_ref=external_ref,
        text=body,
        subject=clean_subject or None,
        language=normalize.detect_language(whole, config.zh_cjk_share),
        contact=contact or ContactHints(),
        order_ref=found_order or normalize.extract_order_ref(whole, config.order_ref_patterns),
        exposure=exposure or Exposure(),
        occurred_at=occurred_at,
        channel_details=channel_details or {},
        attachments=attachments or [],
        text_truncated=cut,
    )


P = TypeVar("P", bound=StrictModel)


class ChannelAdapter(ABC, Generic[P]):
    """Turns one channel's native payload into a :class:`NormalizedComplaint`."""

    channel: ClassVar[Channel]
    payload_model: ClassVar[type[StrictModel]]

    def parse(self, raw: Any, config: NormalizeConfig) -> P:
        """Validate a raw JSON object; raises pydantic.ValidationError with field paths."""
        model = self.payload_model.model_validate(raw, context={"default_country": config.default_country})
        return model  # type: ignore[return-value]

    @abstractmethod
    def to_complaint(self, payload: P, config: NormalizeConfig) -> NormalizedComplaint:
        """Map a validated payload to the normalized complaint."""

    def normalize(self, raw: Any, config: NormalizeConfig) -> NormalizedComplaint:
        """Validate and map in one step."""
        return self.to_complaint(self.parse(raw, config), config)

