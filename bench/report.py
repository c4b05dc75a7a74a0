"""The result table as text (terminal), Markdown (RESULTS.md, results/*.md) and JSON."""

import math
from collections.abc import Sequence
from typing import Any

from bench.stats import Row, format_number

HEADERS = ("section", "figure", "median", "min", "max", "unit", "x ceiling", "aim", "ok")


def _cells(row: Row) -> tuple[str, ...]:
    ratio = "" if math.isnan(row.ratio) else f"{row.ratio:.2f}x {row.ceiling}"
    ok = {True: "yes", False: "NO", None: ""}[row.met]
    name = row.name + (f" ({row.note})" if row.note else "")
    return (
        row.section,
        name,
        format_number(row.value.median),
        format_number(row.value.low),
        format_number(row.value.high),
        row.unit,
        ratio,
        row.aim,
        ok,
    )


def text_table(rows: Sequence[Row]) -> str:
    """A fixed-width table for the terminal."""
    lines = [HEADERS, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    numeric = {2, 3, 4, 6}
    out = []
    for index, line in enumerate(lines):
        pairs = enumerate(zip(line, widths, strict=True))
        cells = [c.rjust(w) if i in numeric and index else c.ljust(w) for i, (c, w) in pairs]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(rows: Sequence[Row]) -> str:
    """A GitHub-flavoured Markdown table."""
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(" --- " for _ in HEADERS) + "|"]
    for row in rows:
        cells = [c.replace("|", "\\|") for c in _cells(row)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def markdown_report(meta: dict[str, Any], rows: Sequence[Row], notes: Sequence[str]) -> str:
    """The whole run as Markdown: machine, table, notes (plans, skipped parts)."""
    head = [
        f"# Redress benchmark, {meta.get('date', '?')}",
        "",
        f"- mode: {meta.get('mode', '?')}; total time {meta.get('elapsed_s', 0):.0f} s",
        f"- machine: {meta.get('cpu', '?')}, {meta.get('nproc', '?')} cores, "
        f"{meta.get('memory_gib', 0):.1f} GiB; PostgreSQL {meta.get('postgres', '?')}; "
        f"Python {meta.get('python', '?')}",
        f"- load: {meta.get('load', '')}",
        f"- commit: {meta.get('commit', '?')}",
        "",
        markdown_table(rows),
        "",
    ]
    if notes:
        head += ["## Notes", "", *notes, ""]
    return "\n".join(head)
