"""``redress watch``: every topic live, one readable line per event, or the raw CloudEvents as JSON lines.

``--follow ID`` shows one complaint's chain across the four services: it reads what the broker
holds from the beginning (the events before the command started, in time order), then keeps
following live.
"""

import argparse
import asyncio
import contextlib
from datetime import UTC, datetime

from aiokafka import TopicPartition

from shared.cli.common import (
    BAD_INPUT,
    CONNECT_TIMEOUT,
    OK,
    CliError,
    Palette,
    Progress,
    add_bootstrap,
    bootstrap_servers,
    note,
    run,
    unreachable,
    use_color,
)
from shared.cli.filters import EventFilter, split_values
from shared.cli.render import dead_letter_line, event_line, is_dead_letter, malformed_line
from shared.envelope import envelope_to_json
from shared.events.vocabulary import Severity
from shared.stream import EventStream, StreamItem
from shared.topics import EVENT_TOPICS, Topic

_EARLIEST = datetime.min.replace(tzinfo=UTC)
MAX_HELD = 200_000


def add_watch(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``redress watch``."""
    parser = sub.add_parser(
        "watch",
        help="tail every topic live, one line per event",
        description="Tail every topic live: one readable line per event (time, service, type, customer, "
        "complaint, key facts). Filters combine; each may be repeated or comma-separated.",
    )
    parser.add_argument("--type", action="append", metavar="GLOB", help="event type, e.g. 'case.*' or case.routed.v1")
    parser.add_argument("--customer", action="append", metavar="ID", help="customer id")
    parser.add_argument("--complaint", action="append", metavar="ID", help="complaint or case id (or 8+ char prefix)")
    parser.add_argument("--severity", action="append", metavar="P1..P4", help="severity of the complaint's case")
    parser.add_argument("--queue", action="append", metavar="QUEUE", help="queue of the complaint's case")
    parser.add_argument("--follow", metavar="ID", help="one complaint (or case) end to end, earlier events included")
    parser.add_argument("--json", action="store_true", help="raw CloudEvents, structured JSON, one per line")
    parser.add_argument("--from-beginning", action="store_true", help="replay what the broker holds first")
    parser.add_argument("--to-end", action="store_true", help="replay what the broker holds and stop at its end: "
                        "`watch --json --to-end > events.jsonl`")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N events")
    parser.add_argument("--no-color", action="store_true", help="no colours (also off when stdout is not a terminal)")
    add_bootstrap(parser)
    parser.set_defaults(func=lambda args: run(watch(args)))


def _filter(args: argparse.Namespace) -> EventFilter:
    severities = {s.upper() for s in split_values(args.severity)}
    unknown = severities - {s.value for s in Severity}
    if unknown:
        raise CliError(f"unknown severity {sorted(unknown)}: use P1, P2, P3 or P4", BAD_INPUT)
    return EventFilter(
        types=split_values(args.type),
        customers=set(split_values(args.customer)),
        complaints=split_values(args.complaint),
        severities=severities,
        queues=set(split_values(args.queue)),
        follow=args.follow,
    )


class Printer:
    """Turns stream items into output lines, applying the filters."""

    def __init__(self, args: argparse.Namespace, flt: EventFilter) -> None:
        self.json = args.json
        self.filter = flt
        self.paint = Palette(use_color(args))
        self.limit = args.count
        self.shown = 0

    @property
    def full(self) -> bool:
        """``--count`` events were shown."""
        return bool(self.limit) and self.shown >= self.limit

    def line(self, item: StreamItem) -> str | None:
        """The output line of one item, or None when filtered out."""
        env = item.envelope
        if is_dead_letter(item):
            if self.json or (self.filter.active and (env is None or not self.filter.matches(env))):
                return None
            return dead_letter_line(item, self.paint)
        if env is None:
            return None if self.json or self.filter.active else malformed_line(item, self.paint)
        self.filter.observe(env)
        if not self.filter.matches(env):
            return None
        return envelope_to_json(env) if self.json else event_line(env, self.paint)

    def show(self, items: list[StreamItem]) -> None:
        """Print the lines of ``items`` (stops at ``--count``)."""
        for item in items:
            if self.full:
                return
            text = self.line(item)
            if text is not None:
                print(text, flush=True)
                self.shown += 1


class CatchUp:
    """Tracks a replay until every partition reached the end it had when the command started."""

    def __init__(self, stream: EventStream, end: dict[TopicPartition, int], total: int) -> None:
        self.stream = stream
        self.end = end
        self.remaining = set(end)
        self.progress = Progress("replaying history", total)
        self.read = 0

    @classmethod
    async def start(cls, stream: EventStream) -> "CatchUp":
        """Take the end offsets now."""
        tps = list(stream.consumer.assignment())
        end = await stream.consumer.end_offsets(tps)
        begin = await stream.consumer.beginning_offsets(tps)
        return cls(stream, {tp: end[tp] for tp in tps if end[tp] > begin[tp]}, sum(end[tp] - begin[tp] for tp in tps))

    async def advance(self, count: int) -> bool:
        """Count ``count`` more messages read; True once the replay is complete."""
        self.read += count
        for tp in list(self.remaining):
            if await self.stream.consumer.position(tp) >= self.end[tp]:
                self.remaining.discard(tp)
        self.progress.update(self.read)
        return not self.remaining


async def watch(args: argparse.Namespace) -> int:
    """Run ``redress watch``."""
    flt = _filter(args)
    bootstrap = bootstrap_servers(args)
    printer = Printer(args, flt)
    replay = args.from_beginning or args.to_end or bool(args.follow)
    topics = [str(t) for t in EVENT_TOPICS] + ([] if args.json else [str(Topic.DEAD_LETTER)])
    stream = EventStream(bootstrap, topics, from_beginning=replay)
    try:
        await asyncio.wait_for(stream.start(), CONNECT_TIMEOUT)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await stream.stop()
        raise unreachable(bootstrap, exc) from exc
    try:
        catchup = await CatchUp.start(stream) if replay else None
        mode = "replaying, then live" if replay else "live"
        note(f"watching {len(topics)} topics on {bootstrap} ({mode}; Ctrl-C stops)")
        return await _loop(stream, printer, catchup, args)
    finally:
        await stream.stop()


async def _loop(stream: EventStream, printer: Printer, catchup: CatchUp | None, args: argparse.Namespace) -> int:
    # The replay is held and shown in time order once complete (topics are read side by side; and
    # when following, a case id is only known to belong to the complaint once case.routed is seen).
    # A very long history is shown in chunks of MAX_HELD, each in time order.
    held: list[StreamItem] = []
    if catchup is not None and await catchup.advance(0):
        _finish_replay(printer, held, catchup, args)
        catchup = None
        if args.to_end:
            return OK
    async for batch in stream.items():
        if catchup is None:
            printer.show(batch)
        else:
            held += batch
            if len(held) >= MAX_HELD and not args.follow:
                _show_in_time_order(printer, held)
            if await catchup.advance(len(batch)):
                _finish_replay(printer, held, catchup, args)
                catchup = None
                if args.to_end:
                    return OK
        if printer.full:
            return OK
    return OK


def _show_in_time_order(printer: Printer, held: list[StreamItem]) -> None:
    for item in held:
        if item.envelope is not None and not is_dead_letter(item):
            printer.filter.observe(item.envelope)
    held.sort(key=lambda item: item.envelope.time if item.envelope else _EARLIEST)
    printer.show(held)
    held.clear()


def _finish_replay(printer: Printer, held: list[StreamItem], catchup: CatchUp, args: argparse.Namespace) -> None:
    _show_in_time_order(printer, held)
    catchup.progress.done("caught up")
    if args.follow:
        if printer.shown:
            note(f"{printer.shown} earlier event(s) of {args.follow}; following live")
        else:
            note(f"no events of {args.follow} yet (check the id: `redress watch` shows complaint ids); waiting")
    elif not args.to_end:
        note("caught up; following live")
