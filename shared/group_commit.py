"""Group commit: concurrent request transactions coalesced into one database transaction.

Under load, many requests each open a transaction to write a few rows and an outbox event; the
commits, pool check-outs and round trips cost more than the rows. ``GroupCommit.run(work)`` queues
``work`` (an ``async def work(conn) -> T`` that only writes through ``conn``) and returns its result
once it is committed. Works that queue while a transaction is in flight go together into the next
one: one check-out, one BEGIN/COMMIT, one multi-row INSERT per table for rows written with
``defer_insert`` and for outbox events (``Emitter.emit``), one NOTIFY. A single request on an idle
service goes alone and waits for nothing.

If a grouped transaction fails, each of its works is run again alone in its own transaction, so one
bad request (a unique-key violation, say) fails by itself and the others commit. A work therefore
must be safe to run again after a rollback: keep side effects outside the database out of it.

Usage in a route::

    group = group_commit(runtime)          # one per process, kept in runtime.state

    async def store(conn: AsyncConnection) -> str:
        await defer_insert(conn, complaints, [row])
        await runtime.emitter.emit(conn, event, subject=complaint_id, correlation_id=complaint_id)
        return complaint_id

    complaint_id = await group.run(store)

A work may also name a read it needs before it runs (``Prefetch``): the reads of every work in a
group are done first, with one call of their ``fetch_all`` per kind (one round trip for the group
instead of one per work), and each work finds its answer in ``prefetch.result``.
"""

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Work = Callable[[AsyncConnection], Awaitable[T]]
FetchAll = Callable[[AsyncConnection, list[Any]], Awaitable[list[Any]]]


@dataclass
class Prefetch(Generic[R]):
    """A read one work needs first; ``fetch_all(conn, requests)`` answers a group's requests in order."""

    fetch_all: FetchAll
    request: Any
    result: R | None = None


@dataclass
class _Pending(Generic[T]):
    work: Work[T]
    future: asyncio.Future[T]
    context: contextvars.Context
    prefetch: Prefetch[Any] | None = None


class GroupCommit:
    """Runs queued works in shared transactions; at most ``max_in_flight`` transactions at once."""

    def __init__(self, db: Database, *, max_batch: int = 128, max_in_flight: int = 2) -> None:
        self.db = db
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._queue: list[_Pending[Any]] = []
        self._in_flight = 0
        self.transactions = 0  # counters for metrics and the benchmark
        self.works = 0

    async def run(self, work: Work[T], prefetch: Prefetch[Any] | None = None) -> T:
        """Run ``work`` in a (possibly shared) transaction; its result once committed, or its error.

        ``prefetch``: read in the same transaction before the group's works run, together with the
        other works' reads of its kind.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # The work runs in the caller's context, so its logs keep the request's correlation id.
        self._queue.append(_Pending(work, future, contextvars.copy_context(), prefetch))
        if self._in_flight < self.max_in_flight:
            self._in_flight += 1
            asyncio.create_task(self._drain())  # noqa: RUF006 - the futures hold the outcome
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                await self._commit(batch)
        finally:
            self._in_flight -= 1

    async def _commit(self, batch: list[_Pending[Any]]) -> None:
        results: list[Any] = []
        try:
            async with self.db.transaction() as conn:
                await _prefetch_all(conn, batch)
                for item in batch:
                    results.append(await _in_context(item, conn))
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0], exc)
                return
            log.info("group of %d failed (%s: %s); running each alone", len(batch), type(exc).__name__, exc)
            for item in batch:
                await self._commit([item])
            return
        except BaseException as exc:  # cancelled: nobody may wait forever
            for item in batch:
                _fail(item, exc)
            raise
        self.transactions += 1
        self.works += len(batch)
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)


async def _prefetch_all(conn: AsyncConnection, batch: list[_Pending[Any]]) -> None:
    """Answer the group's prefetches, one ``fetch_all`` call per kind."""
    by_kind: dict[FetchAll, list[Prefetch[Any]]] = {}
    for item in batch:
        if item.prefetch is not None:
            item.prefetch.result = None  # a group that failed is run again: nothing of its reads is kept
            by_kind.setdefault(item.prefetch.fetch_all, []).append(item.prefetch)
    for fetch_all, wanted in by_kind.items():
        answers = await fetch_all(conn, [p.request for p in wanted])
        for prefetch, answer in zip(wanted, answers, strict=True):
            prefetch.result = answer


async def _in_context(item: _Pending[T], conn: AsyncConnection) -> T:
    """Run one work inside the context of the request that queued it."""
    return await asyncio.create_task(item.work(conn), context=item.context)  # type: ignore[arg-type]


def _fail(item: _Pending[Any], exc: BaseException) -> None:
    if not item.future.done():
        if isinstance(exc, asyncio.CancelledError):
            item.future.cancel()
        else:
            item.future.set_exception(exc)


def group_commit(runtime: Any, **options: int) -> GroupCommit:
    """The process's GroupCommit for a service ``Runtime`` (created on first use, kept in ``runtime.state``)."""
    group = runtime.state.get("group_commit")
    if group is None:
        group = GroupCommit(runtime.db, **options)
        runtime.state["group_commit"] = group
    return group  # type: ignore[no-any-return]
