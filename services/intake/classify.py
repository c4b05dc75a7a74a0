"""A pure, explainable rule classifier for complaint text (Chinese and English).

The rules live in ``classification.yaml`` (versioned): weighted keyword and regex rules per category,
urgency cue and department, and a sentiment lexicon. Every decision carries the rules that produced it,
so routing and operators can see why. No network, no model download: the same input always gives
the same output.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from services.intake.literals import required_literals
from shared.events.complaints import Classification, Exposure
from shared.events.vocabulary import Category, Department, Sentiment, UrgencyCue

POLICY_FILE = Path(__file__).with_name("classification.yaml")
_MAX_TERMS_IN_REASON = 3


def _is_cjk_term(term: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in term)


def _core(term: str) -> str:
    """A literal every match of the term contains (its first word, lower-cased): a cheap pre-check."""
    return term.split()[0].rstrip("*").lower() if term.split() else term


@lru_cache(maxsize=8192)
def _compiled(parts: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for the alternatives that can match a given text (cached: texts repeat their word sets).

    It runs on lower-cased text: keywords are lower-cased and a rule's own patterns carry their
    case-insensitive flag (``_pattern_regex``), so no alternative pays for case folding at every position.
    """
    return re.compile("|".join(parts))


def _pattern_regex(pattern: str) -> str:
    """A rule's own regular expression, case-insensitive as the policy file promises."""
    return f"(?i:{pattern})"


def _pattern_parts(pattern: str) -> list[tuple[str, str | None]]:
    """A rule's own regex with each literal it needs (one entry per literal; None: tried on every text)."""
    regex = _pattern_regex(pattern)
    needs = required_literals(pattern)
    return [(regex, literal) for literal in sorted(needs)] if needs else [(regex, None)]


def _term_regex(term: str) -> str:
    """Regex for one keyword: CJK terms match as substrings, others as whole words; ``*`` ends a prefix."""
    term = term.lower()
    if _is_cjk_term(term):
        return re.escape(term)
    words = term.split()
    body = r"\s+".join(re.escape(word) for word in words)
    prefix = body.endswith(r"\*")
    body = body.removesuffix(r"\*")
    # ASCII lookarounds instead of \b: terms may start or end with punctuation ("n't", "#"), and in mixed
    # text a Latin term touches Chinese characters ("去12315投诉", "我的app坏了"), which \w would count as letters.
    # A plain English word also matches its common inflections ("spark" finds "sparks", "sparked",
    # "sparking"); phrases only their plural, so "log in" does not become "log ins".
    inflections = r"(?:s|es)?" if " " in term else r"(?:s|es|ed|d|ing)?"
    suffix = r"[A-Za-z0-9_]*" if prefix else inflections + r"(?![A-Za-z0-9_])"
    # The look-behind goes after the first character (two wide, over the character before it and the
    # first), so every alternative starts with a literal and the regex engine skips to where one occurs
    # instead of trying each alternative at every position.
    first = re.escape(words[0][0])
    return first + r"(?<![A-Za-z0-9_].)" + body[len(first):] + suffix


class _CoreIndex:
    """Which of many literals occur in a text, looked up by the text's character pairs instead of one by one.

    A literal occurs in a text only where its first two characters do, so testing the literals that start
    with a pair the text has finds exactly the ones a test of every literal would (shorter ones are tested
    directly), at a fraction of the cost.
    """

    def __init__(self, cores: set[str]) -> None:
        by_pair: dict[str, list[str]] = {}
        for core in sorted(cores):
            if len(core) >= 2:
                by_pair.setdefault(core[:2], []).append(core)
        self._by_pair = {pair: tuple(found) for pair, found in by_pair.items()}
        self._short = tuple(core for core in sorted(cores) if len(core) < 2)

    def present(self, lowered: str) -> frozenset[str]:
        """The literals that occur in ``lowered`` (a lower-cased text)."""
        found = [core for core in self._short if core in lowered]
        by_pair = self._by_pair
        for pair in {lowered[i : i + 2] for i in range(len(lowered) - 1)}:
            for core in by_pair.get(pair, ()):
                if core in lowered:
                    found.append(core)
        return frozenset(found)


