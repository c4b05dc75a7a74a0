"""Pure statistics of the benchmark: percentiles, the median of repeated runs, ratios to ceilings.

Nothing here does I/O, so the numbers the report prints can be checked by unit tests.
"""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) with linear interpolation between closest ranks; NaN when empty."""
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Spread:
    """The median of repeated runs with the lowest and highest run."""

    median: float
    low: float
    high: float
    runs: tuple[float, ...] = ()

    @classmethod
    def of(cls, runs: Sequence[float]) -> "Spread":
        """Summarize runs; NaN everywhere when there are none."""
        clean = [float(r) for r in runs if not math.isnan(r)]
        if not clean:
            return cls(math.nan, math.nan, math.nan, tuple(float(r) for r in runs))
        return cls(percentile(clean, 50), min(clean), max(clean), tuple(float(r) for r in runs))

    def ratio_to(self, ceiling: "Spread") -> float:
        """Median over the ceiling's median; NaN when the ceiling is unknown or zero."""
        if math.isnan(self.median) or math.isnan(ceiling.median) or ceiling.median == 0:
            return math.nan
        return self.median / ceiling.median


@dataclass
class Row:
    """One line of the result table: a measured figure, its ceiling ratio and the aim."""

    section: str
    name: str
    value: Spread
    unit: str
    ceiling: str | None = None
    ratio: float = math.nan
    aim: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        data = asdict(self)
        return _nan_to_none(data)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def ratio_row(
    section: str,
    name: str,
    value: Spread,
    unit: str,
    ceilings: dict[str, Spread],
    ceiling: str,
    aim_ratio: float | None = None,
    note: str = "",
) -> Row:
    """A throughput row compared with one named ceiling; ``met`` when the ratio reaches ``aim_ratio``."""
    base = ceilings.get(ceiling)
    ratio = value.ratio_to(base) if base else math.nan
    met = None if aim_ratio is None or math.isnan(ratio) else ratio >= aim_ratio
    aim = f">= {aim_ratio:.1f}x {ceiling}" if aim_ratio is not None else ""
    return Row(section, name, value, unit, ceiling=ceiling, ratio=ratio, aim=aim, met=met, note=note)


def limit_row(
    section: str, name: str, value: Spread, unit: str, limit: float | None = None, note: str = ""
) -> Row:
    """A row whose aim is an upper bound (latency, memory, time); ``met`` compares the median."""
    met = None if limit is None or math.isnan(value.median) else value.median <= limit
    aim = f"<= {_fmt(limit)} {unit}" if limit is not None else ""
    return Row(section, name, value, unit, aim=aim, met=met, note=note)


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 and max of latencies in milliseconds."""
    return {
        "count": float(len(samples_ms)),
        "p50": percentile(samples_ms, 50),
        "p90": percentile(samples_ms, 90),
        "p99": percentile(samples_ms, 99),
        "max": max(samples_ms) if samples_ms else math.nan,
    }


def _fmt(value: float | None) -> str:
    """Numbers as people read them in a table: thousands separators, few decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def format_number(value: float | None) -> str:
    """Public form of the table's number format."""
    return _fmt(value)
