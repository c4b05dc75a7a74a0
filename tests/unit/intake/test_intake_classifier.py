"""The rule classifier: categories, urgency cues, departments and sentiment, each with its reasons."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.intake.classify import POLICY_FILE, Classifier, PolicyError, default_classifier, load_policy, parse_policy
from shared.events.complaints import Exposure
from shared.events.vocabulary import Category, Department, Sentiment, UrgencyCue


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return default_classifier()


def _policy_data() -> dict[str, Any]:
    return yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("How do I pair the earbuds with a second phone?", Category.PRODUCT_USAGE),
        ("洗衣机显示E21，水排不出去", Category.PRODUCT_USAGE),
        ("Someone logged into my account and changed my password", Category.ACCOUNT_ANOMALY),
        ("我的账号被盗了，余额少了1580元", Category.ACCOUNT_ANOMALY),
        ("The courier was rude and hung up on me", Category.SERVICE_COMPLAINT),
        ("客服态度很差，报修五天了没人联系我", Category.SERVICE_COMPLAINT),
        ("What is your return policy for opened electronics?", Category.POLICY_QUESTION),
        ("衣服吊牌剪了还能退吗？", Category.POLICY_QUESTION),
        ("Just wanted to say your staff were fantastic today", Category.OTHER),
        ("我们想跟贵公司谈商务合作", Category.OTHER),
    ],
)
def test_category_in_both_languages(classifier: Classifier, text: str, category: Category) -> None:
    assert classifier.classify(text).category is category


def test_every_decision_carries_its_reasons(classifier: Classifier) -> None:
    result = classifier.classify("My account was hacked and 500 yuan is gone! I will call my lawyer.")
    reasons = "\n".join(result.reasons)
    assert "category account_anomaly scored" in reasons
    assert 'cue.security.account_compromise w3: "hacked"' in reasons
    assert "cue.money_lost" in reasons and "cue.legal_threat" in reasons
    assert "department.accounts_security" in reasons
    assert "sentiment negative" in reasons
    assert f"policy classification {classifier.policy.version}" in reasons


def test_no_evidence_falls_back_to_the_most_common_category_and_says_so(classifier: Classifier) -> None:
    result = classifier.classify("Hello?")
    assert result.category is Category.PRODUCT_USAGE
    assert result.reasons[0].startswith("category product_usage by default")
    assert result.departments == [Department.PRODUCT_SUPPORT]


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("I think I've been hacked, there is a login I don't recognise", UrgencyCue.SECURITY),
        ("收到验证码后账户密码就被改了，不是我本人操作的", UrgencyCue.SECURITY),
        ("You charged my card twice for the same order", UrgencyCue.MONEY_LOST),
        ("同一笔充值扣了三次款，请退回多扣的钱", UrgencyCue.MONEY_LOST),
        ("The charger smelled of burning plastic and started to smoke", UrgencyCue.SAFETY),
        ("充电宝鼓包了还发烫，差点着火", UrgencyCue.SAFETY),
        ("If this is not fixed I will sue you in small claims court", UrgencyCue.LEGAL_THREAT),
        ("再不解决我就去12315投诉", UrgencyCue.LEGAL_THREAT),
        ("I'm posting this on Twitter so everyone can see", UrgencyCue.MEDIA_EXPOSURE),
        ("再拖下去我就发微博曝光你们", UrgencyCue.MEDIA_EXPOSURE),
        ("This is the third time I'm writing about this fridge", UrgencyCue.REPEATED_CONTACT),
        ("已经反映过很多次了，还是没人处理", UrgencyCue.REPEATED_CONTACT),
    ],
)
def test_urgency_cues_in_text(classifier: Classifier, text: str, cue: UrgencyCue) -> None:
    assert cue in classifier.classify(text).urgency_cues


def test_plain_question_has_no_cues(classifier: Classifier) -> None:
    assert classifier.classify("Is there a way to set the rice cooker timer?").urgency_cues == []


def test_repeated_contact_from_the_contact_count(classifier: Classifier) -> None:
    text = "The printer prints blank pages."
    assert UrgencyCue.REPEATED_CONTACT not in classifier.classify(text, prior_contacts=1).urgency_cues
    result = classifier.classify(text, prior_contacts=2)
    assert UrgencyCue.REPEATED_CONTACT in result.urgency_cues
    assert "cue.repeated_contact: 2 earlier contacts (>= 2)" in result.reasons


def test_media_exposure_from_a_public_post_with_reach(classifier: Classifier) -> None:
    text = "The printer prints blank pages."
    big = Exposure(public=True, reach=25_000, platform="weibo")
    result = classifier.classify(text, exposure=big)
    assert UrgencyCue.MEDIA_EXPOSURE in result.urgency_cues
    assert any("public weibo post reaching 25000" in reason for reason in result.reasons)


@pytest.mark.parametrize(
    "exposure",
    [Exposure(public=False, reach=1_000_000, platform="wechat"), Exposure(public=True, reach=999, platform="x"), None],
)
def test_no_media_exposure_for_private_or_small_posts(classifier: Classifier, exposure: Exposure | None) -> None:
    assert UrgencyCue.MEDIA_EXPOSURE not in classifier.classify("blank pages", exposure=exposure).urgency_cues


def test_cues_come_out_in_vocabulary_order(classifier: Classifier) -> None:
    result = classifier.classify("hacked account, money is gone, I'll sue", prior_contacts=3)
    assert result.urgency_cues == sorted(result.urgency_cues, key=list(UrgencyCue).index)


@pytest.mark.parametrize(
    ("text", "departments"),
    [
        ("My wallet shows a withdrawal to a bank card that is not mine", {Department.BILLING}),
        ("快递员把包裹扔在门口，还要我付费取件", {Department.LOGISTICS, Department.BILLING}),
        ("Does the warranty cover water damage?", {Department.POLICY_DESK}),
        ("账号被盗了", {Department.ACCOUNTS_SECURITY}),
    ],
)
def test_departments_involved(classifier: Classifier, text: str, departments: set[Department]) -> None:
    assert departments <= set(classifier.classify(text).departments)


@pytest.mark.parametrize(
    ("text", "sentiment"),
    [
        ("This is the worst service ever, absolutely unacceptable", Sentiment.NEGATIVE),
        ("I am not happy with the repair", Sentiment.NEGATIVE),
        ("对这次服务很不满意", Sentiment.NEGATIVE),
        ("服务不专业", Sentiment.NEGATIVE),
        ("Thank you for the quick help, fantastic service", Sentiment.POSITIVE),
        ("非常感谢，必须给你们点个赞", Sentiment.POSITIVE),
        ("What time does the store open?", Sentiment.NEUTRAL),
    ],
)
def test_sentiment_with_negation(classifier: Classifier, text: str, sentiment: Sentiment) -> None:
    result = classifier.classify(text)
    assert result.sentiment is sentiment
    assert -1 < result.sentiment_score < 1


def test_english_words_match_their_inflections(classifier: Classifier) -> None:
    assert UrgencyCue.SAFETY in classifier.classify("the plug sparked").urgency_cues
    assert UrgencyCue.SAFETY in classifier.classify("two outlets sparking").urgency_cues


def test_same_input_same_output(classifier: Classifier) -> None:
    text = "退款退了二十天还没到账"
    assert classifier.classify(text) == classifier.classify(text)


def test_policy_changes_take_effect_without_code() -> None:
    data = _policy_data()
    data["media_min_public_reach"] = 10
    data["default_category"] = "other"
    policy = parse_policy(data)
    result = Classifier(policy).classify("zzz", exposure=Exposure(public=True, reach=11))
    assert result.category is Category.OTHER
    assert result.urgency_cues == [UrgencyCue.MEDIA_EXPOSURE]


def test_packaged_policy_loads_and_is_versioned() -> None:
    policy = load_policy()
    assert policy.version
    assert set(policy.categories) == set(Category)
    assert set(policy.cues) == set(UrgencyCue)
    assert set(policy.departments) == set(Department)


def test_missing_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read classification policy"):
        load_policy(tmp_path / "nope.yaml")


def test_policy_that_is_not_yaml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: [unclosed", encoding="utf-8")
    with pytest.raises(PolicyError, match="cannot read classification policy"):
        load_policy(path)


@pytest.mark.parametrize(
    ("mutate", "path_and_message"),
    [
        (lambda d: d.pop("version"), "version: Field required"),
        (
            lambda d: d["categories"]["product_usage"]["rules"][0].update(weight=0),
            "categories.product_usage.rules.0.weight",
        ),
        (lambda d: d["cues"]["safety"]["rules"][0].update(patterns=["(unclosed"]), "cues.safety.rules.0.patterns"),
        (lambda d: d["categories"].update(gossip=d["categories"]["other"]), "categories.gossip.[key]"),
        (lambda d: d.update(tie_break=["other"]), "tie_break: Value error, tie_break must list every category"),
        (lambda d: d["departments"]["billing"]["rules"][0].update(en=[], zh=[], patterns=[]), "has no keywords"),
        (lambda d: d["sentiment"].update(negative_at=0.5), "sentiment.negative_at"),
        (lambda d: d.update(surprise=True), "surprise: Extra inputs are not permitted"),
    ],
)
def test_bad_policy_field_is_named(mutate: Callable[[dict[str, Any]], object], path_and_message: str) -> None:
    data = _policy_data()
    mutate(data)
    with pytest.raises(PolicyError) as exc:
        parse_policy(data, "test policy")
    assert "test policy is invalid" in str(exc.value)
    assert path_and_message in str(exc.value)


def test_narrowing_to_the_literals_of_a_text_finds_what_every_rule_finds_whole(classifier: Classifier) -> None:
    """Each rule, tried only with the alternatives whose literal the text has, matches what it matches whole."""
    from services.intake.classify import _compiled, _CoreIndex, _prepare, _snippets
    from tests.unit.intake.labelled import load

    policy = classifier.policy
    rules = [rule for rs in (*policy.categories.values(), *policy.cues.values(), *policy.departments.values())
             for rule in rs.rules]
    cores = set().union(*(rule.cores() for rule in rules), policy.sentiment.cores())
    index = _CoreIndex(cores)
    texts = [_prepare(row["text"]) for row in load()] + ["", "a", "It's NOT working!!", "我的app坏了，去12315投诉"]
    for text in texts:
        lowered = text.lower()
        present = index.present(lowered)
        assert present == {core for core in cores if core in lowered}, text
        for rule in rules:
            whole = _snippets(_compiled(tuple(part for part, _ in rule._parts)), lowered)
            assert _snippets(rule.matcher().regex(present), lowered) == whole, (rule.name, text)


def test_keywords_and_patterns_match_whatever_the_case_of_the_policy_or_the_text() -> None:
    """Rules match the lower-cased text; a policy's own upper-case keywords and patterns still match."""
    data = _policy_data()
    data["categories"]["other"]["rules"] = [
        {"name": "shouting_codes", "weight": 5, "en": ["Double Charged"], "patterns": [r"INV-[A-Z]{2}\d+"]}
    ]
    classifier = Classifier(parse_policy(data))
    for text in ("I was DOUBLE CHARGED on inv-ab12", "i was double charged on INV-AB12"):
        reasons = "\n".join(classifier.classify(text).reasons)
        assert 'category.other.shouting_codes w5: "double charged", "inv-ab12"' in reasons, text
