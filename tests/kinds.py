"""A test-only probe kind whose behaviour the test chooses, registered in the
real table for the duration of a test (no I/O of ours is replaced)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar, Literal

import pytest

from exporter.kinds import PROBES, ProbeKind
from exporter.probes.base import (
    BaseProbeConfig,
    Category,
    CheckDef,
    Checks,
    MetricSpec,
    ProbeError,
    ProbeResult,
    Reason,
    Sample,
    Severity,
)
from exporter.probes.context import ProbeContext

METRICS = (MetricSpec("scripted_value", "A value the test chose.", labels=("part",)),)


class ScriptedConfig(BaseProbeConfig):
    """What the scripted probe does: fail a check, raise, sleep, emit."""

    kind: Literal["scripted"] = "scripted"
    behaviour: Literal[
        "pass",
        "fail_critical",
        "fail_warning",
        "raise",
        "protocol",
        "crash",
        "sleep",
        "reason",
    ] = "pass"
    sleep: float = 0.0
    value: float = 1.0


class Tracker:
    """Counts runs in flight, to observe the scheduler's bounds."""

    in_flight = 0
    most = 0
    runs = 0
    starts: ClassVar[list[int]] = []  # runs in flight as each run started


CHECKS = (
    CheckDef("alive", Category.RELIABILITY, Severity.CRITICAL, "It is alive."),
    CheckDef("tidy", Category.SECURITY, Severity.WARNING, "It is tidy."),
)


async def probe(config: ScriptedConfig, ctx: ProbeContext) -> ProbeResult:
    Tracker.in_flight += 1
    Tracker.starts.append(Tracker.in_flight)
    Tracker.most = max(Tracker.most, Tracker.in_flight)
    Tracker.runs += 1
    try:
        if config.sleep:
            await asyncio.sleep(config.sleep)
        checks = Checks(CHECKS, config)
        b = config.behaviour
        if b == "raise":
            raise ConnectionRefusedError("refused by postgresql://app:hunter2@db/x")
        if b == "protocol":
            raise ProbeError(
                "garbled reply", samples=(Sample.of("scripted_value", 0, part="a"),)
            )
        if b == "crash":
            raise KeyError("bug")
        checks.record("alive", b != "fail_critical", "scripted")
        checks.record("tidy", b != "fail_warning", "scripted")
        return ProbeResult(
            checks=checks.finish(),
            samples=(
                Sample.of("scripted_value", config.value, part="a"),
                Sample.of("scripted_value", 99, part="a"),  # duplicate label set
                Sample.of("undeclared_thing", 1),
            ),
            reason=Reason.PROTOCOL if b == "reason" else None,
        )
    finally:
        Tracker.in_flight -= 1


@contextmanager
def scripted_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register the scripted kind in the real table for one test."""
    Tracker.in_flight = Tracker.most = Tracker.runs = 0
    Tracker.starts = []
    monkeypatch.setitem(
        PROBES,
        "scripted",
        ProbeKind("scripted", ScriptedConfig, probe, CHECKS, METRICS),
    )
    yield