_NARROWED_CACHE = 4096


class _Narrowed:
    """Alternatives, each with a literal it needs (None: always tried), narrowed to the literals of a text.

    Leaving out alternatives that cannot match gives the same matches as the whole alternation. The regex of
    each set of present literals is kept (texts repeat their word sets).
    """

    __slots__ = ("_cache", "_cores", "_parts", "_unconditional")

    def __init__(self, parts: tuple[tuple[str, str | None], ...]) -> None:
        self._parts = parts
        self._cores = frozenset(core for _, core in parts if core is not None)
        self._unconditional = any(core is None for _, core in parts)
        self._cache: dict[frozenset[str], re.Pattern[str] | None] = {}

    def regex(self, present: frozenset[str]) -> re.Pattern[str] | None:
        """The alternation of the alternatives that can match a text with these literals; None if none can."""
        hit = self._cores & present
        if not hit and not self._unconditional:
            return None
        try:
            return self._cache[hit]
        except KeyError:
            pass
        # A pattern needing any of several literals has an entry per literal: each alternative goes in once.
        parts = tuple(dict.fromkeys(part for part, core in self._parts if core is None or core in hit))
        pattern = _compiled(parts) if parts else None
        if len(self._cache) >= _NARROWED_CACHE:
            self._cache.clear()
        self._cache[hit] = pattern
        return pattern


class Rule(BaseModel):
    """A named, weighted set of keywords (English, Chinese) and regular expressions."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$")
    weight: float = Field(1.0, gt=0, le=10)
    en: list[str] = Field(default_factory=list)
    zh: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    sentiment_weight: float = Field(
        0.0, ge=-5, le=5, description="Added to the sentiment score when the rule matches (a fault report is negative)."
    )
    # Each alternative with the literal it needs in the text (None: a pattern, always tried).
    _parts: tuple[tuple[str, str | None], ...] = PrivateAttr()
    _narrowed: _Narrowed = PrivateAttr()

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {index} ({pattern!r}) does not compile: {exc}") from exc
        return patterns

    @model_validator(mode="after")
    def _not_empty(self) -> Rule:
        terms = [t for t in [*self.en, *self.zh] if t.strip()]
        parts = [(_term_regex(t), _core(t)) for t in terms]
        parts += [part for pattern in self.patterns for part in _pattern_parts(pattern)]
        if not parts:
            raise ValueError(f"rule {self.name!r} has no keywords and no patterns")
        self._parts = tuple(parts)
        self._narrowed = _Narrowed(self._parts)
        return self

    def cores(self) -> set[str]:
        """The literals the rule's keywords and patterns need in a text."""
        return {core for _, core in self._parts if core is not None}

    def matcher(self) -> _Narrowed:
        """The rule's alternatives, narrowed per text by :meth:`_Narrowed.regex`."""
        return self._narrowed


