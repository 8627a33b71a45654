"""One task per probe: wait for its slot, run it, keep the result.

Each probe runs on its own interval, first at start-up (offset by a random
share of the interval, `jitter`, so that starts spread), never twice at
once, under one global concurrency bound. Results, counters and the damped
up/down state are kept in a `ProbeRecord` per probe, read by the metrics renderer
and the status page; everything here runs on the event loop, so nothing
needs a lock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.config import Config
from exporter.exposition import Histogram
from exporter.probes.base import BaseProbeConfig, ProbeResult
from exporter.probes.context import ProbeContext, SharedResources
from exporter.runner import run_probe
from exporter.systems import Assessment, assess_systems

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60)
LAG_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30)


class ConcurrencyLimit:
    """A FIFO semaphore whose limit a reload may change while runs wait.

    Replacing an `asyncio.Semaphore` would let the runs holding or waiting
    on the old one exceed the new limit. A freed slot is handed to the next
    waiter directly, so thousands of waiters cost one wake-up each.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def set_limit(self, limit: int) -> None:
        """Change the limit; a higher one lets waiting runs in at once."""
        self.limit = limit
        self._hand_over()

    def _hand_over(self) -> None:
        while self._waiters and self.active < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)

    async def __aenter__(self) -> None:
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Cancelled just after a slot was handed to us: pass it on.
                self.active -= 1
                self._hand_over()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self.active -= 1
        self._hand_over()


@dataclass(eq=False)
class ProbeRecord:
    """Everything known about one configured probe."""

    config: BaseProbeConfig
    ctx: ProbeContext
    result: ProbeResult | None = None
    runs: int = 0
    failures: int = 0
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    up: bool | None = None
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))

    def record(self, result: ProbeResult) -> None:
        """Take a new result: counters, histogram and flap damping."""
        self._log_change(self.result, result)
        self.result = result
        self.runs += 1
        self.latency.observe(result.duration_seconds)
        if result.success:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
        else:
            self.failures += 1
            self.consecutive_failures += 1
            self.consecutive_successes = 0
        if self.up is None:
            self.up = result.success
        elif self.up and self.consecutive_failures >= self.config.failure_threshold:
            self.up = False
        elif (
            not self.up and self.consecutive_successes >= self.config.success_threshold
        ):
            self.up = True

    def _log_change(self, before: ProbeResult | None, after: ProbeResult) -> None:
        """Log when a probe starts failing, fails differently, or recovers."""
        name, kind = self.config.name, self.config.kind
        if not after.success and (
            before is None
            or before.success
            or (before.reason, before.error) != (after.reason, after.error)
        ):
            logger.warning(
                "probe %s (%s) failed: %s: %s", name, kind, after.reason, after.error
            )
        elif after.success and before is not None and not before.success:
            logger.info("probe %s (%s) recovered", name, kind)


class Scheduler:
    """Runs the probes of a `Config`; `apply` swaps in a new one."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.records: dict[str, ProbeRecord] = {}
        self.shared = SharedResources()
        self.in_flight = 0
        self.lag = Histogram(LAG_BUCKETS)
        # Bumped on every change the readiness score depends on.
        self.generation = 0
        self._limit = ConcurrencyLimit(config.scheduler.max_concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._assessment: tuple[int, Assessment] | None = None
        self._started = False
        self._subscribers: list[Callable[[ProbeRecord], object]] = []
        for probe in config.probes:
            self._add(probe)

    def subscribe(self, callback: Callable[[ProbeRecord], object]) -> None:
        """Call *callback* with each record after its new result (the
        metrics renderer renders its lines then, so a scrape only joins)."""
        self._subscribers.append(callback)

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Start one task per probe."""
        self._started = True
        for record in self.records.values():
            self._start_task(record)

    async def stop(self) -> None:
        """Cancel every task and close every connection."""
        self._started = False
        for name in list(self.records):
            await self._remove(name)
        await self.shared.aclose()

    async def apply(self, config: Config) -> None:
        """Swap to *config*: unchanged probes keep running and their state."""
        self._limit.set_limit(config.scheduler.max_concurrency)
        wanted = {probe.name: probe for probe in config.probes}
        for name in list(self.records):
            if name not in wanted or wanted[name] != self.records[name].config:
                await self._remove(name)
        self.config = config
        for name, probe in wanted.items():
            if name not in self.records:
                self._add(probe)
        # Gateways and sessions no remaining probe uses are closed now, not
        # at shutdown, so reloads do not pile up connections.
        in_use = set().union(*(r.ctx.shared_keys for r in self.records.values()))
        await self.shared.prune(in_use)
        self.generation += 1

    def _add(self, probe: BaseProbeConfig) -> None:
        record = ProbeRecord(probe, ProbeContext(probe.name, self.shared))
        self.records[probe.name] = record
        if self._started:
            self._start_task(record)

    def _start_task(self, record: ProbeRecord) -> None:
        name = record.config.name
        self._tasks[name] = asyncio.create_task(
            self._loop(record), name=f"probe:{name}"
        )

    async def _remove(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        record = self.records.pop(name, None)
        if record is not None:
            await record.ctx.aclose()
        self.generation += 1

    # --- running ---------------------------------------------------------------

    async def _loop(self, record: ProbeRecord) -> None:
        probe = record.config
        jitter = self.config.scheduler.jitter
        planned = time.monotonic() + random.uniform(0, jitter * probe.interval)
        while True:
            await asyncio.sleep(max(0.0, planned - time.monotonic()))
            try:
                await self.run(record, planned)
            except Exception:  # the runner catches probes; this is our bug
                logger.exception("scheduling probe %s failed", probe.name)
            planned += probe.interval
            now = time.monotonic()
            if planned < now:
                # Fell behind (overload): skip the missed slots, keep cadence.
                missed = int((now - planned) // probe.interval) + 1
                planned += missed * probe.interval

    async def run(self, record: ProbeRecord, planned: float | None = None) -> None:
        """Run *record*'s probe once (bounded by the concurrency limit)."""
        async with self._limit:
            if planned is not None:
                self.lag.observe(max(0.0, time.monotonic() - planned))
            self.in_flight += 1
            try:
                result = await run_probe(record.config, record.ctx)
            finally:
                self.in_flight -= 1
        # A probe removed while it ran must not come back.
        if self.records.get(record.config.name) is record:
            record.record(result)
            self.generation += 1
            for callback in self._subscribers:
                try:
                    callback(record)
                except Exception:  # one subscriber's bug must not starve the rest
                    logger.exception(
                        "a result subscriber failed on %s", record.config.name
                    )

    async def run_all_once(self) -> None:
        """Run every probe once, concurrently (the `check` command)."""
        await asyncio.gather(*(self.run(r) for r in list(self.records.values())))

    # --- reading -----------------------------------------------------------------

    def all_ran(self) -> bool:
        """Whether every configured probe has run at least once."""
        return all(r.result is not None for r in self.records.values())

    def assessment(self) -> Assessment:
        """Every system's readiness and the estate's, recomputed after a
        change, or when an attestation expires."""
        now = time.time()
        cached = self._assessment
        if cached and cached[0] == self.generation and now < cached[1].valid_until:
            return cached[1]
        pending: dict[str, int] = {}
        for record in self.records.values():
            if record.result is None:
                pending[record.config.system] = pending.get(record.config.system, 0) + 1
        assessment = assess_systems(
            self.config.systems,
            [
                (r.config.system, r.config.name, r.config.kind, r.result.checks)
                for r in self.records.values()
                if r.result is not None
            ],
            now,
            pending,
        )
        self._assessment = (self.generation, assessment)
        return assessment
