"""Which tables a service analyzes: those that grew by a share of their size since their last analysis."""

from shared.statistics import TableGrowth, tables_to_analyze


def test_a_table_analyzed_while_empty_is_analyzed_once_it_holds_enough_rows() -> None:
    grown = [TableGrowth("ledger", rows=0.0, changed=1_200), TableGrowth("customers", rows=-1.0, changed=1_000)]
    assert tables_to_analyze(grown, min_rows=1_000, growth=0.5) == ["customers", "ledger"]


def test_a_few_changes_leave_a_table_alone_however_small() -> None:
    assert tables_to_analyze([TableGrowth("ledger", rows=0.0, changed=999)], min_rows=1_000, growth=0.5) == []


def test_a_large_table_waits_until_its_changes_reach_the_share() -> None:
    tables = [TableGrowth("ledger", rows=40_000.0, changed=19_999), TableGrowth("lots", rows=40_000.0, changed=20_000)]
    assert tables_to_analyze(tables, min_rows=1_000, growth=0.5) == ["lots"]