class RuleSet(BaseModel):
    """Rules that together score one label (a category, a cue or a department)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(min_length=1)
    min_score: float = Field(1.0, gt=0, description="Score a cue or department needs to be chosen.")
    default_departments: list[Department] = Field(
        default_factory=list, description="Categories only: departments assumed when no department rule matched."
    )


class SentimentLexicon(BaseModel):
    """Weighted words of each polarity, negators that flip them, and the thresholds of each label."""

    model_config = ConfigDict(extra="forbid")

    negative: dict[str, float]
    positive: dict[str, float]
    negators_en: list[str] = Field(default_factory=list)
    negators_zh: list[str] = Field(default_factory=list)
    exclamation_weight: float = Field(0.5, ge=0, description="Added to a negative score per run of '!!'.")
    negative_at: float = Field(-0.25, lt=0, gt=-1)
    positive_at: float = Field(0.3, gt=0, lt=1)
    _parts: tuple[tuple[str, str], ...] = PrivateAttr()
    _weights: dict[str, float] = PrivateAttr()
    _narrowed: _Narrowed = PrivateAttr()

    @model_validator(mode="after")
    def _build(self) -> SentimentLexicon:
        weights = {term.lower(): -abs(w) for term, w in self.negative.items()}
        weights.update({term.lower(): abs(w) for term, w in self.positive.items()})
        # Longest terms first, so "不满意" wins over "满意" and "not bad" over "bad".
        terms = sorted(weights, key=len, reverse=True)
        self._parts = tuple((_term_regex(t), _core(t)) for t in terms)
        self._weights = weights
        self._narrowed = _Narrowed(self._parts)
        return self

    def cores(self) -> set[str]:
        """The literals the lexicon's terms need in a text."""
        return {core for _, core in self._parts}

    def _weight_of(self, snippet: str) -> float:
        """Weight of a matched snippet: exact term, a plural of a term, or a prefix term such as "frustrat*"."""
        stems = (snippet.removesuffix(end) for end in ("s", "es", "ed", "d", "ing"))
        for candidate in (snippet, *stems):
            if candidate in self._weights:
                return self._weights[candidate]
        prefixes = [(t, w) for t, w in self._weights.items() if t.endswith("*") and snippet.startswith(t[:-1])]
        return max(prefixes, key=lambda item: len(item[0]))[1] if prefixes else 0.0

    def _negated(self, text: str, start: int, term: str) -> bool:
        if _is_cjk_term(term):
            before = text[max(0, start - 2) : start]
            return any(before.endswith(neg) for neg in self.negators_zh)
        words = re.findall(r"[\w']+", text[max(0, start - 30) : start])[-3:]
        return any(word in self.negators_en or word.endswith("n't") for word in words)

    def score(self, lowered: str, present: frozenset[str] | None = None) -> tuple[float, list[str], list[str]]:
        """Raw score of a lower-cased text and the negative and positive snippets that made it.

        ``present``: the literals of the text (from the classifier's index); found here when not given.
        """
        raw = 0.0
        negative: list[str] = []
        positive: list[str] = []
        if present is None:
            present = frozenset(core for _, core in self._parts if core in lowered)
        regex = self._narrowed.regex(present)
        for match in (regex.finditer(lowered) if regex else ()):
            term = match.group(0)
            weight = self._weight_of(term)
            if self._negated(lowered, match.start(), term):
                weight = -weight if weight > 0 else weight * 0.5
            raw += weight
            (negative if weight < 0 else positive).append(term)
        if raw < 0:
            raw -= self.exclamation_weight * len(re.findall(r"[!！]{2,}", lowered))
        return raw, negative, positive


class ClassificationPolicy(BaseModel):
    """Everything the classifier decides with; loaded from classification.yaml."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1)
    default_category: Category = Category.OTHER
    min_category_score: float = Field(0.75, gt=0, description="Best category score needed; below it, the default.")
    tie_break: list[Category] = Field(
        default_factory=lambda: list(Category), description="Preferred order when two categories score the same."
    )
    categories: dict[Category, RuleSet]
    cues: dict[UrgencyCue, RuleSet]
    departments: dict[Department, RuleSet]
    sentiment: SentimentLexicon
    media_min_public_reach: int = Field(1000, ge=0, description="A public post reaching this many is exposure.")
    repeated_min_prior_contacts: int = Field(2, ge=1, description="Earlier contacts that make a repeat.")

    @field_validator("tie_break")
    @classmethod
    def _all_categories(cls, value: list[Category]) -> list[Category]:
        missing = set(Category) - set(value)
        if missing:
            raise ValueError(f"tie_break must list every category; missing {sorted(missing)}")
        return value


class PolicyError(ValueError):
    """The policy file is missing, not YAML, or has a bad field (the message names it)."""


def parse_policy(data: Any, source: str = "classification policy") -> ClassificationPolicy:
    """Validate a loaded YAML document; errors name the field path."""
    try:
        return ClassificationPolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"{source} is invalid: {problems}") from exc


def load_policy(path: Path | str = POLICY_FILE) -> ClassificationPolicy:
    """Read and validate a classification policy file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read classification policy {path}: {exc}") from exc
    return parse_policy(data, str(path))


