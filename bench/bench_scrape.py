"""How long /metrics takes for N probes: our cached collector against
prometheus_client's `generate_latest` over the same series, in one run.

    .venv/bin/python bench/bench_scrape.py [N]

Each probe gets a realistic last result (three checks, three kind samples)
and a few runs in its histogram; the figures are seconds per scrape.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from exporter.config import parse_config
from exporter.metrics import DaemonStatus, MetricsRenderer
from exporter.probes.base import Category, Check, ProbeResult, Reason, Sample, Severity
from exporter.scheduler import Scheduler


def build(n: int) -> Scheduler:
    text = "probes:\n" + "".join(
        f"  - {{kind: tcp, name: p{i}, host: h{i}, port: 80, labels: {{team: t{i % 7}}}}}\n"
        for i in range(n)
    )
    scheduler = Scheduler(parse_config(text))
    for i, record in enumerate(scheduler.records.values()):
        checks = (
            Check("port_open", True, Category.RELIABILITY, Severity.CRITICAL),
            Check(
                "expect_matched", i % 10 != 0, Category.RELIABILITY, Severity.CRITICAL
            ),
            Check("banner", True, Category.SECURITY, Severity.WARNING),
        )
        samples = (Sample("tcp_connect_seconds", 0.001 * (i % 50)),)
        for run in range(3):
            record.record(
                ProbeResult(
                    checks=checks,
                    samples=samples,
                    success=i % 10 != 0,
                    reason=None if i % 10 else Reason.CHECK,
                    duration_seconds=0.002 * (run + 1),
                    finished_at=1.8e9 + run,
                )
            )
    return scheduler


class PlainCollector:
    """The same series built the conventional way on every scrape."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        records = list(self.scheduler.records.values())
        labels = ["kind", "probe", "team"]
        gauges = {
            name: GaugeMetricFamily(name, name, labels=labels)
            for name in (
                "readiness_probe_success",
                "readiness_probe_up",
                "readiness_probe_duration_seconds",
                "readiness_probe_last_run_timestamp_seconds",
            )
        }
        runs = CounterMetricFamily("readiness_probe_runs", "r", labels=labels)
        fails = CounterMetricFamily("readiness_probe_failures", "f", labels=labels)
        info = GaugeMetricFamily(
            "readiness_probe_failure_info", "i", labels=[*labels, "reason"]
        )
        checks = GaugeMetricFamily(
            "readiness_check_passed",
            "c",
            labels=["probe", "check", "category", "severity", "team"],
        )
        latency = HistogramMetricFamily(
            "readiness_probe_latency_seconds", "l", labels=labels
        )
        connect = GaugeMetricFamily(
            "readiness_tcp_connect_seconds", "t", labels=["probe", "team"]
        )
        for r in records:
            result = r.result
            assert result is not None
            values = [r.config.kind, r.config.name, r.config.labels["team"]]
            gauges["readiness_probe_success"].add_metric(values, result.success)
            gauges["readiness_probe_up"].add_metric(values, bool(r.up))
            gauges["readiness_probe_duration_seconds"].add_metric(
                values, result.duration_seconds
            )
            gauges["readiness_probe_last_run_timestamp_seconds"].add_metric(
                values, result.finished_at
            )
            runs.add_metric(values, r.runs)
            fails.add_metric(values, r.failures)
            for reason in Reason:
                info.add_metric([*values, reason.value], result.reason is reason)
            for c in result.checks:
                checks.add_metric(
                    [r.config.name, c.name, c.category, c.severity, values[2]], c.passed
                )
            buckets = [
                (repr(float(b)), n)
                for b, n in zip(r.latency.bounds, r.latency.counts, strict=True)
            ] + [("+Inf", r.latency.count)]
            latency.add_metric(values, buckets, r.latency.sum)
            for s in result.samples:
                connect.add_metric([r.config.name, values[2]], s.value)
        yield from gauges.values()
        yield from (runs, fails, info, checks, latency, connect)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    logging.disable(logging.WARNING)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    scheduler = build(n)
    ours = MetricsRenderer(scheduler, DaemonStatus(started_at=time.time()))
    registry = CollectorRegistry()
    registry.register(PlainCollector(scheduler))

    cold = timed(lambda: "".join(ours.chunks(False)), 1)
    records = list(scheduler.records.values())

    # The daemon renders a probe's lines when its result arrives, so a scrape
    # only concatenates cached text; the rendering is spread over the
    # probes' intervals.
    def render_every_result() -> None:
        for record in records:
            ours.result_arrived(record)

    scrape = timed(lambda: "".join(ours.chunks(False)), 5)
    render = timed(render_every_result, 3)
    peer = timed(lambda: generate_latest(registry), 3)
    size = len("".join(ours.chunks(False)))
    print(f"probes: {n}, exposition: {size / 1e6:.1f} MB")
    print(f"first scrape (labels formatted, all rendered): {cold[0]:.3f} s")
    print(
        f"scrape (results rendered as they arrived):     {statistics.median(scrape):.3f} s"
    )
    print(
        f"rendering all {n} results (spread over time):  {statistics.median(render):.3f} s"
    )
    print(
        f"prometheus_client generate_latest (peer):      {statistics.median(peer):.3f} s"
    )


if __name__ == "__main__":
    main()
