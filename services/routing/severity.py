"""The tier function: a pure, explainable severity for a complaint.

Start from the category's base tier; every matching rule lifts the tier by a
number of steps, but not beyond the rule's ceiling (``up_to``), and may set a
floor (``at_least``). Among the rules of one kind only the strongest match
counts, so one fact (a viral post, a third contact) is never counted twice.
The combined result does not depend on the order in which rules are read:

    lifted = max(base - sum(raises), most severe ceiling among lifting rules)
    tier   = most severe of (base, lifted, floors)
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from services.routing.policy import SEVERITY_ORDER, Raise, RoutingPolicy, ThresholdRule, severity_index
from shared.events.complaints import ComplaintReceived
from shared.events.vocabulary import CustomerTier, Severity


class SeverityAssessment(BaseModel):
    """A tier with the reasons that produced it, and whether the case is complex."""

    model_config = ConfigDict(frozen=True)

    severity: Severity
    reasons: list[str]
    complex: bool
    complex_reasons: list[str]


@dataclass(frozen=True)
class _Match:
    """A rule that matched, in the group where only the strongest match counts."""

    group: str
    rule: Raise
    reason: str

    def strength(self) -> tuple[int, int, int]:
        floor = severity_index(self.rule.at_least) if self.rule.at_least else len(SEVERITY_ORDER)
        return self.rule.raise_, -severity_index(self.rule.up_to), -floor


def _effect(rule: Raise) -> str:
    parts = []
    if rule.raise_:
        suffix = "" if rule.up_to == Severity.P1 else f" (not beyond {rule.up_to.value})"
        parts.append(f"+{rule.raise_} step{'s' if rule.raise_ > 1 else ''}{suffix}")
    if rule.at_least:
        parts.append(f"at least {rule.at_least.value}")
    return ", ".join(parts)


def _strongest_threshold(rules: list[ThresholdRule], value: int) -> ThresholdRule | None:
    matching = [rule for rule in rules if value >= rule.min]
    return max(matching, key=lambda rule: (rule.raise_, -severity_index(rule.up_to), rule.min), default=None)


def _matches(complaint: ComplaintReceived, tier: CustomerTier, policy: RoutingPolicy) -> list[_Match]:
    """Every rule that matches the complaint, tagged with its group."""
    rules = policy.severity
    found: list[_Match] = []
    for cue in dict.fromkeys(complaint.classification.urgency_cues):
        if cue in rules.urgency_cues:
            group = rules.cue_groups.get(cue, f"cue:{cue.value}")
            found.append(_Match(group, rules.urgency_cues[cue], f"urgency cue {cue.value}"))
    classification = complaint.classification
    for sentiment_rule in rules.sentiment:
        score_ok = sentiment_rule.max_score is None or classification.sentiment_score <= sentiment_rule.max_score
        if classification.sentiment == sentiment_rule.sentiment and score_ok:
            detail = f" (score {classification.sentiment_score:g})" if sentiment_rule.max_score is not None else ""
            found.append(_Match("sentiment", sentiment_rule, f"{classification.sentiment.value} sentiment{detail}"))
    if tier in rules.customer_tier:
        found.append(_Match("customer_tier", rules.customer_tier[tier], f"customer tier {tier.value}"))
    signals = {
        "public_reach": (complaint.exposure.reach if complaint.exposure.public else 0, "public post with reach {}"),
        "repeat_contacts_30d": (complaint.repeat_contacts_30d, "{} earlier contacts in 30 days"),
        "departments": (len(set(classification.departments)), "{} departments involved"),
    }
    for group, (value, text) in signals.items():
        rule = _strongest_threshold(getattr(rules, group), value)
        if rule is not None:
            found.append(_Match(group, rule, text.format(value)))
    return found


def _strongest_per_group(matches: list[_Match]) -> list[_Match]:
    best: dict[str, _Match] = {}
    for match in matches:
        if match.group not in best or match.strength() > best[match.group].strength():
            best[match.group] = match
    return list(best.values())


def assess_severity(
    complaint: ComplaintReceived, customer_tier: CustomerTier, policy: RoutingPolicy
) -> SeverityAssessment:
    """Severity of a complaint with one reason per rule applied, in a stable order."""
    category = complaint.classification.category
    base = severity_index(policy.severity.category_base[category])
    reasons = [f"category {category.value}: base {SEVERITY_ORDER[base].value}"]
    applied = _strongest_per_group(_matches(complaint, customer_tier, policy))
    lifting = [m for m in applied if m.rule.raise_]
    result = base
    if lifting:
        ceiling = min(severity_index(m.rule.up_to) for m in lifting)
        result = min(base, max(base - sum(m.rule.raise_ for m in lifting), ceiling))
    floors = [severity_index(m.rule.at_least) for m in applied if m.rule.at_least]
    result = max(0, min([result, *floors]))
    reasons += [f"{m.reason}: {_effect(m.rule)}" for m in applied]
    reasons.append(f"result {SEVERITY_ORDER[result].value}")
    is_complex, complex_reasons = _complexity(complaint, policy)
    return SeverityAssessment(
        severity=SEVERITY_ORDER[result], reasons=reasons, complex=is_complex, complex_reasons=complex_reasons
    )


def _complexity(complaint: ComplaintReceived, policy: RoutingPolicy) -> tuple[bool, list[str]]:
    """Whether a specialist must be engaged, with the reasons."""
    rules = policy.complex
    departments = len(set(complaint.classification.departments))
    reasons = []
    if departments >= rules.min_departments:
        reasons.append(f"{departments} departments involved")
    if complaint.repeat_contacts_30d >= rules.min_repeat_contacts_30d:
        reasons.append(f"{complaint.repeat_contacts_30d} earlier contacts in 30 days")
    cues = complaint.classification.urgency_cues
    reasons += [f"urgency cue {cue.value}" for cue in rules.urgency_cues if cue in cues]
    return bool(reasons), reasons
