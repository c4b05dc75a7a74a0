"""The load generator: a separate process speaking HTTP/1.1 keep-alive on raw sockets.

It has to cost far less CPU than the server it loads (both share two cores), so it uses uvloop, an
``asyncio.Protocol`` and pre-built request bytes instead of an HTTP client library. Two shapes:

- closed loop: ``concurrency`` connections each send the next request when the answer arrives,
  for ``duration`` seconds after ``warmup`` seconds (throughput);
- open loop: requests start at a fixed ``rate`` whatever the answers do; latency counts from the
  scheduled start, so a slow server cannot hide its queue (latency at a given load).
"""

import asyncio
import contextlib
import json
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from bench.workload import RequestFactory


@dataclass(frozen=True)
class LoadSpec:
    """One load run: where, what, how hard and for how long."""

    host: str
    port: int
    factory: RequestFactory
    concurrency: int = 32
    duration: float = 5.0
    warmup: float = 1.0
    rate: float | None = None  # requests/s for an open loop; None for a closed loop
    capture: str | None = None  # JSON field of 2xx answers to record with the send time
    max_requests: int | None = None  # stop after this many (list workloads)


@dataclass
class LoadResult:
    """What one run measured."""

    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    measured_s: float = 0.0
    cpu_s: float = 0.0
    captured: list[tuple[str, float]] = field(default_factory=list)  # (field value, wall-clock send time)
    samples: list[str] = field(default_factory=list)  # a few non-2xx answers, to explain failures

    @property
    def ok(self) -> int:
        """Answers with a 2xx status inside the measured window."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def throughput(self) -> float:
        """2xx answers per second in the measured window."""
        return self.ok / self.measured_s if self.measured_s > 0 else 0.0


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def _complete(self) -> None:
        if self.waiter is None or self.waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"content-length:")
        if start < 0:
            self.waiter.set_exception(ConnectionError("answer without content-length"))
            return
        stop = head.find(b"\r\n", start)
        length = int(head[start + 15 : stop if stop >= 0 else None])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        self.waiter.set_result((status, body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request and wait for its answer."""
        if self.transport is None or self.transport.is_closing():
            # uvicorn closes keep-alive connections idle for 5 s; the caller reconnects.
            raise ConnectionError("connection closed by the server")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


