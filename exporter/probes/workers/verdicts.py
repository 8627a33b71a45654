"""The workers kind's verdicts on the items of one run: alive, memory, queue
depth, and counters that may rise only by their budget within a window."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from exporter.probes.base import Checks
from exporter.probes.workers.mapping import Item


class BudgetState:
    """Previous error and restart totals of this probe, for the budgets."""

    def __init__(self) -> None:
        self.history: dict[str, deque[tuple[float, float]]] = {}

    def rise(self, key: str, total: float, now: float, window: float) -> float | None:
        """How much *total* rose since the window's start (or the last run);
        None on the first run. A drop means the app restarted its counters."""
        history = self.history.setdefault(key, deque(maxlen=10_000))
        if history and total < history[-1][1]:
            history.clear()
        baseline: tuple[float, float] | None = history[-1] if history else None
        if window > 0:
            while len(history) > 1 and history[1][0] <= now - window:
                history.popleft()
            baseline = history[0] if history else None
        else:
            history.clear()
        history.append((now, total))
        return None if baseline is None else total - baseline[1]


def _shown(items: Iterable[str], limit: int = 4) -> str:
    listed = list(items)
    more = f" and {len(listed) - limit} more" if len(listed) > limit else ""
    return ", ".join(listed[:limit]) + more


def _why_not_alive(item: Item, alive_field: str) -> str:
    if alive_field in item.values:
        return f"{alive_field} {item.values[alive_field]:g}"
    return item.problems.get(alive_field, f"no {alive_field}")


def judge_alive(checks: Checks, items: list[Item], alive_field: str) -> int:
    """Record `workers_alive`; return how many items are alive."""
    alive = [i for i in items if i.values.get(alive_field, 0.0) > 0]
    dead = [
        f"{i.label} ({_why_not_alive(i, alive_field)})"
        for i in items
        if i.values.get(alive_field, 0.0) <= 0
    ]
    if not items:
        checks.record("workers_alive", False, "no workers found in the reply")
    else:
        detail = f"{len(alive)} of {len(items)} alive"
        checks.record(
            "workers_alive",
            not dead,
            detail + (f"; not alive: {_shown(dead)}" if dead else ""),
        )
    return len(alive)


def _mib(value: float) -> str:
    return f"{value / 1024**2:.1f} MiB"


def judge_memory(
    checks: Checks, items: list[Item], field_name: str, limit: float
) -> None:
    """Record `worker_memory`: every worker's memory below *limit*."""
    measured = [i for i in items if field_name in i.values]
    if not measured:
        checks.record("worker_memory", False, f"no {field_name} figure in the reply")
        return
    over = [i for i in measured if i.values[field_name] >= limit]
    top = max(measured, key=lambda i: i.values[field_name])
    if over:
        shown = _shown(f"{i.label} {_mib(i.values[field_name])}" for i in over)
        checks.record("worker_memory", False, f"at or over {_mib(limit)}: {shown}")
    else:
        checks.record(
            "worker_memory",
            True,
            f"highest {_mib(top.values[field_name])} ({top.label}) of {_mib(limit)}",
        )


def judge_queue(
    checks: Checks, items: list[Item], field_name: str, limit: float
) -> None:
    """Record `queue_depth`: every item's depth at most *limit*."""
    measured = [i for i in items if field_name in i.values]
    total = sum(i.values[field_name] for i in measured)
    if not measured:
        checks.record("queue_depth", False, f"no {field_name} figure in the reply")
        return
    over = [i for i in measured if i.values[field_name] > limit]
    shown = _shown(f"{i.label} {i.values[field_name]:g}" for i in over)
    checks.record(
        "queue_depth",
        not over,
        f"over {limit:g}: {shown}" if over else f"total {total:g}, limit {limit:g}",
    )


def judge_budget(
    checks: Checks,
    check: str,
    total: float | None,
    rise: float | None,
    budget: float,
) -> None:
    """Record a budget check: the total rose by at most *budget*."""
    if total is None:
        checks.record(check, False, "no figure in the reply")
    elif rise is None:
        checks.record(check, True, f"first run, baseline {total:g}")
    else:
        checks.record(
            check,
            rise <= budget,
            f"rose by {rise:g} (budget {budget:g}), now {total:g}",
        )
