"""``redress lag``: each service's consumer group lag per topic and partition (see ``shared.lag``)."""

import argparse
import json
from dataclasses import asdict

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.cli.common import FAILED, OK, add_bootstrap, bootstrap_servers, run, start_client
from shared.lag import LagRow, lag_rows
from shared.topics import EVENT_TOPICS

GROUPS = ("redress-routing", "redress-recovery", "redress-loyalty")


def add_lag(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``redress lag``."""
    parser = sub.add_parser("lag", help="consumer group lag per topic and partition",
                            description="Each service's consumer group lag per topic and partition.")
    parser.add_argument("--group", action="append", metavar="GROUP",
                        help=f"consumer group (repeatable; default: {', '.join(GROUPS)})")
    parser.add_argument("--json", action="store_true", help="rows as JSON")
    parser.add_argument("--max-lag", type=int, metavar="N", help="exit 1 when any partition lags by more than N")
    add_bootstrap(parser)
    parser.set_defaults(func=lambda args: run(lag(args)))


async def partition_offsets(
    bootstrap: str,
) -> tuple[list[TopicPartition], dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Every event topic's partitions with their beginning and end offsets."""
    reader = AIOKafkaConsumer(*map(str, EVENT_TOPICS), bootstrap_servers=bootstrap, group_id=None,
                              enable_auto_commit=False)
    await start_client(reader, bootstrap)
    try:
        tps = sorted(reader.assignment(), key=lambda tp: (tp.topic, tp.partition))
        return tps, await reader.beginning_offsets(tps), await reader.end_offsets(tps)
    finally:
        await reader.stop()


async def group_lag(bootstrap: str, group: str, tps: list[TopicPartition], begin: dict[TopicPartition, int],
                    end: dict[TopicPartition, int], *, consumed_only: bool = True) -> list[LagRow]:
    """The lag rows of one group: of the topics it committed on (empty when it never committed), or
    with ``consumed_only=False`` of every partition in ``tps`` (uncommitted ones from the beginning)."""
    client = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await start_client(client, bootstrap)
    try:
        committed = {tp: await client.committed(tp) for tp in tps}
    finally:
        await client.stop()
    return lag_rows(group, tps, committed, begin, end, consumed_only=consumed_only)


async def lag(args: argparse.Namespace) -> int:
    """Run ``redress lag``."""
    bootstrap = bootstrap_servers(args)
    tps, begin, end = await partition_offsets(bootstrap)
    groups = args.group or list(GROUPS)
    rows: dict[str, list[LagRow]] = {g: await group_lag(bootstrap, g, tps, begin, end) for g in groups}
    if args.json:
        print(json.dumps([asdict(r) for g in groups for r in rows[g]], indent=2))
    else:
        _print_table(groups, rows)
    worst = max((r.lag for g in groups for r in rows[g]), default=0)
    if args.max_lag is not None and worst > args.max_lag:
        print(f"lag {worst} is above --max-lag {args.max_lag}")
        return FAILED
    return OK


def _print_table(groups: list[str], rows: dict[str, list[LagRow]]) -> None:
    print(f"{'GROUP':<20} {'TOPIC':<26} {'PART':>4} {'COMMITTED':>10} {'END':>8} {'LAG':>6}")
    for group in groups:
        if not rows[group]:
            print(f"{group:<20} no committed offsets (the service has not consumed yet, or is not running)")
            continue
        for r in rows[group]:
            committed = "-" if r.committed is None else str(r.committed)
            print(f"{r.group:<20} {r.topic:<26} {r.partition:>4} {committed:>10} {r.end:>8} {r.lag:>6}")
        print(f"{group:<20} {'total':<26} {'':>4} {'':>10} {'':>8} {sum(r.lag for r in rows[group]):>6}")