class _Runner:
    """Runs one LoadSpec inside the generator process."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.result = LoadResult()
        self.factory = spec.factory
        self.window_start = 0.0
        self.window_end = 0.0
        self.exhausted = False

    async def connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, self.spec.host, self.spec.port)
        return conn

    def _next(self) -> bytes | None:
        if self.spec.max_requests is not None and self.result.sent >= self.spec.max_requests:
            self.exhausted = True
            return None
        raw = self.factory.next_request()
        if raw is None:
            self.exhausted = True
            return None
        self.result.sent += 1
        return raw

    async def _one(self, conn: _Connection, raw: bytes, started: float, wall: float) -> _Connection:
        """Send one request, record it when inside the window; returns a usable connection."""
        try:
            status, body = await conn.request(raw)
        except (ConnectionError, OSError, RuntimeError) as exc:
            if conn.transport:
                conn.transport.close()
            if "closed by the server" in str(exc):
                # An idle keep-alive connection the server let go: not the request's fault, send it again.
                return await self._one(await self.connect(), raw, started, wall)
            self._count_error(type(exc).__name__, started)
            return await self.connect()
        finished = time.perf_counter()
        if self.window_start <= started < self.window_end:
            res = self.result
            res.statuses[status] = res.statuses.get(status, 0) + 1
            res.latencies_ms.append((finished - started) * 1000)
            if not 200 <= status < 300 and len(res.samples) < 5:
                res.samples.append(f"{status}: {body[:300].decode(errors='replace')}")
        if self.spec.capture and 200 <= status < 300:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.result.captured.append((str(json.loads(body)[self.spec.capture]), wall))
        return conn

    def _count_error(self, name: str, started: float) -> None:
        if self.window_start <= started < self.window_end:
            self.result.errors[name] = self.result.errors.get(name, 0) + 1

    async def closed_loop(self) -> None:
        conns = [await self.connect() for _ in range(self.spec.concurrency)]
        now = time.perf_counter()
        self.window_start = now + self.spec.warmup
        self.window_end = self.window_start + self.spec.duration

        async def worker(conn: _Connection) -> None:
            while time.perf_counter() < self.window_end and not self.exhausted:
                raw = self._next()
                if raw is None:
                    return
                conn = await self._one(conn, raw, time.perf_counter(), time.time())
            if conn.transport:
                conn.transport.close()

        await asyncio.gather(*(worker(c) for c in conns))
        self.result.measured_s = self.spec.duration
        if self.exhausted:  # a list workload ran out early: the window is the time it took
            self.result.measured_s = max(1e-9, min(time.perf_counter(), self.window_end) - self.window_start)

    async def open_loop(self) -> None:
        assert self.spec.rate
        idle: asyncio.Queue[_Connection] = asyncio.Queue()
        for _ in range(self.spec.concurrency):
            idle.put_nowait(await self.connect())
        interval = 1.0 / self.spec.rate
        begin = time.perf_counter()
        self.window_start = begin + self.spec.warmup
        self.window_end = self.window_start + self.spec.duration
        pending: set[asyncio.Task[None]] = set()

        waiting = 0

        async def fire(scheduled: float, wall: float, raw: bytes) -> None:
            nonlocal waiting
            waiting += 1
            try:
                conn = await idle.get()
            finally:
                waiting -= 1
            idle.put_nowait(await self._one(conn, raw, scheduled, wall))

        index = 0
        while True:
            scheduled = begin + index * interval
            if scheduled >= self.window_end:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if waiting >= self.spec.concurrency:
                # The server fell behind the rate: shed this request (counted) so the run ends on time.
                self._count_error("shed", scheduled)
                index += 1
                continue
            raw = self._next()
            if raw is None:
                break
            task = asyncio.create_task(fire(scheduled, time.time() - (time.perf_counter() - scheduled), raw))
            pending.add(task)
            task.add_done_callback(pending.discard)
            index += 1
        await asyncio.gather(*pending)
        while not idle.empty():
            conn = idle.get_nowait()
            if conn.transport:
                conn.transport.close()
        self.result.measured_s = self.spec.duration


def _run_in_child(spec: LoadSpec) -> LoadResult:
    """Entry point in the generator process."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    runner = _Runner(spec)
    cpu_start = time.process_time()
    asyncio.run(runner.open_loop() if spec.rate else runner.closed_loop())
    runner.result.cpu_s = time.process_time() - cpu_start
    return runner.result


class LoadGenerator:
    """A pool of one spawned process that runs LoadSpecs, so the bench process never shares its CPU time."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))

    def submit(self, spec: LoadSpec) -> "Future[LoadResult]":
        """Start one load; the future holds its result."""
        return self._pool.submit(_run_in_child, spec)

    def run(self, spec: LoadSpec) -> LoadResult:
        """Run one load and wait for its result."""
        return self._pool.submit(_run_in_child, spec).result()

    async def run_async(self, spec: LoadSpec) -> LoadResult:
        """Run one load while the caller's event loop keeps observing."""
        return await asyncio.wrap_future(self._pool.submit(_run_in_child, spec))

    def close(self) -> None:
        """Stop the generator process."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def describe(result: LoadResult) -> dict[str, Any]:
    """A compact JSON-ready account of a run (without the raw latency list)."""
    from bench.stats import latency_summary

    return {
        "sent": result.sent,
        "ok": result.ok,
        "throughput": result.throughput,
        "statuses": {str(k): v for k, v in result.statuses.items()},
        "errors": result.errors,
        "latency_ms": latency_summary(result.latencies_ms),
        "generator_cpu_s": result.cpu_s,
        "samples": result.samples,
    }
