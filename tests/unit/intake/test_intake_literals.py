"""The literals a rule's own pattern needs: what lets the classifier skip patterns a text cannot match."""

from __future__ import annotations

import re

import pytest

from services.intake.classify import POLICY_FILE, load_policy
from services.intake.literals import required_literals
from tests.unit.intake.labelled import load


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        (r"tried (?:\w+|\d+) times", {"tried "}),
        (r"(?:two|three|\d+) (?:emails|calls)", {" emails", " calls"}),
        (r"(?:打|找|问)(?:了|过)?\s*[两三\d]+\s*(?:次|趟)", {"次", "趟"}),
        (r"(?<![A-Za-z])[Ee]\d{1,3}(?![\d])", {"e"}),
        (r"(?i:REFUND) (?:now|today)", {"refund now", "refund today"}),
        (r"(a|b)(c|d)e", {"ace", "ade", "bce", "bde"}),
        (r"[^a]bc", {"bc"}),
        (r"x{2,}yz", {"yz"}),
        (r"[a-z]+ing", {"ing"}),
        (r"(a)\1?", {"a"}),
    ],
)
def test_the_most_telling_literals_are_read_off_the_pattern(pattern: str, literals: set[str]) -> None:
    assert required_literals(pattern) == literals


@pytest.mark.parametrize("pattern", [r"a|", r"x*", r".*", r"\d+", r"[a-z]+", r"(?:foo)?", r"(?:"])
def test_nothing_is_claimed_when_a_match_can_do_without_a_literal(pattern: str) -> None:
    assert required_literals(pattern) is None


def test_every_match_of_the_shipped_patterns_holds_one_of_their_literals() -> None:
    """Soundness on real texts: a text the pattern matches always has a literal the pattern says it needs."""
    policy = load_policy(POLICY_FILE)
    rules = [rule for rs in (*policy.categories.values(), *policy.cues.values(), *policy.departments.values())
             for rule in rs.rules]
    texts = [row["text"].lower() for row in load()] + [
        "tried 3 times", "我打了三次电话", "反映过很多次", "显示e21", "报e5", "already complained twice",
    ]
    checked = 0
    for pattern in [p for rule in rules for p in rule.patterns]:
        literals = required_literals(pattern)
        regex = re.compile(pattern, re.IGNORECASE)
        for text in texts:
            if regex.search(text) and literals is not None:
                checked += 1
                assert any(literal in text for literal in literals), (pattern, text)
    assert checked > 50
