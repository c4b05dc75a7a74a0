"""What text a regular expression cannot match without: the literals one of which every match contains.

The classifier tries a rule's own patterns only on texts that hold one of the pattern's literals, as it
does for keywords, instead of running every pattern over every text. The literals are read off the
parsed pattern and lower-cased (rules match lower-cased text, case-insensitively). When nothing certain
can be said, the answer is None and the pattern is always tried: a wrong answer would lose matches.
(Lower-casing a literal does not cover the few letters that case-fold to another one, such as the long
s or the Kelvin sign, which complaint texts in Chinese and English do not use.)
"""

from __future__ import annotations

import re
import re._constants as sre
import re._parser as sre_parse
from typing import Any

# Longer products of alternatives are not worth enumerating: the pattern is then narrowed by a part of it.
_MAX_ALTERNATIVES = 64
_ZERO_WIDTH = frozenset({sre.AT, sre.ASSERT, sre.ASSERT_NOT})
_Literals = frozenset[str]


def required_literals(pattern: str) -> _Literals | None:
    """Literals (lower-cased) one of which occurs in every match of ``pattern``; None when unknown."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError):
        return None
    _, required = _sequence(list(parsed))
    return required


def _best(candidates: list[_Literals]) -> _Literals | None:
    """The most selective set: longest shortest literal, then fewest literals; empty literals say nothing."""
    useful = [c for c in candidates if c and "" not in c]
    if not useful:
        return None
    return max(useful, key=lambda c: (min(len(s) for s in c), -len(c)))


def _product(left: _Literals, right: _Literals) -> _Literals | None:
    if len(left) * len(right) > _MAX_ALTERNATIVES:
        return None
    return frozenset(a + b for a in left for b in right)


def _sequence(nodes: list[tuple[Any, Any]]) -> tuple[_Literals | None, _Literals | None]:
    """(exact, required) of consecutive nodes: exact is every string they match, when that is a short list."""
    candidates: list[_Literals] = []
    run: _Literals | None = None  # the strings the latest nodes with exact answers match together
    whole: _Literals | None = frozenset({""})
    for node in nodes:
        exact, required = _node(node)
        if required is not None:
            candidates.append(required)
        whole = _product(whole, exact) if whole is not None and exact is not None else None
        if exact is None:
            if run is not None:
                candidates.append(run)
            run = None
            continue
        joined = _product(run, exact) if run is not None else exact
        if joined is None and run is not None:  # too many combinations: keep the run so far, start again
            candidates.append(run)
        run = exact if joined is None else joined
    if run is not None:
        candidates.append(run)
    return whole, _best(candidates)


def _node(node: tuple[Any, Any]) -> tuple[_Literals | None, _Literals | None]:
    """(exact, required) of one parsed node."""
    op, arg = node
    if op is sre.LITERAL:
        exact = frozenset({chr(arg).lower()})
        return exact, exact
    if op is sre.IN:
        return _char_class(arg)
    if op in _ZERO_WIDTH:
        return frozenset({""}), None
    if op is sre.SUBPATTERN:
        return _sequence(list(arg[-1]))
    if op is sre.BRANCH:
        return _branch(arg[1])
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        low, high, body = arg
        exact, required = _sequence(list(body))
        if low == high == 1:
            return exact, required
        return None, required if low >= 1 else None
    return None, None


def _char_class(items: list[tuple[Any, Any]]) -> tuple[_Literals | None, _Literals | None]:
    if not items or any(op is not sre.LITERAL for op, _ in items):
        return None, None  # ranges, categories, negation: too many characters to list
    exact = frozenset(chr(code).lower() for _, code in items)
    return exact, exact


def _branch(alternatives: list[Any]) -> tuple[_Literals | None, _Literals | None]:
    """Any alternative may match: exact and required are the unions, known only when known for each."""
    answers = [_sequence(list(alternative)) for alternative in alternatives]
    exacts = [exact for exact, _ in answers if exact is not None]
    requireds = [required for _, required in answers if required is not None]
    exact_all = _union(exacts) if len(exacts) == len(answers) else None
    required_all = frozenset().union(*requireds) if len(requireds) == len(answers) else None
    return exact_all, required_all


def _union(sets: list[_Literals]) -> _Literals | None:
    joined = frozenset().union(*sets)
    return joined if len(joined) <= _MAX_ALTERNATIVES else None
