"""Loads the labelled complaint set and measures the classifier against it."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.intake.classify import Classifier
from shared.events.complaints import Classification, Exposure

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "intake"


def load(*names: str) -> list[dict[str, Any]]:
    """Rows of the named JSONL files (all complaint files when none are named)."""
    files = [DATA_DIR / name for name in names] if names else sorted(DATA_DIR.glob("complaints_*.jsonl"))
    rows: list[dict[str, Any]] = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                row = json.loads(line)
                row["_where"] = f"{path.name}:{number}"
                rows.append(row)
    return rows


def classify_row(classifier: Classifier, row: dict[str, Any]) -> Classification:
    """Classify a row the way intake does: subject and text together, with contact count and exposure."""
    text = f"{row['subject']}\n{row['text']}" if row.get("subject") else row["text"]
    exposure = Exposure(**row["exposure"]) if row.get("exposure") else None
    return classifier.classify(text, prior_contacts=row.get("prior_contacts", 0), exposure=exposure)


@dataclass
class PrecisionRecall:
    """Counts for one multi-label decision."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, expected: set[str], got: set[str]) -> None:
        self.tp += len(expected & got)
        self.fp += len(got - expected)
        self.fn += len(expected - got)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Report:
    """Figures of one evaluation run, per language and overall."""

    total: Counter[str] = field(default_factory=Counter)
    category_hits: Counter[str] = field(default_factory=Counter)
    sentiment_hits: Counter[str] = field(default_factory=Counter)
    cues: dict[str, PrecisionRecall] = field(default_factory=lambda: defaultdict(PrecisionRecall))
    cue_by_kind: dict[str, PrecisionRecall] = field(default_factory=lambda: defaultdict(PrecisionRecall))
    departments: dict[str, PrecisionRecall] = field(default_factory=lambda: defaultdict(PrecisionRecall))
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)

    def accuracy(self, lang: str = "all") -> float:
        return self.category_hits[lang] / self.total[lang] if self.total[lang] else 0.0

    def sentiment_accuracy(self, lang: str = "all") -> float:
        return self.sentiment_hits[lang] / self.total[lang] if self.total[lang] else 0.0

    def lines(self, title: str) -> list[str]:
        """A printable summary."""
        out = [f"== {title} =="]
        for lang in [*sorted(k for k in self.total if k != "all"), "all"]:
            cue = self.cues[lang]
            dept = self.departments[lang]
            out.append(
                f"{lang:>3}: n={self.total[lang]:3d}  category accuracy {self.accuracy(lang):.3f}"
                f"  cues P {cue.precision:.3f} R {cue.recall:.3f}"
                f"  departments P {dept.precision:.3f} R {dept.recall:.3f}"
                f"  sentiment accuracy {self.sentiment_accuracy(lang):.3f}"
            )
        for kind, pr in sorted(self.cue_by_kind.items()):
            counts = f"(tp {pr.tp} fp {pr.fp} fn {pr.fn})"
            out.append(f"     cue {kind:<17} P {pr.precision:.3f} R {pr.recall:.3f}  {counts}")
        if self.confusion:
            pairs = ", ".join(f"{e}->{g}: {n}" for (e, g), n in self.confusion.most_common())
            out.append(f"     category confusions (expected->got): {pairs}")
        return out


def evaluate(classifier: Classifier, rows: list[dict[str, Any]]) -> Report:
    """Classify every row and count hits per language."""
    report = Report()
    for row in rows:
        result = classify_row(classifier, row)
        for lang in (row["lang"], "all"):
            report.total[lang] += 1
            report.category_hits[lang] += result.category.value == row["category"]
            report.sentiment_hits[lang] += result.sentiment.value == row["sentiment"]
            report.cues[lang].add(set(row["cues"]), {c.value for c in result.urgency_cues})
            report.departments[lang].add(set(row["departments"]), {d.value for d in result.departments})
        for kind in {*row["cues"], *(c.value for c in result.urgency_cues)}:
            report.cue_by_kind[kind].add({kind} & set(row["cues"]), {kind} & {c.value for c in result.urgency_cues})
        if result.category.value != row["category"]:
            report.confusion[(row["category"], result.category.value)] += 1
            report.misses.append(f"{row['id']}: expected {row['category']} got {result.category.value}")
    return report
