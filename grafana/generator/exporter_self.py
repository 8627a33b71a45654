"""The exporter itself: probe runs, failures, scheduler lag, reloads."""

from __future__ import annotations

from alerts.thresholds import Thresholds
from exporter.probes.base import Reason
from grafana.generator.common import (
    dashboard,
    latency_steps,
    percent,
    quantiles,
    rate,
    sel,
)
from grafana.generator.panels import (
    ALL_GOOD_STEPS,
    JSON,
    Look,
    Query,
    stat,
    steps,
    table,
    timeseries,
    value_map,
)

# process_* series of the exporter only, not of every scraped target.
EXPORTER_ONLY = "and on (job, instance) readiness_build_info"


def build(t: Thresholds) -> JSON:
    errors = t.errors
    panels = [
        stat(
            "Config reload",
            "readiness_config_last_reload_successful: 0 after a rejected reload"
            " (the old config keeps running).",
            [Query("readiness_config_last_reload_successful", "last reload")],
            Look(
                "none",
                ALL_GOOD_STEPS,
                mappings=value_map((0, "REJECTED", "red"), (1, "OK", "green")),
            ),
        ),
        stat(
            "Last good config load",
            "readiness_config_last_reload_success_timestamp_seconds.",
            [
                Query(
                    "readiness_config_last_reload_success_timestamp_seconds * 1000",
                    "loaded",
                )
            ],
            Look("dateTimeAsIso"),
        ),
        stat(
            "Probes configured / in flight",
            "readiness_probes and readiness_probes_in_flight (runs under way now).",
            [
                Query("readiness_probes", "configured"),
                Query("readiness_probes_in_flight", "in flight"),
            ],
            Look("short"),
        ),
        stat(
            "Exporter uptime",
            "time() - readiness_start_time_seconds.",
            [Query("time() - readiness_start_time_seconds", "{{instance}}")],
            Look("dtdurations"),
        ),
        timeseries(
            "Probe run durations",
            "Duration of each probe's last run (readiness_probe_duration_seconds).",
            [Query(sel("readiness_probe_duration_seconds"), "{{probe}}")],
            Look("s", latency_steps(t)),
        ),
        timeseries(
            "Scheduler lag p50 / p95 / p99",
            "How late runs started against their plan, waiting for the"
            " concurrency bound included (readiness_scheduler_lag_seconds).",
            quantiles("readiness_scheduler_lag_seconds_bucket", "", ""),
            Look("s"),
        ),
        timeseries(
            "Failing probes by reason",
            "Probes whose last run failed, by reason (readiness_probe_failure_info):"
            f" {', '.join(Reason)}.",
            [
                Query(
                    f"sum by (reason) ({sel('readiness_probe_failure_info')})",
                    "{{reason}}",
                )
            ],
            Look("short", min=0),
            stacked=True,
        ),
        table(
            "Failing probes now",
            "Probes whose last run failed, with the reason; the error text is in"
            " the log and on the status page.",
            [Query(f"{sel('readiness_probe_failure_info')} == 1")],
            Look("short"),
            columns=("probe", "kind", "reason"),
            hide=("Value",),
        ),
        timeseries(
            "Runs and failures per second",
            "readiness_probe_runs_total and readiness_probe_failures_total rates,"
            " all selected probes.",
            [
                Query(f"sum({rate(sel('readiness_probe_runs_total'))})", "runs"),
                Query(
                    f"sum({rate(sel('readiness_probe_failures_total'))})", "failures"
                ),
            ],
            Look("ops"),
        ),
        timeseries(
            "Failure ratio by probe",
            f"Failed runs / runs; dashed lines at the {percent(errors.warning)} warning"
            f" and {percent(errors.critical)} critical"
            " error-rate alert thresholds.",
            [
                Query(
                    f"sum by (probe) ({rate(sel('readiness_probe_failures_total'))})"
                    f" / sum by (probe) ({rate(sel('readiness_probe_runs_total'))})",
                    "{{probe}}",
                )
            ],
            Look(
                "percentunit",
                steps("green", (errors.warning, "orange"), (errors.critical, "red")),
                min=0,
            ),
        ),
        timeseries(
            "Result age",
            "time() - readiness_probe_last_run_timestamp_seconds: results are"
            " cached between runs, so this should stay under each probe's interval.",
            [
                Query(
                    f"time() - {sel('readiness_probe_last_run_timestamp_seconds')}",
                    "{{probe}}",
                )
            ],
            Look("s"),
        ),
        timeseries(
            "Config reloads",
            "Reloads attempted and rejected per rate interval.",
            [
                Query(
                    "increase(readiness_config_reloads_total[$__rate_interval])",
                    "reloads",
                ),
                Query(
                    "increase(readiness_config_reload_failures_total"
                    "[$__rate_interval])",
                    "rejected",
                ),
            ],
            Look("short", min=0),
        ),
        timeseries(
            "Exporter memory",
            "Resident memory of the exporter process.",
            [Query(f"process_resident_memory_bytes {EXPORTER_ONLY}", "{{instance}}")],
            Look("bytes"),
            w=8,
        ),
        timeseries(
            "Exporter CPU",
            "CPU time per second of the exporter process (1 = one core).",
            [
                Query(
                    "rate(process_cpu_seconds_total[$__rate_interval])"
                    f" {EXPORTER_ONLY}",
                    "{{instance}}",
                )
            ],
            Look("percentunit", min=0),
            w=8,
        ),
        timeseries(
            "Scrape assembly time",
            "readiness_scrape_collect_seconds: time the exposition took on the"
            " event loop.",
            [Query("readiness_scrape_collect_seconds", "{{instance}}")],
            Look("s"),
            w=8,
        ),
        table(
            "Build",
            "readiness_build_info: exporter and Python versions.",
            [Query("readiness_build_info")],
            Look("short"),
            w=24,
            h=5,
            columns=("instance", "version", "python_version"),
            hide=("Value",),
        ),
    ]
    return dashboard(
        "readiness-exporter",
        "Readiness: exporter",
        "The exporter itself: probe runs, failures, scheduler lag, reloads.",
        ".+",
        panels,
    )
