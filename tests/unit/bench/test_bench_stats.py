"""The benchmark's arithmetic: percentiles, run spreads, ratios to ceilings, the printed table."""

import math

import pytest

from bench.profile import summarize_collapsed
from bench.report import markdown_table, text_table
from bench.stats import Spread, latency_summary, limit_row, percentile, ratio_row
from bench.workload import ComplaintFactory, ListFactory, raw_request


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 0) == 10
    assert percentile(values, 100) == 40
    assert percentile(values, 50) == 25
    assert percentile(values, 99) == pytest.approx(39.7)
    assert percentile([5.0], 99) == 5
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_of_nothing_is_nan_and_bad_percentiles_are_refused() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_spread_is_median_min_max_of_runs() -> None:
    spread = Spread.of([1500.0, 1300.0, 1450.0])
    assert (spread.median, spread.low, spread.high) == (1450, 1300, 1500)
    assert math.isnan(Spread.of([]).median)


def test_ratio_to_ceiling_uses_medians_and_says_whether_the_aim_is_met() -> None:
    ceilings = {"A": Spread.of([1400.0, 1500.0, 1300.0])}
    row = ratio_row("1 intake", "accepted", Spread.of([700.0, 720.0, 690.0]), "req/s", ceilings, "A", aim_ratio=1.0)
    assert row.ratio == pytest.approx(700 / 1400)
    assert row.met is False
    above = ratio_row("2 pipeline", "routed", Spread.of([800.0]), "req/s", ceilings, "A", aim_ratio=0.5)
    assert above.met is True
    unknown = ratio_row("x", "y", Spread.of([1.0]), "req/s", {}, "A", aim_ratio=1.0)
    assert math.isnan(unknown.ratio) and unknown.met is None


def test_limit_rows_compare_the_median_with_an_upper_bound() -> None:
    assert limit_row("3 timers", "p99", Spread.of([800.0]), "ms", limit=1000).met is True
    assert limit_row("3 timers", "p99", Spread.of([1200.0]), "ms", limit=1000).met is False
    assert limit_row("5 memory", "rss", Spread.of([90.0]), "MiB").met is None


def test_latency_summary() -> None:
    summary = latency_summary([float(v) for v in range(1, 101)])
    assert summary["count"] == 100
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["max"] == 100


def test_tables_show_ratio_and_verdict() -> None:
    ceilings = {"A": Spread.of([1000.0])}
    rows = [ratio_row("1 intake", "accepted", Spread.of([1100.0, 1000.0, 1200.0]), "req/s", ceilings, "A", 1.0)]
    text = text_table(rows)
    assert "1.10x A" in text and "yes" in text and "1,100" in text
    markdown = markdown_table(rows)
    assert markdown.splitlines()[0].startswith("| section |")
    assert "| 1,100 | 1,000 | 1,200 |" in markdown
    assert rows[0].to_json()["ratio"] == pytest.approx(1.1)


def test_complaint_requests_are_unique_and_signed_when_a_key_is_given() -> None:
    factory = ComplaintFactory(path="/v1/channels/web/complaints", key_id="k", secret="s" * 32, run_id="r1")
    first, second = factory.next_request(), factory.next_request()
    assert first != second
    head, _, body = first.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/channels/web/complaints HTTP/1.1")
    assert b"X-Redress-Signature: t=" in head and b"X-Redress-Key-Id: k" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert b'"submission_id":"bench-r1-1"' in body


def test_list_workload_runs_out() -> None:
    factory = ListFactory([raw_request("GET", "/a", None, {}), raw_request("GET", "/b", None, {})])
    assert factory.next_request() is not None and factory.next_request() is not None
    assert factory.next_request() is None


def test_profile_summary_counts_own_and_inclusive_samples() -> None:
    lines = ["main;handle;execute 30", "main;handle;classify 10", "main;idle 60", "garbage"]
    summary = summarize_collapsed(lines)
    assert summary.startswith("100 samples")
    assert "60.0%  idle" in summary
    assert "40.0%  handle" in summary


def test_latency_is_measured_at_the_target_rate_only_when_it_is_sustainable() -> None:
    from bench.scenarios.pipeline import latency_rate

    assert latency_rate(200, 900) == 200
    assert latency_rate(200, 150) == 75
    assert latency_rate(200, 4) == 5


def test_auto_explain_entries_are_split_into_query_and_plan() -> None:
    from bench.scenarios.volume import parse_auto_explain

    log = (
        "2026-11-23 16:46:13.154 UTC [1] LOG:  duration: 0.041 ms  plan:\n"
        "\tQuery Text: SELECT cases.id \n\tFROM cases \n\tWHERE cases.queue = $1 ORDER BY cases.due \n\t LIMIT $2\n"
        "\tLimit  (cost=0.29..8.31 rows=1 width=37)\n"
        "\t  ->  Index Scan using ix_cases_queue on cases  (cost=0.29..8.31 rows=1 width=37)\n"
        "2026-11-23 16:46:14.000 UTC [1] LOG:  checkpoint starting\n"
    )
    [(query, plan)] = parse_auto_explain(log)
    assert query == "SELECT cases.id FROM cases WHERE cases.queue = $1 ORDER BY cases.due LIMIT $2"
    assert plan.splitlines()[1].strip().startswith("->  Index Scan using ix_cases_queue")


def test_postgres_cpu_counts_only_what_live_backends_spent() -> None:
    from bench.infra import cpu_spent

    before = {1: 2.0, 2: 5.0}
    after = {1: 2.5, 3: 0.25}  # backend 2 exited (its time is not taken back), 3 is new
    assert cpu_spent(before, after) == pytest.approx(0.75)
