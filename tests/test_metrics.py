"""The metrics renderer's text, parsed back with prometheus_client's own parsers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter import __version__
from exporter.metrics import DaemonStatus, MetricsRenderer
from exporter.scheduler import Scheduler
from tests.conftest import config_from
from tests.kinds import scripted_kind

CONFIG = """
scheduler: {jitter: 0}
probes:
  - {kind: scripted, name: good, interval: 10, timeout: 1, labels: {team: web}}
  - {kind: scripted, name: bad, behaviour: raise, interval: 10, timeout: 1}
"""


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


@pytest.fixture
async def scheduler(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Scheduler]:
    with scripted_kind(monkeypatch):
        scheduler = Scheduler(config_from(CONFIG))
        await scheduler.run_all_once()
        yield scheduler
        await scheduler.stop()


async def test_probe_series(scheduler: Scheduler) -> None:
    text = MetricsRenderer(scheduler, DaemonStatus(started_at=1.0)).render()
    good = {"kind": "scripted", "probe": "good", "system": "default", "team": "web"}
    bad = {"kind": "scripted", "probe": "bad", "system": "default"}
    assert value(text, "readiness_probe_success", **good) == 1
    assert value(text, "readiness_probe_success", **bad) == 0
    assert value(text, "readiness_probe_up", **bad) == 0
    assert value(text, "readiness_probe_runs_total", **bad) == 1
    assert value(text, "readiness_probe_failures_total", **bad) == 1
    assert value(text, "readiness_probe_failure_info", reason="connect", **bad) == 1
    assert value(text, "readiness_probe_failure_info", reason="timeout", **bad) == 0
    assert value(text, "readiness_probe_latency_seconds_count", **good) == 1
    assert (
        value(
            text,
            "readiness_check_passed",
            probe="good",
            system="default",
            kind="scripted",
            check="alive",
            category="reliability",
            severity="critical",
            team="web",
        )
        == 1
    )
    assert (
        value(
            text,
            "readiness_check_passed",
            probe="bad",
            system="default",
            kind="scripted",
            check="alive",
            category="reliability",
            severity="critical",
        )
        == 0
    )
    # Kind samples: probe label added, first of two duplicates kept,
    # undeclared names dropped, the scrape still whole.
    assert (
        value(
            text,
            "readiness_scripted_value",
            probe="good",
            system="default",
            part="a",
            team="web",
        )
        == 1
    )
    assert "undeclared" not in text
    assert (
        value(
            text,
            "readiness_build_info",
            version=__version__,
            python_version=__import__("platform").python_version(),
        )
        == 1
    )


async def test_score_and_verdict(scheduler: Scheduler) -> None:
    text = MetricsRenderer(scheduler, DaemonStatus(started_at=1.0)).render()
    # reliability 0.5 (one of two critical checks), security 0.5 (one warning
    # of two): 0.5 overall, not ready.
    assert value(text, "readiness_category_score_ratio", category="reliability") == 0.5
    assert value(text, "readiness_score_ratio") == 0.5
    assert value(text, "readiness_verdict", verdict="not_ready") == 1
    assert value(text, "readiness_verdict", verdict="ready") == 0
    # The one system is the estate.
    assert value(text, "readiness_system_score_ratio", system="default") == 0.5
    assert (
        value(text, "readiness_system_verdict", system="default", verdict="not_ready")
        == 1
    )
    assert (
        value(text, "readiness_system_critical_checks_failing", system="default") == 1
    )


async def test_probes_are_rendered_as_results_arrive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        scheduler = Scheduler(config_from(CONFIG))
        renderer = MetricsRenderer(scheduler, DaemonStatus(started_at=1.0))
        await scheduler.run_all_once()
        # No scrape happened: the lines were built when the results came in.
        rendered = [renderer.cached(r) for r in scheduler.records.values()]
        await scheduler.stop()
    assert len(rendered) == 2
    assert all(r and "readiness_probe_success" in r for r in rendered)


async def test_removed_probes_vanish_and_cache_is_reused(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    renderer = MetricsRenderer(scheduler, DaemonStatus(started_at=1.0))
    renderer.render()
    good = scheduler.records["good"]
    cached = renderer.cached(good)
    assert cached is not None
    renderer.render()
    assert renderer.cached(good) is cached  # nothing changed, nothing re-rendered
    with scripted_kind(monkeypatch):
        await scheduler.apply(
            config_from(
                "probes:\n  - {kind: scripted, name: good, interval: 10, timeout: 1,"
                " labels: {team: web}}\n"
            )
        )
        text = renderer.render()
        assert 'probe="bad"' not in text
        assert 'probe="good"' in text
        await scheduler.run(good)
    # A new result re-renders the probe at once.
    assert renderer.cached(good) is not cached
    assert (
        value(
            renderer.render(),
            "readiness_probe_runs_total",
            kind="scripted",
            probe="good",
            system="default",
            team="web",
        )
        == 2
    )


async def test_openmetrics_parses(scheduler: Scheduler) -> None:
    text = MetricsRenderer(scheduler, DaemonStatus(started_at=1.0)).render(
        openmetrics=True
    )
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["readiness_probe_runs"].type == "counter"
    assert families["readiness_build"].type == "info"
    assert families["readiness_probe_latency_seconds"].type == "histogram"


async def test_label_values_are_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    with scripted_kind(monkeypatch):
        scheduler = Scheduler(
            config_from(
                "probes:\n  - {kind: scripted, name: 'we\"ird\\name', interval: 10,"
                " timeout: 1}\n"
            )
        )
        await scheduler.run_all_once()
        text = MetricsRenderer(scheduler, DaemonStatus(started_at=1.0)).render()
        await scheduler.stop()
    assert (
        value(
            text,
            "readiness_probe_success",
            kind="scripted",
            probe='we"ird\\name',
            system="default",
        )
        == 1
    )
