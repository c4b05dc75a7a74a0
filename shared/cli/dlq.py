"""``redress dlq``: list dead-lettered events with their errors, and re-publish one after a fix.

A dead letter is the original message (key, value, ``ce_*`` headers) plus ``dlq_*`` headers saying
which consumer gave up on it, why, and where it came from. Re-publishing sends the original back
to its source topic without the ``dlq_*`` headers; consumers that already handled it skip it by
its event id (inbox), the one that failed handles it again.
"""

import argparse
import json
from dataclasses import asdict, dataclass

from aiokafka import AIOKafkaProducer

from shared.cli.common import BAD_INPUT, FAILED, OK, CliError, add_bootstrap, bootstrap_servers, run, start_client
from shared.cli.history import read_history
from shared.envelope import MalformedEvent, from_kafka
from shared.stream import StreamItem
from shared.topics import Topic

DLQ_PREFIX = "dlq_"


@dataclass
class DeadLetter:
    """One dead-lettered message, as an operator reads it."""

    partition: int
    offset: int
    event_id: str | None
    type: str | None
    key: str | None
    consumer: str | None
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    dead_lettered_at: str | None
    error: str | None
    valid_now: bool
    problem_now: str | None

    @property
    def ref(self) -> str:
        """How to name it on the command line: ``PARTITION:OFFSET`` in the dead-letter topic."""
        return f"{self.partition}:{self.offset}"


def _int(value: str | None) -> int | None:
    return int(value) if value and value.lstrip("-").isdigit() else None


def validity(item: StreamItem) -> str | None:
    """Why the message is still not a valid event with today's models, or None when it is."""
    raw_headers = [(k, v.encode()) for k, v in item.headers.items() if not k.startswith(DLQ_PREFIX)]
    try:
        env = from_kafka(item.key.encode() if item.key else None, item.value, raw_headers)
        env.payload()
    except MalformedEvent as exc:
        return str(exc)
    return None


def dead_letter(item: StreamItem) -> DeadLetter:
    """Read one message of the dead-letter topic."""
    h = item.headers
    problem = validity(item)
    return DeadLetter(
        partition=item.partition,
        offset=item.offset,
        event_id=h.get("ce_id"),
        type=h.get("ce_type"),
        key=item.key,
        consumer=h.get("dlq_consumer"),
        source_topic=h.get("dlq_source_topic"),
        source_partition=_int(h.get("dlq_source_partition")),
        source_offset=_int(h.get("dlq_source_offset")),
        dead_lettered_at=h.get("dlq_at"),
        error=h.get("dlq_error"),
        valid_now=problem is None,
        problem_now=problem,
    )


def add_dlq(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``redress dlq list`` and ``redress dlq republish``."""
    parser = sub.add_parser("dlq", help="dead-lettered events: list them, re-publish one after a fix",
                            description="Dead-lettered events: list them with their errors, re-publish one.")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every dead letter with its error, source and consumer")
    listing.add_argument("--json", action="store_true", help="as JSON")
    listing.add_argument("--full", action="store_true", help="whole error messages")
    add_bootstrap(listing)
    listing.set_defaults(func=lambda args: run(list_dead_letters(args)))
    again = actions.add_parser("republish", help="send one dead letter back to its source topic")
    again.add_argument("ref", metavar="PARTITION:OFFSET|OFFSET|EVENT_ID",
                       help="the dead letter, as `redress dlq list` shows it")
    again.add_argument("--force", action="store_true", help="re-publish even if it is still not a valid event")
    again.add_argument("--dry-run", action="store_true", help="say what would be sent, send nothing")
    add_bootstrap(again)
    again.set_defaults(func=lambda args: run(republish(args)))


async def load(bootstrap: str) -> list[tuple[DeadLetter, StreamItem]]:
    """Every dead letter the broker holds, oldest first per partition."""
    items = await read_history(bootstrap, [str(Topic.DEAD_LETTER)], "reading dead letters")
    items.sort(key=lambda i: (i.headers.get("dlq_at", ""), i.partition, i.offset))
    return [(dead_letter(i), i) for i in items]


async def list_dead_letters(args: argparse.Namespace) -> int:
    """Run ``redress dlq list``."""
    letters = [d for d, _ in await load(bootstrap_servers(args))]
    if args.json:
        print(json.dumps([{**asdict(d), "ref": d.ref} for d in letters], indent=2, ensure_ascii=False))
        return OK
    if not letters:
        print("no dead letters")
        return OK
    for d in letters:
        source = f"{d.source_topic}[{d.source_partition}]@{d.source_offset}"
        print(f"{d.ref:<8} {d.dead_lettered_at or '?':<32} {d.consumer or '?':<18} {d.type or 'malformed':<32} "
              f"event {d.event_id or '-'} key {d.key or '-'} from {source}")
        error = d.error or ""
        print(f"         error: {error if args.full or len(error) <= 300 else error[:300] + '…'}")
        if d.problem_now:
            print("         still not a valid event: fix the producer or the model before re-publishing")
    print(f"{len(letters)} dead letter(s); re-publish one with: redress dlq republish PARTITION:OFFSET")
    return OK


def find(letters: list[tuple[DeadLetter, StreamItem]], ref: str) -> tuple[DeadLetter, StreamItem]:
    """The dead letter ``ref`` names; CliError naming the candidates when it is ambiguous or unknown."""
    partition, sep, offset = ref.partition(":")
    if sep and partition.isdigit() and offset.isdigit():
        found = [x for x in letters if x[0].partition == int(partition) and x[0].offset == int(offset)]
    elif ref.isdigit():
        found = [x for x in letters if x[0].offset == int(ref)]
    else:
        found = [x for x in letters if x[0].event_id == ref]
    if len(found) > 1 and not sep:
        refs = ", ".join(x[0].ref for x in found)
        raise CliError(f"{ref} names several dead letters ({refs}): give PARTITION:OFFSET", BAD_INPUT)
    if not found:
        raise CliError(f"no dead letter {ref}: `redress dlq list` shows the PARTITION:OFFSET of each", FAILED)
    return found[-1]


async def republish(args: argparse.Namespace) -> int:
    """Run ``redress dlq republish``."""
    bootstrap = bootstrap_servers(args)
    letter, item = find(await load(bootstrap), args.ref)
    if not letter.source_topic:
        raise CliError(f"dead letter {letter.ref} has no dlq_source_topic header: cannot tell where it belongs")
    if letter.problem_now and not args.force:
        raise CliError(
            f"dead letter {letter.ref} is still not a valid event: {letter.problem_now}. Fix the producer or the "
            "event model first, or pass --force to re-publish it as is (its consumer will dead-letter it again)."
        )
    headers = [(k, v.encode()) for k, v in item.headers.items() if not k.startswith(DLQ_PREFIX)]
    what = f"event {letter.event_id or '-'} ({letter.type or 'malformed'}) from dead letter {letter.ref}"
    if args.dry_run:
        print(f"would re-publish {what} to {letter.source_topic}")
        return OK
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await start_client(producer, bootstrap)
    try:
        key = item.key.encode() if item.key is not None else None
        sent = await producer.send_and_wait(letter.source_topic, item.value, key=key, headers=headers)
    finally:
        await producer.stop()
    print(f"re-published {what} to {sent.topic}[{sent.partition}]@{sent.offset}; "
          f"{letter.consumer or 'its consumer'} will handle it again (consumers that already did skip it by id)")
    return OK
