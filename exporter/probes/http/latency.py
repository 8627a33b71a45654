"""The http kind's latency window: the last runs, bounded in number and age.

`latency_p95` judges the p95 of the latencies in the window, which holds the
last `latency_window` runs that ended within the last
`latency_window_age_max`. The count keeps the p95 meaningful (one slow run
in twenty is tolerated); the age bounds how long a fixed fault keeps failing
the check, whatever the interval:

    runs: 20, age 5m, interval 10s -> at most 20 runs (200 s)
    runs: 20, age 5m, interval 60s -> at most 5 runs (300 s)
"""

from __future__ import annotations

from collections import deque


class LatencyWindow:
    """Latencies of this probe's last runs, each with when it ended.

    Kept in the probe's state (`ctx.state`), so a changed config starts an
    empty window. Times are monotonic seconds, passed in by the caller.
    """

    def __init__(self) -> None:
        self._runs: deque[tuple[float, float]] = deque()

    def add(
        self, seconds: float, *, now: float, runs: int, age_max: float | None
    ) -> list[float]:
        """Add a run that ended at *now* and took *seconds*; return the
        latencies of the window: the last *runs* runs at most *age_max*
        old (any age when None), the new one always among them."""
        self._runs.append((now, seconds))
        while len(self._runs) > runs:
            self._runs.popleft()
        if age_max is not None:
            while now - self._runs[0][0] > age_max:
                self._runs.popleft()
        return [latency for _, latency in self._runs]
