"""The workers kind's verdicts on the items of one run: alive (each, and
enough of them), memory and queue depth under their limits (fixed, or the
item's own from the reply), counters that may rise only by their budget
within a window, and values that may not grow run after run."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable

from exporter.probes.base import Checks
from exporter.probes.workers.config import MEMORY_PLAUSIBLE_MIN, Limit
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


def judge_alive_min(
    checks: Checks, items: list[Item], alive_field: str, minimum: int
) -> None:
    """Record `workers_alive_count`: the live workers, summed over the items
    (a worker's state counts 1, a queue its connected workers), at least
    *minimum*."""
    counted = [(i.label, i.values.get(alive_field, 0.0)) for i in items]
    live = sum(max(value, 0.0) for _, value in counted)
    by_item = _shown(
        f"{label} {number(value)}" for label, value in counted if value > 0
    )
    checks.record(
        "workers_alive_count",
        live >= minimum,
        f"{number(live)} live, minimum {minimum}"
        + (f" ({by_item})" if by_item else ""),
    )


def _mib(value: float) -> str:
    return f"{value / 1024**2:.1f} MiB"


def number(value: float) -> str:
    """A figure as people write it: 1200, 0.75, not 1.2e+03."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def item_limit(item: Item, limit: Limit) -> tuple[float | None, str]:
    """The limit that applies to *item*: the first number, or the first
    named value the item has; else None and what was missing."""
    for candidate in limit:
        if isinstance(candidate, float):
            return candidate, ""
        if candidate in item.values:
            return item.values[candidate], ""
    named = [c for c in limit if isinstance(c, str)]
    why = item.problems.get(named[0], "") if named else ""
    return None, f"no {' or '.join(named)} figure" + (f" ({why})" if why else "")


def _judge_against_limits(
    items: list[Item],
    field_name: str,
    limit: Limit,
    over: Callable[[float, float], bool],
    show: Callable[[float], str],
) -> tuple[list[str], list[str], list[tuple[Item, float, float]]]:
    """(items over their limit, items without a limit, (item, value, limit))."""
    failing: list[str] = []
    unlimited: list[str] = []
    judged: list[tuple[Item, float, float]] = []
    for item in items:
        if field_name not in item.values:
            continue
        value = item.values[field_name]
        applies, missing = item_limit(item, limit)
        if applies is None:
            unlimited.append(f"{item.label} ({missing})")
            continue
        judged.append((item, value, applies))
        if over(value, applies):
            failing.append(f"{item.label} {show(value)} of {show(applies)}")
    return failing, unlimited, judged


def judge_memory(
    checks: Checks, items: list[Item], field_name: str, limit: Limit
) -> None:
    """Record `worker_memory`: every worker's memory below its limit."""
    if not any(field_name in i.values for i in items):
        checks.record("worker_memory", False, f"no {field_name} figure in the reply")
        return
    failing, unlimited, judged = _judge_against_limits(
        items, field_name, limit, lambda value, top: value >= top, _mib
    )
    hint = ""
    if any(top < MEMORY_PLAUSIBLE_MIN for _, _, top in judged):
        hint = "; a limit under 1 MiB: is it in MB? scale it to bytes"
    elif judged and max(value for _, value, _ in judged) < MEMORY_PLAUSIBLE_MIN:
        hint = f"; figures under 1 MiB: is {field_name} in MB? set its scale"
    if failing or unlimited:
        parts = (["at or over the limit: " + _shown(failing)] if failing else []) + (
            ["no limit for " + _shown(unlimited)] if unlimited else []
        )
        checks.record("worker_memory", False, "; ".join(parts) + hint)
        return
    top_item, top_value, top_limit = max(judged, key=lambda row: row[1] / row[2])
    checks.record(
        "worker_memory",
        True,
        f"highest {_mib(top_value)} ({top_item.label}) of {_mib(top_limit)}{hint}",
    )


def judge_queue(
    checks: Checks, items: list[Item], field_name: str, limit: Limit
) -> None:
    """Record `queue_depth`: every item's depth at most its limit."""
    measured = [i for i in items if field_name in i.values]
    if not measured:
        checks.record("queue_depth", False, f"no {field_name} figure in the reply")
        return
    total = sum(i.values[field_name] for i in measured)
    failing, unlimited, judged = _judge_against_limits(
        items, field_name, limit, lambda value, top: value > top, number
    )
    if failing or unlimited:
        parts = (["over the limit: " + _shown(failing)] if failing else []) + (
            ["no limit for " + _shown(unlimited)] if unlimited else []
        )
        checks.record("queue_depth", False, "; ".join(parts))
        return
    limits = {top for _, _, top in judged}
    shown = (
        f"limit {number(limits.pop())}" if len(limits) == 1 else "each under its limit"
    )
    checks.record("queue_depth", True, f"total {number(total)}, {shown}")


class GrowthState:
    """The last N+1 values of each (value, item), to see N growths in a row."""

    def __init__(self) -> None:
        self.history: dict[tuple[str, str], deque[float]] = {}

    def observe(
        self,
        value_name: str,
        runs: int,
        items: list[Item],
        show: Callable[[float], str] = number,
    ) -> tuple[list[str], int, int]:
        """Add this run's values; (items that grew on each of the last *runs*
        runs, described, how many items were judged, the fewest runs seen)."""
        grown: list[str] = []
        seen_runs = runs
        current = {(value_name, i.label) for i in items if value_name in i.values}
        # Items gone from the reply stop being tracked (labels may churn).
        for key in [k for k in self.history if k[0] == value_name]:
            if key not in current:
                del self.history[key]
        for item in items:
            if value_name not in item.values:
                continue
            key = (value_name, item.label)
            window = self.history.get(key)
            if window is None or window.maxlen != runs + 1:
                window = self.history[key] = deque(window or (), maxlen=runs + 1)
            window.append(item.values[value_name])
            seen_runs = min(seen_runs, len(window) - 1)
            if len(window) > runs and all(
                later > earlier for earlier, later in itertools.pairwise(window)
            ):
                grown.append(f"{item.label} {show(window[0])} -> {show(window[-1])}")
        return grown, len(current), seen_runs


def judge_growth(
    checks: Checks,
    state: GrowthState,
    value_name: str,
    runs: int,
    items: list[Item],
    memory: bool = False,
) -> None:
    """Record `growth_<value>`: no item's value grew on each of the last
    *runs* runs (*memory*: the value is bytes, shown in MiB)."""
    check = f"growth_{value_name}"
    grown, judged, seen = state.observe(
        value_name, runs, items, _mib if memory else number
    )
    if not judged:
        checks.record(check, False, f"no {value_name} figure in the reply")
    elif grown:
        checks.record(
            check,
            False,
            f"grew on each of the last {runs} runs: {_shown(grown)}",
        )
    elif seen < runs:
        checks.record(check, True, f"{seen} of {runs} runs seen so far")
    else:
        checks.record(check, True, f"not growing on every one of the last {runs} runs")


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
        checks.record(check, True, f"first run, baseline {number(total)}")
    else:
        checks.record(
            check,
            rise <= budget,
            f"rose by {number(rise)} (budget {number(budget)}), now {number(total)}",
        )
