"""How a fetch is split for concurrent transactions: whole partitions, in order, balanced."""

from aiokafka import ConsumerRecord, TopicPartition

from shared.consumer import partition_groups


def fetch(sizes: dict[int, int]) -> dict[TopicPartition, list[ConsumerRecord]]:
    """A fetch with ``sizes[p]`` records on partition p."""
    return {
        TopicPartition("t", p): [ConsumerRecord("t", p, o, 0, 0, b"k", b"v", None, 1, 1, []) for o in range(n)]
        for p, n in sizes.items()
    }


def shape(groups: list[list[ConsumerRecord]]) -> list[list[tuple[int, int]]]:
    return [[(r.partition, r.offset) for r in group] for group in groups]


def test_one_group_keeps_every_partition_in_order() -> None:
    groups = partition_groups(fetch({0: 2, 1: 1}), 1)
    assert shape(groups) == [[(0, 0), (0, 1), (1, 0)]]


def test_partitions_are_never_split_and_groups_are_balanced() -> None:
    groups = partition_groups(fetch({0: 5, 1: 1, 2: 3, 3: 2}), 2)
    assert shape(groups) == [
        [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0)],
        [(2, 0), (2, 1), (2, 2), (3, 0), (3, 1)],
    ]


def test_no_more_groups_than_partitions() -> None:
    assert len(partition_groups(fetch({0: 1, 1: 1}), 8)) == 2
    assert partition_groups({}, 4) == []
