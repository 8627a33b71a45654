"""BullMQ queue depths read straight from a queue's Redis keys (redis kind part).

BullMQ v4/v5 keeps a queue under `{prefix}:{queue}:`: lists `wait`, `active`,
`paused`, sorted sets `prioritized` (waiting jobs with a priority), `delayed`,
`failed`, `completed`, and the hash `meta` (`paused` set while the queue is
paused). One LLEN/ZCARD/HGETALL per key, all in the probe's one pipeline; a
queue with no keys yet has zero jobs. The probe emits, per configured queue:

    readiness_redis_bullmq_jobs{probe="cache",queue="pdf",state="waiting"} 3
    readiness_redis_bullmq_jobs{probe="cache",queue="pdf",state="failed"} 0
    readiness_redis_bullmq_queue_paused{probe="cache",queue="pdf"} 0
    readiness_check_passed{probe="cache",check="bullmq_pdf_backlog",...} 1
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

from exporter.probes.base import (
    Category,
    CheckDef,
    MetricSpec,
    Model,
    Sample,
    Severity,
)

STATES = ("waiting", "active", "delayed", "paused", "failed", "completed")

METRICS = (
    MetricSpec(
        "redis_bullmq_jobs",
        "Jobs of a BullMQ queue by state (waiting includes prioritized), last run.",
        labels=("queue", "state"),
    ),
    MetricSpec(
        "redis_bullmq_queue_paused",
        "1 when the BullMQ queue is paused (meta hash field `paused`).",
        labels=("queue",),
    ),
)

# BullMQ itself rejects ':' in queue names; the name also becomes part of
# check names, so keep it to plain characters.
QueueName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class BullmqQueue(Model):
    """One queue and the limits its job counts must keep."""

    name: QueueName
    waiting_max: int | None = Field(default=None, ge=0)
    active_max: int | None = Field(default=None, ge=0)
    delayed_max: int | None = Field(default=None, ge=0)
    failed_max: int | None = Field(default=None, ge=0)
    backlog_growth_runs: int | None = Field(default=5, ge=1, le=1000)

    def limits(self) -> dict[str, int]:
        """The configured `<state>_max` limits, by state."""
        limits = {
            "waiting": self.waiting_max,
            "active": self.active_max,
            "delayed": self.delayed_max,
            "failed": self.failed_max,
        }
        return {state: limit for state, limit in limits.items() if limit is not None}


class BullmqConfig(Model):
    """Where the queues live (`prefix`, BullMQ's default is `bull`) and which."""

    prefix: str = Field(default="bull", min_length=1, pattern=r"^\S+$")
    queues: tuple[BullmqQueue, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_queue_names(self) -> Self:
        names = [queue.name for queue in self.queues]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"bullmq.queues lists {twice} more than once")
        return self


def _queues(config: Any, wanted: Callable[[BullmqQueue], bool]) -> list[str]:
    return [q.name for q in config.bullmq.queues if wanted(q)] if config.bullmq else []


CHECKS = (
    CheckDef(
        "bullmq_eviction_policy",
        Category.DATA,
        Severity.WARNING,
        "maxmemory-policy is noeviction, as BullMQ requires (with `bullmq`).",
        when=lambda config: config.bullmq is not None,
    ),
    CheckDef(
        "bullmq_{item}_depth",
        Category.PERFORMANCE,
        Severity.WARNING,
        "Every job count of the queue with a `<state>_max` limit is at most its limit "
        "(for queues with a limit).",
        threshold="bullmq.queues[].<state>_max",
        items=lambda config: _queues(config, lambda queue: bool(queue.limits())),
    ),
    CheckDef(
        "bullmq_{item}_backlog",
        Category.PERFORMANCE,
        Severity.WARNING,
        "The queue's jobs not yet started did not grow on each of its last "
        "`backlog_growth_runs` runs (for queues with `backlog_growth_runs`).",
        threshold="bullmq.queues[].backlog_growth_runs",
        items=lambda config: _queues(
            config, lambda queue: queue.backlog_growth_runs is not None
        ),
    ),
)
"""The rows of the redis kind's table for its BullMQ queues."""


# --- reading the keys --------------------------------------------------------

# (command, key suffix) in the order the replies are read back.
_READS = (
    ("LLEN", "wait"),
    ("LLEN", "active"),
    ("LLEN", "paused"),
    ("ZCARD", "prioritized"),
    ("ZCARD", "delayed"),
    ("ZCARD", "failed"),
    ("ZCARD", "completed"),
    ("HGETALL", "meta"),
)
READS_PER_QUEUE = len(_READS)


def commands(prefix: str, queue: str) -> list[tuple[str, str]]:
    """The pipelined reads for one queue."""
    return [(command, f"{prefix}:{queue}:{suffix}") for command, suffix in _READS]


def key_of(prefix: str, queue: str, index: int) -> str:
    """The key read by the *index*-th command of `commands` (for messages)."""
    return f"{prefix}:{queue}:{_READS[index][1]}"


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Job counts of one queue."""

    waiting: int
    active: int
    delayed: int
    paused: int
    failed: int
    completed: int
    is_paused: bool

    def by_state(self) -> dict[str, int]:
        """Counts keyed by the closed set of `STATES`."""
        return {state: getattr(self, state) for state in STATES}

    @property
    def not_started(self) -> int:
        """Jobs that wait for a worker, paused or not: the backlog."""
        return self.waiting + self.paused


def _meta_fields(reply: object) -> dict[str, object]:
    # HGETALL is a map under RESP3 and a flat [field, value, ...] list under RESP2.
    if isinstance(reply, dict):
        return {str(k): v for k, v in reply.items()}
    if isinstance(reply, list):
        return {str(k): v for k, v in zip(reply[::2], reply[1::2], strict=True)}
    raise TypeError(f"HGETALL returned {type(reply).__name__}")


def counts_from(replies: Sequence[object]) -> QueueCounts:
    """Turn one queue's replies (in `commands` order) into counts."""
    sizes = [int(str(reply)) for reply in replies[:-1]]
    wait, active, paused, prioritized, delayed, failed, completed = sizes
    meta = _meta_fields(replies[-1])
    waiting = wait + prioritized
    is_paused = str(meta.get("paused", "0")) not in ("0", "", "false")
    if is_paused:
        # Newer BullMQ keeps a paused queue's jobs in `wait` and flags `meta`.
        paused, waiting = paused + waiting, 0
    return QueueCounts(
        waiting=waiting,
        active=active,
        delayed=delayed,
        paused=paused,
        failed=failed,
        completed=completed,
        is_paused=is_paused,
    )


# --- verdicts ----------------------------------------------------------------


def depth_verdict(queue: BullmqQueue, counts: QueueCounts) -> tuple[bool, str]:
    """Every limited count at most its limit; the detail names the excess."""
    by_state = counts.by_state()
    over = [
        f"{state} {by_state[state]} > {limit}"
        for state, limit in queue.limits().items()
        if by_state[state] > limit
    ]
    if over:
        return False, "over limit: " + ", ".join(over)
    shown = ", ".join(
        f"{state} {by_state[state]}/{limit}" for state, limit in queue.limits().items()
    )
    return True, f"within limits ({shown})"


class BacklogWindow:
    """The last N+1 backlog sizes of one queue, to see N growths in a row."""

    def __init__(self, runs: int) -> None:
        self.runs = runs
        self._sizes: deque[int] = deque(maxlen=runs + 1)

    def observe(self, backlog: int) -> tuple[bool, str]:
        """Add this run's backlog; fail when it grew on each of the last N runs."""
        self._sizes.append(backlog)
        sizes = list(self._sizes)
        if len(sizes) <= self.runs:
            return True, (
                f"backlog {backlog}; {len(sizes) - 1} of {self.runs} runs seen so far"
            )
        growing = all(later > earlier for earlier, later in itertools.pairwise(sizes))
        if growing:
            return False, (
                f"backlog grew on each of the last {self.runs} runs"
                f" ({sizes[0]} -> {backlog})"
            )
        return True, f"backlog {backlog}, not growing on every run"


def samples(name: str, counts: QueueCounts) -> list[Sample]:
    """Job counts by state (label values: the configured name, `STATES`)."""
    jobs = [
        Sample.of("redis_bullmq_jobs", count, queue=name, state=state)
        for state, count in counts.by_state().items()
    ]
    return [
        *jobs,
        Sample.of("redis_bullmq_queue_paused", float(counts.is_paused), queue=name),
    ]
