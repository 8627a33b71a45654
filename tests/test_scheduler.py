"""The scheduler: cadence, bounds, damping, reload without losing state."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from exporter.config import Config
from exporter.probes.base import ProbeResult
from exporter.probes.context import ProbeContext, SharedResources
from exporter.scheduler import ConcurrencyLimit, ProbeRecord, Scheduler
from tests.conftest import config_from
from tests.helpers import eventually
from tests.kinds import ScriptedConfig, Tracker, scripted_kind


def scripted(*probes: str, concurrency: int = 64) -> Config:
    lines = "\n".join(f"  - {p}" for p in probes)
    return config_from(
        f"scheduler: {{max_concurrency: {concurrency}, jitter: 0}}\nprobes:\n{lines}\n"
    )


def test_flap_damping_needs_consecutive_runs() -> None:
    config = ScriptedConfig(name="s", failure_threshold=3, success_threshold=2)
    record = ProbeRecord(config, ProbeContext("s", SharedResources()))
    ok, bad = ProbeResult(success=True), ProbeResult(success=False)
    states = []
    for result in (ok, bad, bad, ok, bad, bad, bad, ok, bad, ok, ok):
        record.record(result)
        states.append(record.up)
    assert states == [
        True,
        True,
        True,
        True,
        True,
        True,
        False,
        False,
        False,
        False,
        True,
    ]
    assert (record.runs, record.failures) == (11, 6)


async def test_probes_run_again_after_their_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        scheduler = Scheduler(
            scripted("{kind: scripted, name: a, interval: 0.05, timeout: 0.04}")
        )
        await scheduler.start()
        record = scheduler.records["a"]
        await eventually(lambda: record.runs >= 3)
        await scheduler.stop()
    assert record.runs >= 3
    assert scheduler.lag.count >= 3  # every scheduled run measured its lag


async def test_reloading_an_unchanged_probe_never_runs_it_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        config = scripted(
            "{kind: scripted, name: a, interval: 0.1, timeout: 0.09, sleep: 0.08}"
        )
        scheduler = Scheduler(config)
        await scheduler.start()
        record = scheduler.records["a"]
        for runs in range(1, 4):
            # Reload while a run is in flight, and again between runs.
            await eventually(lambda: Tracker.in_flight == 1)
            await scheduler.apply(config)
            await eventually(lambda: record.runs >= runs)  # noqa: B023 (awaited here)
            await scheduler.apply(config)
        await scheduler.stop()
    assert scheduler.records == {}
    assert Tracker.most == 1


async def test_a_probe_removed_mid_run_does_not_come_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        # The run would take a minute: only cancelling it ends it in time.
        scheduler = Scheduler(
            scripted(
                "{kind: scripted, name: slow, interval: 120, timeout: 90, sleep: 60}"
            )
        )
        await scheduler.start()
        await eventually(lambda: Tracker.in_flight == 1)
        await scheduler.apply(scripted())
        assert scheduler.records == {}
        assert Tracker.in_flight == 0  # the run was cancelled, not finished
        await scheduler.stop()
    assert Tracker.runs == 1


async def test_shared_objects_of_removed_probes_are_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[str] = []

    class Gateway:
        def __init__(self, name: str) -> None:
            self.name = name

        async def aclose(self) -> None:
            closed.append(self.name)

    with scripted_kind(monkeypatch):
        scheduler = Scheduler(
            scripted(
                "{kind: scripted, name: a, interval: 10, timeout: 1}",
                "{kind: scripted, name: b, interval: 10, timeout: 1}",
            )
        )
        for name in ("a", "b"):
            scheduler.records[name].ctx.shared(("gw", name), partial(Gateway, name))
        await scheduler.apply(
            scripted("{kind: scripted, name: a, interval: 10, timeout: 1}")
        )
        assert closed == ["b"]
        await scheduler.stop()
    assert closed == ["b", "a"]


async def test_the_concurrency_bound_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    with scripted_kind(monkeypatch):
        probes = [
            f"{{kind: scripted, name: p{i}, interval: 1, timeout: 0.5, sleep: 0.1}}"
            for i in range(6)
        ]
        scheduler = Scheduler(scripted(*probes, concurrency=2))
        await scheduler.run_all_once()
        await scheduler.stop()
    assert Tracker.most == 2
    assert Tracker.runs == 6
    assert scheduler.lag.count == 0  # run_all_once has no planned time


async def test_a_lower_limit_holds_for_runs_already_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        probes = [
            f"{{kind: scripted, name: p{i}, interval: 10, timeout: 1, sleep: 0.25}}"
            for i in range(6)
        ]
        scheduler = Scheduler(scripted(*probes, concurrency=3))
        runs = asyncio.gather(*(scheduler.run(r) for r in scheduler.records.values()))
        await eventually(lambda: Tracker.in_flight == 3)
        await scheduler.apply(scripted(*probes, concurrency=1))
        await runs
        await scheduler.stop()
    # Three ran under the old limit; the three waiting ones went one by one.
    assert Tracker.starts == [1, 2, 3, 1, 1, 1]


async def test_the_limit_survives_cancelled_waiters() -> None:
    limit = ConcurrencyLimit(1)
    entered: list[int] = []
    release = asyncio.Event()

    async def hold(n: int) -> None:
        async with limit:
            entered.append(n)
            if n == 1:
                await release.wait()

    first = asyncio.create_task(hold(1))
    await eventually(lambda: entered == [1])
    waiting = [asyncio.create_task(hold(n)) for n in (2, 3, 4)]
    await eventually(lambda: len(limit._waiters) == 3)
    waiting[0].cancel()  # cancelled while waiting: must not take a slot
    release.set()
    await asyncio.gather(first, *waiting, return_exceptions=True)
    assert entered == [1, 3, 4]
    assert limit.active == 0


async def test_reload_keeps_unchanged_probes_and_drops_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        scheduler = Scheduler(
            scripted(
                "{kind: scripted, name: keep, interval: 10, timeout: 1}",
                "{kind: scripted, name: change, interval: 10, timeout: 1}",
                "{kind: scripted, name: drop, interval: 10, timeout: 1}",
            )
        )
        await scheduler.start()
        kept = scheduler.records["keep"]
        await eventually(lambda: all(r.runs == 1 for r in scheduler.records.values()))
        await scheduler.apply(
            scripted(
                "{kind: scripted, name: keep, interval: 10, timeout: 1}",
                "{kind: scripted, name: change, interval: 10, timeout: 2}",
                "{kind: scripted, name: new, interval: 10, timeout: 1}",
            )
        )
        await eventually(lambda: scheduler.records["new"].runs == 1)
        await eventually(lambda: scheduler.records["change"].runs == 1)
        assert scheduler.records["keep"] is kept
        assert kept.runs == 1  # not restarted
        assert set(scheduler.records) == {"keep", "change", "new"}
        assert scheduler.records["change"].config.timeout == 2
        await scheduler.stop()
    assert scheduler.records == {}


async def test_readiness_follows_results(monkeypatch: pytest.MonkeyPatch) -> None:
    with scripted_kind(monkeypatch):
        scheduler = Scheduler(
            scripted(
                "{kind: scripted, name: good, interval: 10, timeout: 1}",
                "{kind: scripted, name: bad, behaviour: fail_critical,"
                " interval: 10, timeout: 1}",
            )
        )
        assert scheduler.assessment().estate.score is None
        assert not scheduler.all_ran()
        await scheduler.run_all_once()
        assert scheduler.all_ran()
        assessment = scheduler.assessment().systems["default"]
        await scheduler.stop()
    # reliability: 1 of 2 critical checks; security: both warnings pass.
    assert assessment.categories == {"reliability": 0.5, "security": 1.0}
    assert assessment.score == pytest.approx((0.5 * 0.30 + 1.0 * 0.25) / 0.55)


async def test_no_verdict_until_every_probe_ran_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        scheduler = Scheduler(
            scripted(
                "{kind: scripted, name: good, interval: 10, timeout: 1}",
                "{kind: scripted, name: later, interval: 10, timeout: 1}",
            )
        )
        await scheduler.run(scheduler.records["good"])
        first = scheduler.assessment().systems["default"]
        await scheduler.run(scheduler.records["later"])
        second = scheduler.assessment().systems["default"]
        # A new probe after a reload is waited for too.
        await scheduler.apply(
            scripted(
                "{kind: scripted, name: good, interval: 10, timeout: 1}",
                "{kind: scripted, name: later, interval: 10, timeout: 1}",
                "{kind: scripted, name: added, interval: 10, timeout: 1}",
            )
        )
        third = scheduler.assessment().systems["default"]
        await scheduler.stop()
    assert (first.score, first.verdict, first.pending) == (1.0, None, 1)
    assert (second.verdict, second.pending) == ("ready", 0)
    assert (third.verdict, third.pending) == (None, 1)


async def test_every_subscriber_gets_each_new_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        scheduler = Scheduler(
            scripted(
                "{kind: scripted, name: a, interval: 10, timeout: 1}",
                "{kind: scripted, name: b, behaviour: fail_critical,"
                " interval: 10, timeout: 1}",
            )
        )
        first: list[tuple[str, bool]] = []
        second: list[str] = []
        scheduler.subscribe(
            lambda record: first.append(
                (
                    record.config.name,
                    record.result is not None and record.result.success,
                )
            )
        )
        scheduler.subscribe(lambda record: second.append(record.config.name))
        await scheduler.run_all_once()
        await scheduler.run(scheduler.records["a"])
        await scheduler.stop()
    assert sorted(first) == [("a", True), ("a", True), ("b", False)]
    assert sorted(second) == ["a", "a", "b"]
