"""Partition concurrency is validated against the connection pool at start."""

import pytest

from services.loyalty.settings import Settings
from shared.settings import load_settings


def test_concurrency_above_the_pool_is_refused_with_both_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_DB_POOL_SIZE", "2")
    monkeypatch.setenv("LOYALTY_KAFKA_PARTITION_CONCURRENCY", "3")
    with pytest.raises(SystemExit) as refused:
        load_settings(Settings)
    assert "kafka_partition_concurrency (3) must not exceed db_pool_size (2)" in str(refused.value)


def test_concurrency_within_the_pool_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_DB_POOL_SIZE", "4")
    monkeypatch.setenv("LOYALTY_KAFKA_PARTITION_CONCURRENCY", "4")
    assert load_settings(Settings).kafka_partition_concurrency == 4
