"""Pure normalization rules for incoming complaint text and contact details.

Everything here is deterministic and free of I/O so the same rules apply to
every channel and can be tested in isolation: Unicode and whitespace clean-up,
HTML to text, stripping quoted e-mail replies, language detection, phone numbers
to E.164, e-mail addresses, order references, and masking for logs.
"""

# Chinese full-width punctuation (：，！) in patterns and docs is intentional.

from __future__ import annotations

import hashlib
import re
import unicodedata
from html.parser import HTMLParser
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_ORDER_PATTERNS: tuple[str, ...] = (
    # "order 2024112300123", "order no. A-778812", "order #A12345", "Order ID: 88123456"
    r"(?i)\border\s*(?:no\.?|number|num|id|ref(?:erence)?)?\s*[:#：]?\s*#?\s*"
    r"(?P<ref>[A-Z]{0,4}-?\d[A-Z0-9-]{4,31})",
    # "订单号：2024112300123", "订单编号 A12345", "订单是2024..."
    r"订单(?:号码|编号|号)?\s*(?:是|为)?\s*[:：#]?\s*(?P<ref>[A-Za-z]{0,4}-?\d[A-Za-z0-9-]{4,31})",
    # a bare "#A12345" reference
    r"(?<![\w&])#(?P<ref>[A-Za-z]{1,4}\d{4,31})\b",
)


class NormalizeConfig(BaseModel):
    """Tunable limits and defaults of normalization (DOMAIN.md gives no figures; these are sensible defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_text_chars: int = Field(8000, ge=200, le=200_000, description="Longer complaint text is truncated.")
    max_subject_chars: int = Field(300, ge=20, le=2000)
    default_country: str = Field("CN", description="Country assumed for phone numbers without a country code.")
    zh_cjk_share: float = Field(
        0.3, gt=0, le=1, description="Share of CJK among letters at or above which text counts as Chinese."
    )
    order_ref_patterns: tuple[str, ...] = DEFAULT_ORDER_PATTERNS

    @field_validator("default_country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        code = value.upper()
        if code not in COUNTRIES:
            raise ValueError(f"unknown country {value!r}; known: {', '.join(sorted(COUNTRIES))}")
        return code

    @field_validator("order_ref_patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, pattern in enumerate(value):
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {index} does not compile: {exc}") from exc
            if "ref" not in compiled.groupindex:
                raise ValueError(f"pattern {index} has no named group 'ref'")
        return value


# --- text -------------------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200c\u200d\u2060\ufeff]")
_INLINE_SPACE = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_RUN = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """NFC-normalize, drop control and zero-width characters, collapse spaces and blank lines, trim."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_INLINE_SPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_RUN.sub("\n\n", "\n".join(lines)).strip()


