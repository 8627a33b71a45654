"""What a probe gets besides its config: its deadline, memory across runs,
shared clients.

The runner gives every run a `Deadline` (`ctx.deadline`): how long the
run's drivers may wait, ending a little before the runner's own hard
timeout, so a driver's timeout fires first and the probe can still say what
hung and close its connection.

Probes that keep something between runs (a database connection, the last
counters for a rate, a window of latencies) ask for it with
`ctx.state(SomeState)`; the same instance comes back on every run of that
probe until the probe is removed or its config changes. Things shared by many
probes (one HTTP client session, one connection per Modbus gateway) come from
`ctx.shared(key, factory)`. Anything with an async `aclose()` or `close()` is
closed when its owner goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")

logger = logging.getLogger(__name__)


async def close_quietly(resource: object) -> None:
    """Close *resource* if it knows how; a failure to close is only logged."""
    for method_name in ("aclose", "close"):
        method = getattr(resource, method_name, None)
        if method is None:
            continue
        try:
            outcome = method()
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:  # closing must never take the daemon down
            logger.warning("closing %s failed", type(resource).__name__, exc_info=True)
        return


class Deadline:
    """The time one run has left, owned by the runner.

    *budget* is what drivers may spend: the probe's timeout less a margin
    (10 %, at most 0.5 s) that leaves the probe time to report and clean up
    before the runner cancels it. `remaining()` never hands a driver zero or
    a negative time, which several read as "no timeout": a spent budget is a
    `TimeoutError`, as the driver's own would have been.

        deadline = Deadline(10.0)   # budget 9.5 s, grace 0.5 s
        await asyncio.wait_for(read(), deadline.remaining())
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.budget = timeout - min(0.5, timeout * 0.1)
        self.grace = timeout - self.budget
        self._end = time.monotonic() + self.budget

    def remaining(self) -> float:
        """Seconds left of the budget; `TimeoutError` when none are."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer within {self.budget:g}s")
        return left

    def share(self, fraction: float) -> float:
        """*fraction* of the whole budget, or what is left if that is less:
        the time one phase of a run (server selection, one request) may
        take, so that a later phase still has time."""
        return min(self.budget * fraction, self.remaining())

    def loop_time(self) -> float:
        """The end of the budget on the event loop's clock, for
        `asyncio.timeout_at`."""
        return asyncio.get_running_loop().time() + (self._end - time.monotonic())


class SharedResources:
    """App-wide objects keyed by whatever identifies them (a gateway, ...)."""

    def __init__(self) -> None:
        self._items: dict[Hashable, object] = {}

    def get(self, key: Hashable, factory: Callable[[], T]) -> T:
        """The object for *key*, made by *factory* on first use."""
        if key not in self._items:
            self._items[key] = factory()
        return cast(T, self._items[key])

    async def prune(self, in_use: set[Hashable]) -> None:
        """Close the objects whose keys are not in *in_use*."""
        for key in [k for k in self._items if k not in in_use]:
            await close_quietly(self._items.pop(key))

    async def aclose(self) -> None:
        """Close everything (at shutdown)."""
        items, self._items = list(self._items.values()), {}
        for item in items:
            await close_quietly(item)


class ProbeContext:
    """One probe's view of the daemon; lives as long as the probe's config."""

    def __init__(self, probe_name: str, shared: SharedResources) -> None:
        self.probe_name = probe_name
        # Replaced by the runner at the start of every run; a probe called
        # outside the runner finds its budget already spent.
        self.deadline = Deadline(0.0)
        self._shared = shared
        self._states: dict[type[Any], object] = {}
        self.shared_keys: set[Hashable] = set()

    def state(self, cls: type[T]) -> T:
        """This probe's instance of *cls*, made with `cls()` on first use."""
        if cls not in self._states:
            self._states[cls] = cls()
        return cast(T, self._states[cls])

    def shared(self, key: Hashable, factory: Callable[[], T]) -> T:
        """The app-wide object for *key*, made by *factory* on first use."""
        self.shared_keys.add(key)
        return self._shared.get(key, factory)

    async def aclose(self) -> None:
        """Close this probe's own state (connections and the like)."""
        states, self._states = list(self._states.values()), {}
        for state in states:
            with contextlib.suppress(Exception):
                await close_quietly(state)