def _prepare(text: str) -> str:
    # Curly apostrophes and full-width letters would defeat English word rules.
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _reason(kind: str, rule: Rule, snippets: list[str]) -> str:
    shown = ", ".join(f'"{s}"' for s in snippets[:_MAX_TERMS_IN_REASON])
    more = f" (+{len(snippets) - _MAX_TERMS_IN_REASON} more)" if len(snippets) > _MAX_TERMS_IN_REASON else ""
    return f"{kind}.{rule.name} w{rule.weight:g}: {shown}{more}"


def _snippets(regex: re.Pattern[str] | None, lowered: str) -> list[str]:
    """Distinct matched snippets of a lower-cased text, in order of appearance."""
    if regex is None:
        return []
    seen: dict[str, None] = {}
    for match in regex.finditer(lowered):
        snippet = match.group(0).strip()
        if snippet:
            seen.setdefault(snippet, None)
    return list(seen)


_Matchers = tuple[tuple[Rule, _Narrowed], ...]


def _score(
    matchers: _Matchers, text: str, present: frozenset[str], kind: str, matched: list[Rule]
) -> tuple[float, list[str]]:
    """Sum of the weights of the rules that matched; more distinct hits add up to double a rule's weight.

    Matching rules are appended to ``matched`` (their sentiment weights feed the sentiment score).
    """
    total = 0.0
    reasons: list[str] = []
    for rule, matcher in matchers:
        snippets = _snippets(matcher.regex(present), text)
        if snippets:
            total += rule.weight * (1 + 0.25 * (min(len(snippets), 5) - 1))
            reasons.append(_reason(kind, rule, snippets))
            matched.append(rule)
    return total, reasons


def _matchers(ruleset: RuleSet) -> _Matchers:
    return tuple((rule, rule.matcher()) for rule in ruleset.rules)


