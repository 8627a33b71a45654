"""Latest results -> exposition text, each probe's part cached until it changes.

A scrape shows exactly the probes configured now: the text is assembled from
the scheduler's records, so a removed probe's series are gone on the next
scrape whatever was cached. A probe's lines are rebuilt only after a new
result; a scrape concatenates the cached parts family by family.
"""

from __future__ import annotations

import logging
import platform
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import (
    generate_latest as generate_latest_openmetrics,
)

from exporter import __version__
from exporter.exposition import (
    Family,
    escape_label_value,
    format_value,
    sample_line,
)
from exporter.kinds import PROBES
from exporter.probes.base import Category, Reason
from exporter.readiness import Verdict
from exporter.scheduler import ProbeRecord, Scheduler

logger = logging.getLogger(__name__)

NAMESPACE = "readiness_"

CACHED_NOTE = (
    " Results are cached between probe runs; the probe's own interval, not"
    " the scrape, decides how fresh they are."
)

SUCCESS = Family(
    "readiness_probe_success",
    "Whether the probe's last run succeeded (reached the target and every"
    " critical check passed)." + CACHED_NOTE,
)
UP = Family(
    "readiness_probe_up",
    "Damped probe state: down after failure_threshold failed runs in a row,"
    " up after success_threshold successful ones.",
)
DURATION = Family(
    "readiness_probe_duration_seconds", "Duration of the probe's last run."
)
LATENCY = Family(
    "readiness_probe_latency_seconds",
    "Durations of every probe run since the exporter started.",
    "histogram",
)
RUNS = Family(
    "readiness_probe_runs_total", "Probe runs since the exporter started.", "counter"
)
FAILURES = Family(
    "readiness_probe_failures_total",
    "Failed probe runs since the exporter started.",
    "counter",
)
FAILURE_INFO = Family(
    "readiness_probe_failure_info",
    "1 for the reason the probe's last run failed, 0 for the other reasons"
    " (timeout, connect, tls, auth, protocol, check, config, internal).",
)
LAST_RUN = Family(
    "readiness_probe_last_run_timestamp_seconds",
    "When the probe's last run finished." + CACHED_NOTE,
)
CHECK_PASSED = Family(
    "readiness_check_passed",
    "Whether a check of the probe's last run passed.",
)

PROBE_FAMILIES = (
    SUCCESS,
    UP,
    DURATION,
    LATENCY,
    RUNS,
    FAILURES,
    FAILURE_INFO,
    LAST_RUN,
    CHECK_PASSED,
)


def _kind_families() -> dict[str, Family]:
    """Every kind-specific family, keyed by its name without namespace."""
    families: dict[str, Family] = {}
    for kind in PROBES.values():
        for spec in kind.metrics:
            families[spec.name] = Family(NAMESPACE + spec.name, spec.help, spec.type)
    return families


@dataclass(frozen=True, slots=True)
class _ProbeLabels:
    """A probe's label text, formatted once: its config never changes."""

    base: str  # kind="...",probe="...",<user labels>
    probe: str  # probe="..."
    user: str  # ,team="..." or ""
    user_pairs: tuple[tuple[str, str], ...]
    failure_info: tuple[str, ...]  # sample prefix per Reason
    buckets: tuple[str, ...]  # sample prefix per latency bucket, +Inf last

    @classmethod
    def of(cls, record: ProbeRecord) -> _ProbeLabels:
        config = record.config
        user_pairs = tuple(sorted(config.labels.items()))
        user = "".join(f',{k}="{escape_label_value(v)}"' for k, v in user_pairs)
        probe = f'probe="{escape_label_value(config.name)}"'
        base = f'kind="{config.kind}",{probe}{user}'
        bounds = [repr(float(b)) for b in record.latency.bounds] + ["+Inf"]
        return cls(
            base=base,
            probe=probe,
            user=user,
            user_pairs=user_pairs,
            failure_info=tuple(
                f'{FAILURE_INFO.name}{{{base},reason="{r.value}"}} ' for r in Reason
            ),
            buckets=tuple(
                f'{LATENCY.name}_bucket{{{base},le="{le}"}} ' for le in bounds
            ),
        )


@dataclass
class DaemonStatus:
    """The exporter's own state that is not the scheduler's."""

    started_at: float
    last_reload_successful: bool = True
    last_reload_success_timestamp: float = 0.0
    reloads: int = 0
    reload_failures: int = 0


