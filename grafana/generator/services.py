"""Services and certificates: HTTP, TCP and TLS probes."""

from __future__ import annotations

from alerts.thresholds import Thresholds
from exporter.kinds import check
from grafana.generator.common import (
    dashboard,
    latency_steps,
    limit_field,
    percent,
    quantiles,
    sel,
)
from grafana.generator.panels import (
    ALL_GOOD_STEPS,
    JSON,
    UP_DOWN,
    Look,
    Query,
    bargauge,
    column,
    row,
    state_timeline,
    steps,
    table,
    timeseries,
    value_map,
)

DAY = 86400.0
HTTP_STATUS_STEPS = steps(
    "red", (200, "green"), (300, "blue"), (400, "orange"), (500, "red")
)

SERVICE_KINDS = "http|tcp|tls"


def build(t: Thresholds) -> JSON:
    kind = f'kind=~"{SERVICE_KINDS}"'
    latency = t.latency_p95_seconds
    errors, certs = t.errors, t.certificates
    # Uptime is 1 - the failure ratio: orange and red where the error-rate
    # alerts fire.
    success_steps = steps(
        "red", (1 - errors.critical, "orange"), (1 - errors.warning, "green")
    )
    days_steps = steps(
        "red", (certs.critical_days, "orange"), (certs.warning_days, "green")
    )
    latency_p95 = check("http", "latency_p95")
    not_after = sel("readiness_tls_cert_not_after_timestamp_seconds")
    panels = [
        row("Availability"),
        state_timeline(
            "Probe status",
            "readiness_probe_up: the damped state, down after failure_threshold"
            " failed runs in a row.",
            [Query(sel("readiness_probe_up", kind), "{{probe}}")],
            Look("none", mappings=UP_DOWN, thresholds=ALL_GOOD_STEPS),
            w=24,
        ),
        timeseries(
            "Run latency p50 / p95 / p99",
            "Quantiles of readiness_probe_latency_seconds (every run's duration)."
            f" Dashed lines at the p95 alert thresholds: {latency.info:g} s info,"
            f" {latency.warning:g} s warning, {latency.critical:g} s critical.",
            quantiles(
                sel("readiness_probe_latency_seconds_bucket", kind),
                "probe",
                "{{probe}} ",
            ),
            Look("s", latency_steps(t)),
        ),
        bargauge(
            "Uptime over the time range",
            "Share of runs that succeeded (avg_over_time of readiness_probe_success)"
            " over the dashboard's time range; orange under"
            f" {percent(1 - errors.warning)}, red under {percent(1 - errors.critical)}"
            " (the error-rate alert thresholds).",
            [
                Query(
                    f"avg_over_time({sel('readiness_probe_success', kind)}[$__range])",
                    "{{probe}}",
                    instant=True,
                )
            ],
            Look("percentunit", success_steps, min=0, max=1, decimals=2),
            w=12,
        ),
        row("Certificates"),
        table(
            "Certificate days left",
            "Every certificate of every chain (position 0 is the leaf), still"
            " listed when expired or unverifiable. Orange under"
            f" {certs.warning_days:g} days (warning), red under"
            f" {certs.critical_days:g} days (critical).",
            [
                Query(f"({not_after} - time()) / {DAY:g}"),
                Query(f"{not_after} * 1000"),
            ],
            Look("short", days_steps, decimals=1),
            w=16,
            columns=("probe", "position", "cn", "issuer_cn", "Value #A", "Value #B"),
            rename={"Value #A": "days left", "Value #B": "expires"},
            overrides=[
                column(
                    "Value #A",
                    **{"custom.cellOptions": {"type": "color-background"}},
                ),
                column(
                    "Value #B",
                    unit="dateTimeAsIso",
                    **{"custom.cellOptions": {"type": "auto"}},
                ),
            ],
        ),
        table(
            "TLS version",
            "Protocol version each TLS endpoint negotiated in its last run"
            f" (readiness_tls_version_info); the {check('tls', 'tls_version_min')}"
            " check wants 1.2+.",
            [Query(f"{sel('readiness_tls_version_info')} == 1")],
            Look("short", mappings=value_map((1, "negotiated", "green"))),
            w=8,
            columns=("probe", "version"),
            hide=("kind", "Value"),
        ),
        timeseries(
            "Connect and handshake time",
            "TCP connect time (readiness_tcp_connect_seconds) and TLS handshake"
            " time (readiness_tls_handshake_seconds) of the last run.",
            [
                Query(sel("readiness_tcp_connect_seconds"), "{{probe}} connect"),
                Query(sel("readiness_tls_handshake_seconds"), "{{probe}} handshake"),
            ],
            Look("s"),
            w=24,
        ),
        row("HTTP"),
        state_timeline(
            "HTTP status codes",
            "Final HTTP status of each run (readiness_http_status_code); 0 when no"
            " reply arrived.",
            [Query(sel("readiness_http_status_code"), "{{probe}}")],
            Look("none", HTTP_STATUS_STEPS, mappings=value_map((0, "no reply", "red"))),
            w=24,
        ),
        timeseries(
            "HTTP time per phase",
            "readiness_http_duration_seconds of the last run by phase (resolve,"
            " connect, processing, transfer), stacked per probe.",
            [Query(sel("readiness_http_duration_seconds"), "{{probe}} {{phase}}")],
            Look("s"),
            stacked=True,
        ),
        timeseries(
            "HTTP p95 over the latency window",
            "readiness_http_latency_p95_seconds: p95 over the probe's last"
            f" latency_window runs, which its {latency_p95} check compares with"
            f" {limit_field('http', latency_p95)}. Dashed lines at"
            f" {latency.info:g} / {latency.warning:g} / {latency.critical:g} s.",
            [Query(sel("readiness_http_latency_p95_seconds"), "{{probe}}")],
            Look("s", latency_steps(t)),
        ),
    ]
    return dashboard(
        "readiness-services",
        "Readiness: services and certificates",
        "HTTP, TCP and TLS probes: status, latency, uptime, certificates.",
        SERVICE_KINDS,
        panels,
    )