def truncate(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut text to at most ``max_chars`` characters, preferring a word boundary; say whether it was cut."""
    if len(text) <= max_chars:
        return text, False
    cut = text[: max_chars - 1]
    # Back up to a space only when it is close, so Chinese text (no spaces) is cut at the limit.
    space = cut.rfind(" ")
    if space > max_chars * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…", True


# --- HTML -------------------------------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "section"}
    | {"article", "header", "footer", "pre", "hr", "blockquote", "dd", "dt"}
)
_ITEM_TAGS = frozenset({"li", "tr", "dd", "dt", "br"})
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "noscript", "template"})
_VOID_TAGS = frozenset({"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"})
_QUOTE_MARKERS = ("gmail_quote", "yahoo_quoted", "moz-cite-prefix", "divrplyfwdmsg", "outlookmessageheader")


class _TextExtractor(HTMLParser):
    """Collects visible text, optionally skipping quoted-reply containers."""

    def __init__(self, drop_quotes: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.drop_quotes = drop_quotes
        self.parts: list[str] = []
        self.stack: list[str] = []
        self.skip_depth: int | None = None

    def _is_quote(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        if not self.drop_quotes:
            return False
        if tag == "blockquote":
            return True
        marks = " ".join((value or "") for name, value in attrs if name in ("class", "id")).lower()
        return any(marker in marks for marker in _QUOTE_MARKERS)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS and self.skip_depth is None:
            self.parts.append("\n")
            if tag == "li":
                self.parts.append("- ")
        if tag in _VOID_TAGS:
            return
        self.stack.append(tag)
        if self.skip_depth is None and (tag in _SKIP_TAGS or self._is_quote(tag, attrs)):
            self.skip_depth = len(self.stack)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.stack:
            return  # stray end tag in malformed HTML
        while self.stack:
            popped = self.stack.pop()
            if self.skip_depth is not None and len(self.stack) < self.skip_depth:
                self.skip_depth = None
            if popped == tag:
                break
        if tag in _BLOCK_TAGS and tag not in _ITEM_TAGS and self.skip_depth is None:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth is None:
            # HTML collapses source whitespace; line breaks come from block elements only.
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str, drop_quotes: bool = True) -> str:
    """Render HTML to plain text: visible text only, blocks on their own lines, quoted replies dropped."""
    parser = _TextExtractor(drop_quotes)
    parser.feed(html)
    parser.close()
    return clean_text("".join(parser.parts))


# --- quoted replies ---------------------------------------------------------------------------------------------

_REPLY_HEADER_LINE = (
    re.compile(r"^(?:on|le|am)\b.{0,300}\bwrote\s*:$", re.IGNORECASE),
    re.compile(r"^.{0,200}<[^<>\s]+@[^<>\s]+>\s*wrote\s*:$", re.IGNORECASE),
    re.compile(r"^-{2,}\s*original message\s*-{2,}$", re.IGNORECASE),
    re.compile(r"^.{0,300}写道\s*[:：]$"),
    re.compile(r"^-{2,}\s*原始邮件\s*-{2,}$"),
    re.compile(r"^-{2,}\s*回复的原邮件\s*-{2,}$"),
    re.compile(r"^_{8,}$"),  # Outlook's rule above the quoted header block
)
_HEADER_BLOCK_START = re.compile(r"^(?:from|发件人)\s*[:：]", re.IGNORECASE)
_HEADER_BLOCK_NEXT = re.compile(r"^(?:sent|date|to|subject|发送时间|日期|时间|收件人|主题)\s*[:：]", re.IGNORECASE)
_SIGNATURE_LINES = re.compile(
    r"^(?:sent from my \w+.*|get outlook for \w+.*|发自我的\s*\w+.*|来自\s*\w*\s*(?:邮箱|客户端).*)$", re.IGNORECASE
)


def _is_reply_header(lines: list[str], index: int) -> bool:
    """Whether the quoted part of a reply starts at ``lines[index]``."""
    line = lines[index].strip()
    # Clients wrap a long "On <date>, <name> wrote:" over two lines, so try the line joined with the next.
    joined = line + (" " + lines[index + 1].strip() if index + 1 < len(lines) else "")
    if any(p.match(line) or p.match(joined) for p in _REPLY_HEADER_LINE):
        return True
    if _HEADER_BLOCK_START.match(line):
        following = lines[index + 1 : index + 5]
        return any(_HEADER_BLOCK_NEXT.match(other.strip()) for other in following)
    return False


def strip_quoted_reply(text: str) -> str:
    """Remove the quoted earlier message of an e-mail reply and mobile signatures; keep the new words.

    Recognizes English ("On ... wrote:", "-----Original Message-----", "From:/Sent:" blocks, "> " lines) and
    Chinese ("在 ... 写道：", "-----原始邮件-----", "发件人：/发送时间：" blocks) forms. When nothing
    would remain, the text is returned unchanged so no customer words are lost.
    """
    lines = text.split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if _is_reply_header(lines, index) or stripped == "--":
            break
        if stripped.startswith(">") or _SIGNATURE_LINES.match(stripped):
            continue
        kept.append(line)
    result = clean_text("\n".join(kept))
    return result if result else clean_text(text)


# --- language ---------------------------------------------------------------------------------------------------


def _script_counts(text: str) -> tuple[int, int, int, int]:
    """Count Han, kana, hangul and Latin letters."""
    han = kana = hangul = latin = 0
    for char in text:
        code = ord(char)
        if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF or code >= 0x20000:
            han += 1
        elif 0x3040 <= code <= 0x30FF:
            kana += 1
        elif 0xAC00 <= code <= 0xD7AF:
            hangul += 1
        elif char.isalpha() and code < 0x0250:
            latin += 1
    return han, kana, hangul, latin


def detect_language(text: str, zh_cjk_share: float = 0.3) -> str:
    """Return "zh", "en", "ja", "ko" or "und" from the share of each script's letters.

    One Chinese character carries about as much as a short English word, so a modest share of CJK
    characters (``zh_cjk_share``, 0.3 by default) already makes mixed text Chinese.
    """
    han, kana, hangul, latin = _script_counts(text)
    letters = han + kana + hangul + latin
    if letters < 2:  # a stray letter in a reference number says nothing about the language
        return "und"
    if kana and (kana + han) / letters >= zh_cjk_share and kana >= han * 0.2:
        return "ja"
    if hangul / letters >= zh_cjk_share:
        return "ko"
    if han / letters >= zh_cjk_share:
        return "zh"
    return "en" if latin else "und"


# --- phone numbers ----------------------------------------------------------------------------------------------


class Country(NamedTuple):
    """Dialling facts needed to turn a national number into E.164."""

    calling_code: str
    trunk_prefix: str
    intl_prefix: str
    national_lengths: tuple[int, ...]


COUNTRIES: dict[str, Country] = {
    "CN": Country("86", "0", "00", (9, 10, 11)),
    "HK": Country("852", "", "001", (8,)),
    "MO": Country("853", "", "00", (8,)),
    "TW": Country("886", "0", "002", (8, 9)),
    "SG": Country("65", "", "000", (8,)),
    "US": Country("1", "1", "011", (10,)),
    "CA": Country("1", "1", "011", (10,)),
    "GB": Country("44", "0", "00", (9, 10)),
    "JP": Country("81", "0", "010", (9, 10)),
}

_PHONE_CHARS = re.compile(r"^\+?[\d\s\-.()/]+$")
_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_CN_LANDLINE = re.compile(r"^(?:10|2\d|[3-9]\d{2})\d{7,8}$")


class PhoneNumberError(ValueError):
    """A phone number that cannot be read as a valid E.164 number."""


def _international(digits: str) -> str:
    """Validate digits that already start with a country code."""
    if digits.startswith("86"):
        national = digits[2:]
        if not (_CN_MOBILE.match(national) or _CN_LANDLINE.match(national)):
            raise PhoneNumberError("not a valid Chinese mobile or landline number")
    elif digits.startswith("0") or not 8 <= len(digits) <= 15:
        raise PhoneNumberError("an international number has 8 to 15 digits after the country code")
    return "+" + digits


def to_e164(raw: str, default_country: str = "CN") -> str:
    """Turn a phone number as people type it into E.164 (``+8613812345678``).

    Accepts spaces, dashes, dots and parentheses, ``+`` or ``00``-style international prefixes, a
    ``(0)`` trunk marker, Chinese mobiles with or without 86, and national numbers of
    ``default_country``. Raises :class:`PhoneNumberError` with the reason when the number is invalid.
    """
    country = COUNTRIES.get(default_country.upper())
    if country is None:
        raise PhoneNumberError(f"unknown default country {default_country!r}")
    text = raw.strip().removeprefix("tel:").strip()
    if not text or not _PHONE_CHARS.match(text):
        raise PhoneNumberError("a phone number holds only digits, spaces, dashes, dots, parentheses and a leading +")
    text = text.replace("(0)", "")
    digits = re.sub(r"\D", "", text)
    if text.startswith("+"):
        return _international(digits)
    for prefix in dict.fromkeys((country.intl_prefix, "00")):
        if digits.startswith(prefix) and len(digits) - len(prefix) >= 8:
            return _international(digits[len(prefix) :])
    if country.calling_code == "86" and digits.startswith("86") and _CN_MOBILE.match(digits[2:]):
        return "+" + digits  # a Chinese mobile written with its country code but no "+"
    national = digits
    if country.trunk_prefix and national.startswith(country.trunk_prefix) and len(national) > 8:
        national = national[len(country.trunk_prefix) :]
    if len(national) not in country.national_lengths:
        raise PhoneNumberError(f"a national number of {default_country.upper()} has {country.national_lengths} digits")
    return _international(country.calling_code + national)


def try_e164(raw: str | None, default_country: str = "CN") -> str | None:
    """Like :func:`to_e164` but returns None for a missing or invalid number."""
    if not raw:
        return None
    try:
        return to_e164(raw, default_country)
    except PhoneNumberError:
        return None


# --- e-mail -----------------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]{2,}$")
_NAME_ADDR = re.compile(r"<([^<>]+)>\s*$")


class EmailAddressError(ValueError):
    """A string that is not a usable e-mail address."""


def normalize_email(raw: str) -> str:
    """Lower-case and validate an address; accepts the ``Name <addr@host>`` form."""
    text = unicodedata.normalize("NFC", raw).strip()
    match = _NAME_ADDR.search(text)
    if match:
        text = match.group(1).strip()
    text = text.removeprefix("mailto:").lower()
    if len(text) > 254 or not _EMAIL.match(text):
        raise EmailAddressError("not a valid e-mail address")
    return text


# --- order references -------------------------------------------------------------------------------------------


def extract_order_ref(text: str, patterns: tuple[str, ...] = DEFAULT_ORDER_PATTERNS) -> str | None:
    """Return the first order reference the patterns find (upper-cased), or None."""
    best: tuple[int, str] | None = None
    for pattern in patterns:
        match = re.search(pattern, text)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), match.group("ref").strip("-").upper())
    return best[1] if best else None


# --- masking for logs -------------------------------------------------------------------------------------------


def mask_phone(phone: str | None) -> str:
    """Keep the first three and last four characters of a phone number: ``+86*******5678``."""
    if not phone:
        return ""
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_email(email: str | None) -> str:
    """Keep the first letter of the local part and the domain: ``z***@example.com``."""
    if not email:
        return ""
    local, _, domain = email.partition("@")
    return (local[:1] + "***@" + domain) if domain else "***"


def mask_text(text: str | None) -> str:
    """Describe a message body without revealing it: its length and a short digest to correlate log lines."""
    if text is None:
        return ""
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"[{len(text)} chars sha256:{digest}]"


_EMAIL_IN_TEXT = re.compile(r"[^@\s<>()\[\],;:\"']+@[^@\s<>()\[\],;:\"']+\.\w{2,}")
_PHONE_IN_TEXT = re.compile(r"\+?\d[\d\s\-]{5,}\d")


def redact(text: str) -> str:
    """Mask e-mail addresses and phone-like digit runs inside free text (for error messages that go to logs)."""
    text = _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(re.sub(r"[\s\-]", "", m.group(0))), text)