class MetricsRenderer:
    """Renders /metrics for a scheduler, keeping each probe's lines until
    its next result (no prometheus_client collector: those rebuild every
    sample on every scrape)."""

    def __init__(self, scheduler: Scheduler, status: DaemonStatus) -> None:
        self.scheduler = scheduler
        self.status = status
        self.kind_families = _kind_families()
        self.families = PROBE_FAMILIES + tuple(self.kind_families.values())
        self._process_registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self._process_registry)
        self._dropped_names: set[str] = set()
        self._labels: weakref.WeakKeyDictionary[ProbeRecord, _ProbeLabels] = (
            weakref.WeakKeyDictionary()
        )
        # Each probe's lines by family; a removed probe's go with its record.
        self._rendered: weakref.WeakKeyDictionary[ProbeRecord, dict[str, str]] = (
            weakref.WeakKeyDictionary()
        )
        # Render each probe as its result arrives: the work is spread over
        # the probes' intervals instead of landing on a scrape.
        scheduler.subscribe(self.result_arrived)

    def result_arrived(self, record: ProbeRecord) -> None:
        """Render *record* again: it has a new result."""
        self._rendered.pop(record, None)
        self.render_probe(record)

    def cached(self, record: ProbeRecord) -> dict[str, str] | None:
        """The lines kept for *record*, None until it is first rendered."""
        return self._rendered.get(record)

    # --- per probe ---------------------------------------------------------------

    def _labels_of(self, record: ProbeRecord) -> _ProbeLabels:
        labels = self._labels.get(record)
        if labels is None:
            labels = _ProbeLabels.of(record)
            self._labels[record] = labels
        return labels

    def render_probe(self, record: ProbeRecord) -> dict[str, str]:
        """The probe's lines by family name, rendered once per result."""
        cached = self._rendered.get(record)
        if cached is not None:
            return cached
        labels = self._labels_of(record)
        base = labels.base
        parts: dict[str, list[str]] = {}
        result = record.result
        if result is not None:
            parts[SUCCESS.name] = [f"{SUCCESS.name}{{{base}}} {int(result.success)}\n"]
            parts[UP.name] = [f"{UP.name}{{{base}}} {int(bool(record.up))}\n"]
            parts[DURATION.name] = [
                f"{DURATION.name}{{{base}}} {format_value(result.duration_seconds)}\n"
            ]
            parts[LAST_RUN.name] = [
                f"{LAST_RUN.name}{{{base}}} {format_value(result.finished_at)}\n"
            ]
            parts[FAILURE_INFO.name] = [
                f"{prefix}{int(result.reason is reason)}\n"
                for reason, prefix in zip(Reason, labels.failure_info, strict=True)
            ]
            parts[CHECK_PASSED.name] = [
                f"{CHECK_PASSED.name}{{{labels.probe},check="
                f'"{escape_label_value(c.name)}",category="{c.category.value}",'
                f'severity="{c.severity.value}"{labels.user}}} {int(c.passed)}\n'
                for c in result.checks
            ]
            self._add_samples(record, parts, labels.user_pairs)
        latency = record.latency
        parts[LATENCY.name] = [
            *(
                f"{prefix}{n}\n"
                for prefix, n in zip(labels.buckets, latency.counts, strict=False)
            ),
            f"{labels.buckets[-1]}{latency.count}\n",
            f"{LATENCY.name}_sum{{{base}}} {format_value(latency.sum)}\n",
            f"{LATENCY.name}_count{{{base}}} {latency.count}\n",
        ]
        parts[RUNS.name] = [f"{RUNS.name}{{{base}}} {record.runs}\n"]
        parts[FAILURES.name] = [f"{FAILURES.name}{{{base}}} {record.failures}\n"]
        rendered = {name: "".join(lines) for name, lines in parts.items()}
        self._rendered[record] = rendered
        return rendered

    def _add_samples(
        self,
        record: ProbeRecord,
        parts: dict[str, list[str]],
        user: tuple[tuple[str, str], ...],
    ) -> None:
        if record.result is None:
            return
        declared = {spec.name for spec in PROBES[record.config.kind].metrics}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for sample in record.result.samples:
            if sample.name not in declared:
                # A bug in the probe; the scrape must still succeed.
                if sample.name not in self._dropped_names:
                    self._dropped_names.add(sample.name)
                    logger.error(
                        "probe kind %s emitted undeclared metric %s; dropped",
                        record.config.kind,
                        sample.name,
                    )
                continue
            labels = (("probe", record.config.name), *sample.labels, *user)
            key = (sample.name, labels)
            if key in seen:
                # Two samples with one label set would fail the whole scrape.
                continue
            seen.add(key)
            family = self.kind_families[sample.name]
            parts.setdefault(family.name, []).append(
                sample_line(family.name, labels, sample.value)
            )

    # --- global ------------------------------------------------------------------

    def _global_lines(self) -> Iterator[tuple[Family, str]]:
        scheduler, status = self.scheduler, self.status
        readiness = scheduler.readiness()
        if readiness.score is not None:
            yield (
                Family(
                    "readiness_score_ratio",
                    "Overall readiness: category scores weighted as configured.",
                ),
                sample_line("readiness_score_ratio", (), readiness.score),
            )
        category_family = Family(
            "readiness_category_score_ratio",
            "Severity-weighted share of passing checks per category.",
        )
        yield (
            category_family,
            "".join(
                sample_line(category_family.name, (("category", c.value),), score)
                for c in Category
                if (score := readiness.categories.get(c)) is not None
            ),
        )
        verdict_family = Family(
            "readiness_verdict",
            "1 for the current verdict: ready (>= 0.90), minor (>= 0.80),"
            " staging (>= 0.70), not_ready.",
        )
        yield (
            verdict_family,
            "".join(
                sample_line(
                    verdict_family.name,
                    (("verdict", v.value),),
                    readiness.score is not None and readiness.verdict is v,
                )
                for v in Verdict
            ),
        )
        yield (
            Family("readiness_build_info", "Version of the exporter.", "info"),
            sample_line(
                "readiness_build_info",
                (
                    ("version", __version__),
                    ("python_version", platform.python_version()),
                ),
                1,
            ),
        )
        yield from self._own_lines(scheduler, status)

    def _own_lines(
        self, scheduler: Scheduler, status: DaemonStatus
    ) -> Iterator[tuple[Family, str]]:
        simple: Sequence[tuple[Family, float]] = (
            (
                Family(
                    "readiness_config_last_reload_successful",
                    "Whether the last configuration reload succeeded.",
                ),
                status.last_reload_successful,
            ),
            (
                Family(
                    "readiness_config_last_reload_success_timestamp_seconds",
                    "When the configuration was last loaded successfully.",
                ),
                status.last_reload_success_timestamp,
            ),
            (
                Family(
                    "readiness_config_reloads_total",
                    "Configuration reloads attempted.",
                    "counter",
                ),
                status.reloads,
            ),
            (
                Family(
                    "readiness_config_reload_failures_total",
                    "Configuration reloads rejected (the old config kept running).",
                    "counter",
                ),
                status.reload_failures,
            ),
            (
                Family("readiness_probes", "Probes configured."),
                len(scheduler.records),
            ),
            (
                Family("readiness_probes_in_flight", "Probe runs under way now."),
                scheduler.in_flight,
            ),
            (
                Family(
                    "readiness_start_time_seconds",
                    "When the exporter started.",
                ),
                status.started_at,
            ),
        )
        for family, value in simple:
            yield family, sample_line(family.name, (), value)
        lag = Family(
            "readiness_scheduler_lag_seconds",
            "How late probe runs started against their planned time"
            " (waiting for the concurrency bound included).",
            "histogram",
        )
        yield lag, scheduler.lag.lines(lag.name, ())

    # --- scrape ------------------------------------------------------------------

    def chunks(self, openmetrics: bool) -> list[str]:
        """Every piece of the exposition, in order; join them to get the text.

        Runs on the event loop: it only renders probes whose result changed
        and gathers references to cached strings.
        """
        started = time.perf_counter()
        records = list(self.scheduler.records.values())
        rendered = [self.render_probe(record) for record in records]
        out: list[str] = []
        for family in self.families:
            pieces = [part for r in rendered if (part := r.get(family.name))]
            if pieces:
                out.append(family.header(openmetrics))
                out.extend(pieces)
        for family, text in self._global_lines():
            if text:
                out.append(family.header(openmetrics))
                out.append(text)
        out.append(self._process_text(openmetrics))
        scrape = Family(
            "readiness_scrape_collect_seconds",
            "Time spent gathering this exposition on the event loop.",
        )
        out.append(scrape.header(openmetrics))
        out.append(sample_line(scrape.name, (), time.perf_counter() - started))
        if openmetrics:
            out.append("# EOF\n")
        return out

    def _process_text(self, openmetrics: bool) -> str:
        if openmetrics:
            text: bytes = generate_latest_openmetrics(  # type: ignore[no-untyped-call]
                self._process_registry
            )
            return text.decode().removesuffix("# EOF\n")
        return generate_latest(self._process_registry).decode()

    def render(self, openmetrics: bool = False) -> str:
        """The whole exposition as one string."""
        return "".join(self.chunks(openmetrics))