class Classifier:
    """Applies a :class:`ClassificationPolicy` to complaint text."""

    def __init__(self, policy: ClassificationPolicy) -> None:
        self.policy = policy
        # Plain tuples of what every text is scored with (pydantic attribute access is slow on the hot path).
        self._categories = [
            (category, f"category.{category.value}", _matchers(ruleset))
            for category, ruleset in policy.categories.items()
        ]
        self._cue_rules = [(cue, f"cue.{cue.value}", ruleset.min_score, _matchers(ruleset))
                           for cue, ruleset in policy.cues.items()]
        self._department_rules = [
            (department, f"department.{department.value}", ruleset.min_score, _matchers(ruleset))
            for department, ruleset in policy.departments.items()
        ]
        self._order = {category: index for index, category in enumerate(policy.tie_break)}
        rules = [rule for rs in (*policy.categories.values(), *policy.cues.values(), *policy.departments.values())
                 for rule in rs.rules]
        self._index = _CoreIndex(set().union(policy.sentiment.cores(), *(rule.cores() for rule in rules)))

    def _category(self, text: str, present: frozenset[str], matched: list[Rule]) -> tuple[Category, list[str]]:
        scores: dict[Category, tuple[float, list[str]]] = {
            category: _score(matchers, text, present, kind, matched) for category, kind, matchers in self._categories
        }
        order = self._order
        ranked = sorted(scores.items(), key=lambda item: (-item[1][0], order[item[0]]))
        best, (best_score, reasons) = ranked[0]
        if best_score < self.policy.min_category_score:
            default = self.policy.default_category
            return default, [
                f"category {default.value} by default: best {best.value} scored {best_score:.2f},"
                f" below {self.policy.min_category_score:g}"
            ]
        runner_up = next((f"; next {c.value} {s:.2f}" for c, (s, _) in ranked[1:] if s > 0), "")
        return best, [f"category {best.value} scored {best_score:.2f}{runner_up}", *reasons]

    def _cues(
        self, text: str, present: frozenset[str], prior_contacts: int, exposure: Exposure | None, matched: list[Rule]
    ) -> tuple[list[UrgencyCue], list[str]]:
        cues: list[UrgencyCue] = []
        reasons: list[str] = []
        for cue, kind, min_score, matchers in self._cue_rules:
            score, cue_reasons = _score(matchers, text, present, kind, matched)
            if score >= min_score:
                cues.append(cue)
                reasons.extend(cue_reasons)
        if exposure and exposure.public and exposure.reach >= self.policy.media_min_public_reach:
            if UrgencyCue.MEDIA_EXPOSURE not in cues:
                cues.append(UrgencyCue.MEDIA_EXPOSURE)
            reasons.append(
                f"cue.media_exposure: public {exposure.platform or 'social'} post reaching {exposure.reach}"
                f" (>= {self.policy.media_min_public_reach})"
            )
        if prior_contacts >= self.policy.repeated_min_prior_contacts:
            if UrgencyCue.REPEATED_CONTACT not in cues:
                cues.append(UrgencyCue.REPEATED_CONTACT)
            minimum = self.policy.repeated_min_prior_contacts
            reasons.append(f"cue.repeated_contact: {prior_contacts} earlier contacts (>= {minimum})")
        return [cue for cue in UrgencyCue if cue in cues], reasons

    def _departments(
        self, text: str, present: frozenset[str], category: Category
    ) -> tuple[list[Department], list[str]]:
        found: list[Department] = []
        reasons: list[str] = []
        for department, kind, min_score, matchers in self._department_rules:
            score, dept_reasons = _score(matchers, text, present, kind, [])
            if score >= min_score:
                found.append(department)
                reasons.extend(dept_reasons)
        if not found:
            ruleset = self.policy.categories.get(category)
            defaults = ruleset.default_departments if ruleset else []
            found = list(defaults)
            reasons.extend(f"department.{d.value}: default for {category.value}" for d in defaults)
        return [d for d in Department if d in found], reasons

    def _sentiment(self, text: str, present: frozenset[str], matched: list[Rule]) -> tuple[Sentiment, float, str]:
        lexicon = self.policy.sentiment
        raw, negative, positive = lexicon.score(text, present)
        weighted = {rule.name: rule.sentiment_weight for rule in matched if rule.sentiment_weight}
        raw += sum(weighted.values())
        # Squash into (-1, 1): one strong word is clear, more words saturate.
        score = round(raw / (abs(raw) + 2.0), 3)
        label = Sentiment.NEUTRAL
        if score <= lexicon.negative_at:
            label = Sentiment.NEGATIVE
        elif score >= lexicon.positive_at:
            label = Sentiment.POSITIVE
        words = "; ".join(
            part
            for part in (
                ("negative " + ", ".join(f'"{w}"' for w in negative[:_MAX_TERMS_IN_REASON])) if negative else "",
                ("positive " + ", ".join(f'"{w}"' for w in positive[:_MAX_TERMS_IN_REASON])) if positive else "",
            )
            if part
        )
        if weighted:
            words += ("; " if words else "") + "rules " + ", ".join(f"{n} {w:+g}" for n, w in weighted.items())
        return label, score, f"sentiment {label.value} {score:+.2f}" + (f": {words}" if words else "")

    def classify(self, text: str, *, prior_contacts: int = 0, exposure: Exposure | None = None) -> Classification:
        """Classify one complaint; ``prior_contacts`` and ``exposure`` feed the repeat and media cues."""
        # Every rule matches the lower-cased text (snippets are shown lower-cased).
        lowered = _prepare(text).lower()
        present = self._index.present(lowered)
        matched: list[Rule] = []
        category, category_reasons = self._category(lowered, present, matched)
        cues, cue_reasons = self._cues(lowered, present, prior_contacts, exposure, matched)
        departments, department_reasons = self._departments(lowered, present, category)
        sentiment, score, sentiment_reason = self._sentiment(lowered, present, matched)
        return Classification(
            category=category,
            urgency_cues=cues,
            sentiment=sentiment,
            sentiment_score=score,
            departments=departments,
            reasons=[
                *category_reasons,
                *cue_reasons,
                *department_reasons,
                sentiment_reason,
                f"policy classification {self.policy.version}",
            ],
        )


@lru_cache(maxsize=1)
def default_classifier() -> Classifier:
    """The classifier built from the packaged policy file (loaded once)."""
    return Classifier(load_policy())
