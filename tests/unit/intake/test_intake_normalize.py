"""Normalization rules: text clean-up, HTML, quoted replies, language, phones, e-mails, order refs, masking."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.intake.normalize import (
    EmailAddressError,
    NormalizeConfig,
    PhoneNumberError,
    clean_text,
    detect_language,
    extract_order_ref,
    html_to_text,
    mask_email,
    mask_phone,
    mask_text,
    normalize_email,
    redact,
    strip_quoted_reply,
    to_e164,
    truncate,
    try_e164,
)

# --- clean_text / truncate ---------------------------------------------------------------------------------------


def test_clean_text_composes_unicode_to_nfc() -> None:
    assert clean_text("Cafe\u0301") == "Café"
    assert clean_text("Cafe\u0301") == "Caf\u00e9"


def test_clean_text_drops_control_and_zero_width_characters() -> None:
    assert clean_text("he\u200bllo\x00 wor\ufeffld\x07") == "hello world"


def test_clean_text_trims_lines_collapses_spaces_and_blank_runs() -> None:
    raw = "  first\u3000\u3000line  \r\n\r\n\r\n\r\n second\tline \n  "
    assert clean_text(raw) == "first line\n\nsecond line"


def test_truncate_leaves_short_text_alone() -> None:
    assert truncate("short", 10) == ("short", False)


def test_truncate_cuts_at_a_word_boundary_and_marks_the_cut() -> None:
    text, cut = truncate("alpha beta gamma delta epsilon", 25)
    assert cut is True
    assert text == "alpha beta gamma delta…"
    assert len(text) <= 25


def test_truncate_cuts_chinese_at_the_limit() -> None:
    text, cut = truncate("退款" * 100, 51)
    assert cut is True
    assert len(text) == 51
    assert text.endswith("…")


# --- HTML --------------------------------------------------------------------------------------------------------


def test_html_to_text_keeps_visible_text_with_line_structure() -> None:
    html = (
        "<html><head><title>t</title><style>p{color:red}</style><script>alert(1)</script></head>"
        "<body><p>Hello&nbsp;there &amp; welcome</p><div>line <b>two</b><br>three</div>"
        "<ul><li>first</li><li>second</li></ul></body></html>"
    )
    assert html_to_text(html) == "Hello there & welcome\n\nline two\nthree\n\n- first\n- second"


@pytest.mark.parametrize(
    "quote",
    [
        "<blockquote>old words</blockquote>",
        '<div class="gmail_quote">On Mon wrote:<p>old words</p></div>',
        '<div id="divRplyFwdMsg"><b>From:</b> old words</div>',
        '<div class="yahoo_quoted">old words</div>',
    ],
)
def test_html_to_text_drops_quoted_reply_containers(quote: str) -> None:
    assert html_to_text(f"<p>new words</p>{quote}") == "new words"


def test_html_to_text_can_keep_quotes() -> None:
    assert "old words" in html_to_text("<p>new</p><blockquote>old words</blockquote>", drop_quotes=False)


def test_html_to_text_survives_malformed_markup() -> None:
    assert html_to_text("<p>broken <b>bold</i></div> text</p></span>") == "broken bold text"


# --- quoted replies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "On Mon, 18 Nov 2024 at 10:00, Support <support@shop.example.com> wrote:\n> We are looking into it.",
        "On Mon, 18 Nov 2024 at 10:00, Customer Support Team\n<support@shop.example.com> wrote:\n> Hi",
        "-----Original Message-----\nFrom: Support\nSent: Monday\n\nWe are looking into it.",
        "________________________________\nFrom: Support <support@shop.example.com>\nSent: 18 November 2024\nTo: me",
        "From: Support <support@shop.example.com>\nDate: Mon, 18 Nov 2024\nSubject: Re: refund\n\nHello",
        "在 2024年11月18日 10:00，客服 <kefu@shop.example.cn> 写道：\n> 您好",
        "张三 <zhang@example.cn> 于2024年11月18日周一 10:00写道：\n> 您好",
        "-----原始邮件-----\n发件人：客服\n发送时间：2024年11月18日\n您好",
        '------------------ 原始邮件 ------------------\n发件人: "客服"\n发送时间: 2024年11月2日\n您好',
        "发件人：客服 <kefu@shop.example.cn>\n发送时间：2024年11月18日 10:00\n收件人：我\n主题：回复",
    ],
)
def test_quoted_reply_is_stripped(reply: str) -> None:
    assert strip_quoted_reply(f"Still broken, please help.\n\n{reply}") == "Still broken, please help."


def test_quote_marker_lines_and_mobile_signatures_are_removed() -> None:
    text = "My answer\n> quoted line\n>> older line\nmore of my answer\n\nSent from my iPhone\n发自我的iPhone"
    assert strip_quoted_reply(text) == "My answer\nmore of my answer"


def test_signature_after_the_delimiter_is_dropped() -> None:
    assert strip_quoted_reply("The fridge is leaking.\n--\nLi Wei\nACME Ltd.") == "The fridge is leaking."


def test_a_message_that_is_only_a_quote_is_kept_whole() -> None:
    text = "> the only thing here is a quote"
    assert strip_quoted_reply(text) == text


def test_words_like_from_inside_the_message_do_not_cut_it() -> None:
    text = "From: my side, the order never came.\nI waited two weeks."
    assert strip_quoted_reply(text) == text


# --- language ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("我的账号被盗了，请马上冻结", "zh"),
        ("My account was hacked, please lock it", "en"),
        ("我的iPhone 15 Pro屏幕坏了", "zh"),  # mixed: Chinese characters weigh more than their count suggests
        ("Order 订单 arrived broken and the box was open", "en"),
        ("2024-11-23 12:00 #A12345", "und"),
        ("注文した商品がまだ届きません", "ja"),
        ("주문한 상품이 아직 도착하지 않았습니다", "ko"),
    ],
)
def test_language_is_detected_from_script_shares(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_mixed_text_threshold_is_configurable() -> None:
    text = "Refund for 订单 please, the item is broken and I want money back"
    assert detect_language(text) == "en"
    assert detect_language(text, zh_cjk_share=0.02) == "zh"


# --- phone numbers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13812345678", "+8613812345678"),
        ("138 1234 5678", "+8613812345678"),
        ("138-1234-5678", "+8613812345678"),
        ("+86 138-1234-5678", "+8613812345678"),
        ("+86 (138) 1234 5678", "+8613812345678"),
        ("0086 13812345678", "+8613812345678"),
        ("8613812345678", "+8613812345678"),
        ("tel:+8613812345678", "+8613812345678"),
        ("010-12345678", "+861012345678"),
        ("021 6123 4567", "+862161234567"),
        ("0755-8888 1234", "+8675588881234"),
        ("400-820-8820", "+864008208820"),
        ("+1 (415) 555-2671", "+14155552671"),
        ("001 415 555 2671", "+14155552671"),
        ("+44 (0)20 7946 0958", "+442079460958"),
        ("+852 9123 4567", "+85291234567"),
    ],
)
def test_phone_numbers_become_e164(raw: str, e164: str) -> None:
    assert to_e164(raw) == e164


@pytest.mark.parametrize(
    ("raw", "country", "e164"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("1-415-555-2671", "US", "+14155552671"),
        ("9123 4567", "HK", "+85291234567"),
    ],
)
def test_national_numbers_follow_the_default_country(raw: str, country: str, e164: str) -> None:
    assert to_e164(raw, country) == e164


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "12345",
        "call me",
        "+86 12345678901",
        "+86 0123456789",
        "1381234567x",
        "+0 123456789",
        "+1234567",
        "138123456789",
    ],
)
def test_invalid_phone_numbers_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(PhoneNumberError):
        to_e164(raw)
    assert try_e164(raw) is None


def test_unknown_default_country_is_refused() -> None:
    with pytest.raises(PhoneNumberError, match="unknown default country"):
        to_e164("13812345678", "XX")


# --- e-mail ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "email"),
    [
        ("Zhang.Wei@Example.COM", "zhang.wei@example.com"),
        ("  Zhang Wei <Zhang.Wei@Example.com> ", "zhang.wei@example.com"),
        ('"Wei, Zhang" <z.wei+shop@mail.example.cn>', "z.wei+shop@mail.example.cn"),
        ("mailto:LI@QQ.COM", "li@qq.com"),
    ],
)
def test_emails_are_lower_cased_and_unwrapped(raw: str, email: str) -> None:
    assert normalize_email(raw) == email


@pytest.mark.parametrize(
    "raw", ["", "not-an-email", "a@b", "two@@example.com", "sp ace@example.com", "x@" + "a" * 260 + ".cn"]
)
def test_invalid_emails_are_refused(raw: str) -> None:
    with pytest.raises(EmailAddressError):
        normalize_email(raw)


# --- order references --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("Hi, my order 2024112300123 arrived broken", "2024112300123"),
        ("Order no. A-778812 never came", "A-778812"),
        ("order #A12345 is missing a part", "A12345"),
        ("Order ID: 88123456", "88123456"),
        ("订单号：2024112300123 还没发货", "2024112300123"),
        ("我的订单编号是 so88231，麻烦查一下", "SO88231"),
        ("请查一下订单2024112300123的物流", "2024112300123"),
        ("see #A12345 please", "A12345"),
    ],
)
def test_order_reference_is_extracted(text: str, ref: str) -> None:
    assert extract_order_ref(text) == ref


@pytest.mark.parametrize(
    "text",
    [
        "the order arrived late, ordered 2 weeks ago",
        "order 2023 was fine",
        "订单还没到",
        "call me at 13812345678",
        "&#12345;",
    ],
)
def test_no_order_reference_when_there_is_none(text: str) -> None:
    assert extract_order_ref(text) is None


def test_the_earliest_reference_wins_across_patterns() -> None:
    assert extract_order_ref("#B99887 first, then order 2024112300123") == "B99887"


def test_order_patterns_are_configurable() -> None:
    config = NormalizeConfig(order_ref_patterns=(r"\bPO-(?P<ref>\d{6})\b",))
    assert extract_order_ref("see PO-123456 and order 2024112300123", config.order_ref_patterns) == "123456"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("order_ref_patterns", ("(unclosed",), "does not compile"),
        ("order_ref_patterns", (r"order \d+",), "no named group 'ref'"),
        ("default_country", "XX", "unknown country"),
        ("max_text_chars", 10, "greater than or equal to 200"),
        ("zh_cjk_share", 0, "greater than 0"),
        ("surprise", 1, "Extra inputs are not permitted"),
    ],
)
def test_bad_normalize_config_names_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        NormalizeConfig(**{field: value})
    error = exc.value.errors()[0]
    assert error["loc"][0] == field
    assert message in str(exc.value)


def test_default_country_is_upper_cased() -> None:
    assert NormalizeConfig(default_country="us").default_country == "US"


# --- masking -----------------------------------------------------------------------------------------------------


def test_mask_phone_keeps_only_prefix_and_last_four() -> None:
    assert mask_phone("+8613812345678") == "+86*******5678"
    assert mask_phone("12345") == "*****"
    assert mask_phone(None) == ""


def test_mask_email_keeps_first_letter_and_domain() -> None:
    assert mask_email("zhang.wei@example.com") == "z***@example.com"
    assert mask_email("nonsense") == "***"
    assert mask_email(None) == ""


def test_mask_text_reveals_length_and_digest_only() -> None:
    masked = mask_text("我的账号被盗了")
    assert masked.startswith("[7 chars sha256:")
    assert "账号" not in masked
    assert mask_text("same") == mask_text("same")


def test_redact_masks_addresses_and_numbers_inside_free_text() -> None:
    out = redact("call 138 1234 5678 or write to li.wei@example.com about it")
    assert "1234 5678" not in out and "li.wei" not in out
    assert "138****5678" in out and "l***@example.com" in out
