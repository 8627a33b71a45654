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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

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
from exporter.probes.base import Check, Reason
from exporter.readiness import Readiness, Verdict
from exporter.scheduler import ProbeRecord, Scheduler
from exporter.systems import ATTESTATION_KIND, ATTESTATIONS_SOURCE, Assessment, System

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
    "Whether a check of the probe's last run passed (kind attestation: an"
    " attestation that is attested as passed and not expired).",
)

SCORE = Family(
    "readiness_score_ratio",
    "The estate's readiness: the mean of its systems' scores.",
)
CATEGORY_SCORE = Family(
    "readiness_category_score_ratio",
    "The estate's score per category: the mean of its systems' category scores.",
)
VERDICT = Family(
    "readiness_verdict",
    "1 for the estate's verdict, its worst system's: ready, minor, staging,"
    " not_ready (any failing critical check makes a system not_ready).",
)
SYSTEM_SCORE = Family(
    "readiness_system_score_ratio",
    "A system's readiness: its category scores weighted as configured, each"
    " the severity-weighted mean of its checklist items.",
)
SYSTEM_CATEGORY_SCORE = Family(
    "readiness_system_category_score_ratio",
    "A system's score per category: severity-weighted mean of its checklist"
    " items, each item the share of the system's probes that pass that check.",
)
SYSTEM_VERDICT = Family(
    "readiness_system_verdict",
    "1 for a system's verdict: ready (>= the ready band), minor, staging,"
    " not_ready (below, or any failing critical check).",
)
SYSTEM_FAILING_CRITICAL = Family(
    "readiness_system_critical_checks_failing",
    "Critical checks of the system failing now; any makes the verdict not_ready.",
)
ATTESTATION_EXPIRY = Family(
    "readiness_attestation_expiry_timestamp_seconds",
    "When an attestation stops counting (its check then fails).",
)
ATTESTATION_TIME = Family(
    "readiness_attestation_timestamp_seconds",
    "When an attestation was made.",
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

    base: str  # kind="...",probe="...",system="...",<user labels>
    probe: str  # probe="...",system="..."
    user: str  # ,team="..." or ""
    user_pairs: tuple[tuple[str, str], ...]
    failure_info: tuple[str, ...]  # sample prefix per Reason
    buckets: tuple[str, ...]  # sample prefix per latency bucket, +Inf last

    @classmethod
    def of(cls, record: ProbeRecord) -> _ProbeLabels:
        config = record.config
        user_pairs = tuple(sorted(config.labels.items()))
        user = "".join(f',{k}="{escape_label_value(v)}"' for k, v in user_pairs)
        probe = (
            f'probe="{escape_label_value(config.name)}",'
            f'system="{escape_label_value(config.system)}"'
        )
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
    # What was wrong with the last rejected reload, shown on the status page.
    last_reload_problems: list[str] = field(default_factory=list)


def check_line(probe_labels: str, kind: str, check: Check, user: str) -> str:
    """One `readiness_check_passed` sample line."""
    return (
        f'{CHECK_PASSED.name}{{{probe_labels},kind="{kind}",check='
        f'"{escape_label_value(check.name)}",'
        f'category="{escape_label_value(check.category)}",'
        f'severity="{check.severity.value}"{user}}} {int(check.passed)}\n'
    )


def _verdict_lines(
    family: Family, labels: tuple[tuple[str, str], ...], readiness: Readiness
) -> str:
    return "".join(
        sample_line(
            family.name, (*labels, ("verdict", v.value)), readiness.verdict is v
        )
        for v in Verdict
    )


def readiness_lines(assessment: Assessment) -> Iterator[tuple[Family, str]]:
    """The estate's and every system's score, category scores and verdict.
    A system (or the estate) with nothing judged yet has no score and every
    verdict series at 0."""
    estate = assessment.estate
    if estate.score is not None:
        yield SCORE, sample_line(SCORE.name, (), estate.score)
    yield (
        CATEGORY_SCORE,
        "".join(
            sample_line(CATEGORY_SCORE.name, (("category", c),), value)
            for c, value in sorted(estate.categories.items())
        ),
    )
    yield VERDICT, _verdict_lines(VERDICT, (), estate)
    systems = sorted(assessment.systems.items())
    yield (
        SYSTEM_SCORE,
        "".join(
            sample_line(SYSTEM_SCORE.name, (("system", name),), r.score)
            for name, r in systems
            if r.score is not None
        ),
    )
    yield (
        SYSTEM_CATEGORY_SCORE,
        "".join(
            sample_line(
                SYSTEM_CATEGORY_SCORE.name, (("system", name), ("category", c)), value
            )
            for name, r in systems
            for c, value in sorted(r.categories.items())
        ),
    )
    yield (
        SYSTEM_VERDICT,
        "".join(
            _verdict_lines(SYSTEM_VERDICT, (("system", name),), r)
            for name, r in systems
        ),
    )
    yield (
        SYSTEM_FAILING_CRITICAL,
        "".join(
            sample_line(
                SYSTEM_FAILING_CRITICAL.name,
                (("system", name),),
                len(r.failing_critical),
            )
            for name, r in systems
        ),
    )


def attestation_checks(systems: Mapping[str, System], now: float) -> str:
    """Every attestation as a check line (`kind="attestation"`,
    `probe="attestations"`), judged at *now*."""
    return "".join(
        check_line(
            f'probe="{ATTESTATIONS_SOURCE}",system="{escape_label_value(name)}"',
            ATTESTATION_KIND,
            attestation.check(now),
            "",
        )
        for name, system in sorted(systems.items())
        for attestation in system.attestations
    )


def attestation_lines(
    systems: Mapping[str, System], now: float
) -> Iterator[tuple[Family, str]]:
    """When each attestation was made and when it expires."""
    expiry, made = [], []
    for name, system in sorted(systems.items()):
        for attestation in system.attestations:
            item = (("system", name), ("check", attestation.item))
            expiry.append(
                sample_line(
                    ATTESTATION_EXPIRY.name, item, attestation.expires_at.timestamp()
                )
            )
            made.append(
                sample_line(ATTESTATION_TIME.name, item, attestation.at.timestamp())
            )
    yield ATTESTATION_EXPIRY, "".join(expiry)
    yield ATTESTATION_TIME, "".join(made)


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
                check_line(labels.probe, record.config.kind, c, labels.user)
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
            labels = (
                ("probe", record.config.name),
                ("system", record.config.system),
                *sample.labels,
                *user,
            )
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
        assessment = scheduler.assessment()
        yield from readiness_lines(assessment)
        yield from attestation_lines(scheduler.config.systems, time.time())
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
        # Attestations are checks too: their lines join the probes' family.
        attestations = attestation_checks(self.scheduler.config.systems, time.time())
        rendered.append({CHECK_PASSED.name: attestations})
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
