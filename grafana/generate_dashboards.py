"""Writes the bundled Grafana dashboards, grafana/dashboards/*.json.

The JSON files are what ships (Grafana provisions them as they are); this
script keeps their shared conventions in one place: the `${datasource}`
variable, the probe variable, units, thresholds equal to the alert thresholds
of docs/readiness-spec, the dashboards dropdown link and the panel layout.
Only raw metrics of the exporter are queried, no recording rules.

    python grafana/generate_dashboards.py          # rewrite the JSON files
    python grafana/generate_dashboards.py --check  # exit 1 when they are out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39
TAG = "readiness-exporter"
DATASOURCE: JSON = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24

# --- thresholds: the alert thresholds of the readiness spec -----------------------

DAY = 86400.0
SCORE_WARNING, SCORE_MINOR, SCORE_CRITICAL = 0.90, 0.80, 0.70
CERT_WARNING_DAYS, CERT_CRITICAL_DAYS = 30, 7
MEMORY_WARNING, MEMORY_CRITICAL = 0.85, 0.90
# Share of a worker's memory_limit: orange as it nears it, red from the limit
# itself, where the worker_memory check fails and ReadinessWorkerMemoryHigh fires.
WORKER_MEMORY_WARNING, WORKER_MEMORY_LIMIT = 0.85, 1.0
CONNECTIONS_WARNING = 0.80
ERRORS_WARNING, ERRORS_CRITICAL = 0.01, 0.05
LATENCY_INFO, LATENCY_WARNING, LATENCY_CRITICAL = 2.0, 3.0, 5.0
REPLICA_LAG_MAX = 30.0
HIT_RATIO_MIN = 0.80
# Age of the newest backup / the probe's max_age: red past 1, where
# backup_fresh fails and ReadinessBackupTooOld fires.
BACKUP_AGE_LIMIT = 1.0


def steps(base: str, *above: tuple[float, str]) -> JSON:
    """Absolute thresholds: *base* colour, then (value, colour) upwards."""
    return {
        "mode": "absolute",
        "steps": [
            {"color": base, "value": None},
            *({"color": color, "value": value} for value, color in above),
        ],
    }


SCORE_STEPS = steps(
    "red", (SCORE_CRITICAL, "orange"), (SCORE_MINOR, "yellow"), (SCORE_WARNING, "green")
)
CERT_DAYS_STEPS = steps(
    "red", (CERT_CRITICAL_DAYS, "orange"), (CERT_WARNING_DAYS, "green")
)
MEMORY_STEPS = steps("green", (MEMORY_WARNING, "orange"), (MEMORY_CRITICAL, "red"))
CONNECTIONS_STEPS = steps("green", (CONNECTIONS_WARNING, "orange"))
ERROR_RATIO_STEPS = steps("green", (ERRORS_WARNING, "orange"), (ERRORS_CRITICAL, "red"))
SUCCESS_RATIO_STEPS = steps(
    "red", (1 - ERRORS_CRITICAL, "orange"), (1 - ERRORS_WARNING, "green")
)
LATENCY_STEPS = steps(
    "green",
    (LATENCY_INFO, "yellow"),
    (LATENCY_WARNING, "orange"),
    (LATENCY_CRITICAL, "red"),
)
REPLICA_LAG_STEPS = steps("green", (REPLICA_LAG_MAX, "red"))
HIT_RATIO_STEPS = steps("red", (HIT_RATIO_MIN, "green"))
WORKER_MEMORY_STEPS = steps(
    "green", (WORKER_MEMORY_WARNING, "orange"), (WORKER_MEMORY_LIMIT, "red")
)
BACKUP_AGE_STEPS = steps("green", (BACKUP_AGE_LIMIT, "red"))
ALL_GOOD_STEPS = steps("red", (1, "green"))  # a ratio that should be exactly 1
NONE_FAILING_STEPS = steps("green", (1, "red"))  # a count that should be 0
NEUTRAL_STEPS = steps("blue")
HTTP_STATUS_STEPS = steps(
    "red", (200, "green"), (300, "blue"), (400, "orange"), (500, "red")
)


def value_map(*entries: tuple[int, str, str]) -> list[JSON]:
    """One value mapping: (value, text, colour) per entry."""
    options = {
        str(value): {"text": text, "color": color, "index": index}
        for index, (value, text, color) in enumerate(entries)
    }
    return [{"type": "value", "options": options}]


UP_DOWN = value_map((0, "DOWN", "red"), (1, "UP", "green"))
PASS_FAIL = value_map((0, "FAIL", "red"), (1, "PASS", "green"))
YES_NO = value_map((0, "NO", "red"), (1, "YES", "green"))
MODBUS_EXCEPTIONS = value_map(
    (0, "none", "green"),
    (1, "1 illegal function", "red"),
    (2, "2 illegal data address", "red"),
    (3, "3 illegal data value", "red"),
    (4, "4 device failure", "red"),
    (5, "5 acknowledge", "orange"),
    (6, "6 device busy", "orange"),
    (10, "10 gateway path unavailable", "red"),
    (11, "11 gateway target did not answer", "red"),
)
VERDICTS = value_map(
    (0, "No checks yet", "text"),
    (1, "Not ready", "red"),
    (2, "Staging only", "orange"),
    (3, "Ready, minor improvements", "yellow"),
    (4, "Ready", "green"),
)

# --- panels -----------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One PromQL target; `instant` ones feed tables and single values."""

    expr: str
    legend: str = "__auto"
    instant: bool = False


def target(query: Query, ref_id: str, table: bool) -> JSON:
    out: JSON = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": query.expr,
        "legendFormat": query.legend,
        "range": not query.instant,
        "instant": query.instant,
        "refId": ref_id,
    }
    if table:
        out["format"] = "table"
    return out


@dataclass(frozen=True)
class Look:
    """How a panel shows its values: unit, thresholds, mappings, range."""

    unit: str
    thresholds: JSON | None = None
    mappings: Sequence[JSON] = ()
    min: float | None = None
    max: float | None = None
    decimals: int | None = None


def field_defaults(look: Look, custom: JSON) -> JSON:
    defaults: JSON = {
        "unit": look.unit,
        "color": {"mode": "thresholds" if look.thresholds else "palette-classic"},
        "thresholds": look.thresholds or NEUTRAL_STEPS,
        "mappings": list(look.mappings),
        "custom": custom,
    }
    for key in ("min", "max", "decimals"):
        if (value := getattr(look, key)) is not None:
            defaults[key] = value
    return defaults


def panel(
    kind: str,
    title: str,
    description: str,
    queries: Sequence[Query],
    look: Look,
    *,
    size: tuple[int, int],
    options: JSON,
    custom: JSON | None = None,
    overrides: Sequence[JSON] = (),
    transformations: Sequence[JSON] = (),
) -> JSON:
    """A panel of any type; `gridPos` x/y and `id` are filled by `layout`."""
    table = kind == "table"
    width, height = size
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": width, "h": height},
        "fieldConfig": {
            "defaults": field_defaults(look, custom or {}),
            "overrides": list(overrides),
        },
        "options": options,
        "targets": [target(q, chr(ord("A") + i), table) for i, q in enumerate(queries)],
        "transformations": list(transformations),
    }


REDUCE_LAST: JSON = {"calcs": ["lastNotNull"], "fields": "", "values": False}
LEGEND: JSON = {"displayMode": "list", "placement": "bottom", "showLegend": True}
TOOLTIP: JSON = {"mode": "multi", "sort": "desc"}


def stat(
    title: str, description: str, queries: Sequence[Query], look: Look, w: int = 6
) -> JSON:
    options = {
        "reduceOptions": REDUCE_LAST,
        "colorMode": "background",
        "graphMode": "none",
        "textMode": "auto",
        "justifyMode": "auto",
        "orientation": "auto",
    }
    return panel(
        "stat", title, description, queries, look, size=(w, 5), options=options
    )


def timeseries(
    title: str,
    description: str,
    queries: Sequence[Query],
    look: Look,
    w: int = 12,
    stacked: bool = False,
) -> JSON:
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
        # Lines at the alert thresholds, when the panel has any.
        "thresholdsStyle": {"mode": "dashed" if look.thresholds else "off"},
    }
    options = {"legend": LEGEND, "tooltip": TOOLTIP}
    return panel(
        "timeseries",
        title,
        description,
        queries,
        look,
        size=(w, 8),
        options=options,
        custom=custom,
    )


def state_timeline(
    title: str, description: str, queries: Sequence[Query], look: Look, w: int = 12
) -> JSON:
    options = {
        "showValue": "auto",
        "mergeValues": True,
        "alignValue": "left",
        "rowHeight": 0.9,
        "legend": LEGEND,
        "tooltip": {"mode": "single", "sort": "none"},
    }
    custom = {"fillOpacity": 80, "lineWidth": 0}
    return panel(
        "state-timeline",
        title,
        description,
        queries,
        look,
        size=(w, 8),
        options=options,
        custom=custom,
    )


def bargauge(
    title: str, description: str, queries: Sequence[Query], look: Look, w: int = 8
) -> JSON:
    options = {
        "reduceOptions": REDUCE_LAST,
        "displayMode": "gradient",
        "orientation": "horizontal",
        "showUnfilled": True,
        "valueMode": "color",
        "namePlacement": "auto",
        "sizing": "auto",
        "minVizHeight": 16,
        "minVizWidth": 8,
    }
    return panel(
        "bargauge", title, description, queries, look, size=(w, 8), options=options
    )


# Scrape labels that only clutter a table.
HIDDEN_COLUMNS = ("Time", "__name__", "job", "instance")


def table(
    title: str,
    description: str,
    queries: Sequence[Query],
    look: Look,
    *,
    w: int = 12,
    h: int = 8,
    columns: Sequence[str] = (),
    hide: Sequence[str] = (),
    rename: dict[str, str] | None = None,
    overrides: Sequence[JSON] = (),
) -> JSON:
    """An instant table; `columns` come first, several queries are merged."""
    organize = {
        "excludeByName": {name: True for name in (*HIDDEN_COLUMNS, *hide)},
        "indexByName": {name: i for i, name in enumerate(columns)},
        "renameByName": rename or {},
    }
    transformations = [{"id": "organize", "options": organize}]
    if len(queries) > 1:
        transformations.insert(0, {"id": "merge", "options": {}})
    options = {
        "showHeader": True,
        "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "fields": "", "countRows": False},
    }
    custom = {
        "align": "auto",
        # Colour only what has thresholds; plain text otherwise.
        "cellOptions": {"type": "color-text" if look.thresholds else "auto"},
        "filterable": True,
        "inspect": False,
    }
    instant = [Query(q.expr, q.legend, instant=True) for q in queries]
    return panel(
        "table",
        title,
        description,
        instant,
        look,
        size=(w, h),
        options=options,
        custom=custom,
        overrides=overrides,
        transformations=transformations,
    )


def column(name: str, **properties: Any) -> JSON:
    """A field override for the table column *name*."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [
            {"id": key, "value": value} for key, value in properties.items()
        ],
    }


def row(title: str) -> JSON:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"w": GRID_COLUMNS, "h": 1},
    }


def layout(panels: Iterable[JSON]) -> list[JSON]:
    """Number the panels and place them left to right, wrapping at 24 columns."""
    placed: list[JSON] = []
    x = y = line_height = 0
    for number, item in enumerate(panels, start=1):
        grid = item["gridPos"]
        if x + grid["w"] > GRID_COLUMNS or (item["type"] == "row" and x > 0):
            x, y, line_height = 0, y + line_height, 0
        placed.append({"id": number, **item, "gridPos": {**grid, "x": x, "y": y}})
        x += grid["w"]
        line_height = max(line_height, grid["h"])
        if item["type"] == "row":
            x, y, line_height = 0, y + grid["h"], 0
    return placed


# --- dashboards -------------------------------------------------------------------


def datasource_variable() -> JSON:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "multi": False,
        "includeAll": False,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def probe_variable(kinds: str) -> JSON:
    """Probes of the dashboard's kinds; "All" is `.+` (queries match kinds too)."""
    selector = f'{{kind=~"{kinds}"}}' if kinds != ".+" else ""
    definition = f"label_values(readiness_probe_success{selector}, probe)"
    return {
        "name": "probe",
        "label": "Probe",
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {
            "query": definition,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "options": [],
    }


def dashboard(
    uid: str, title: str, description: str, kinds: str, panels: Iterable[JSON]
) -> JSON:
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [
            {
                "type": "dashboards",
                "title": "Readiness dashboards",
                "tags": [TAG],
                "asDropdown": True,
                # The probe variable of one dashboard means nothing on another.
                "includeVars": False,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": [datasource_variable(), probe_variable(kinds)]},
        "panels": layout(panels),
    }


P = 'probe=~"$probe"'


def sel(metric: str, *matchers: str) -> str:
    """`metric{probe=~"$probe",...}`: every selector follows the probe variable."""
    return f"{metric}{{{','.join((P, *matchers))}}}"


def rate(selector: str, fn: str = "rate") -> str:
    """`rate(selector[$__rate_interval])`, or another range function *fn*."""
    return f"{fn}({selector}[$__rate_interval])"


def of_kind(expr: str, kinds: str) -> str:
    """Keep *expr*'s series whose probe is of *kinds* (for kind-less series)."""
    return (
        f"{expr} and on (job, instance, probe) "
        f'readiness_probe_success{{kind=~"{kinds}"}}'
    )


def quantiles(buckets: str, by: str, legend: str) -> list[Query]:
    """p50, p95 and p99 of the histogram whose `_bucket` selector is *buckets*."""
    grouping = f"le, {by}" if by else "le"
    return [
        Query(
            f"histogram_quantile({q}, sum by ({grouping}) ({rate(buckets)}))",
            f"{legend}p{round(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


# --- readiness overview -----------------------------------------------------------

FAILING_CHECKS = (
    "(\n"
    f"  ({sel('readiness_check_passed')} == 0)\n"
    "  * on (job, instance, probe) group_left (kind, reason)\n"
    f"  ({sel('readiness_probe_failure_info')} == 1)\n"
    ")\n"
    "or on (job, instance, probe, check)\n"
    "label_replace(\n"
    f"  ({sel('readiness_check_passed')} == 0)\n"
    "  * on (job, instance, probe) group_left (kind)\n"
    f"  {sel('readiness_probe_success')},\n"
    '  "reason", "check", "", ""\n'
    ")"
)

CRITICAL_SEVERITY = 'severity="critical"'

VERDICT_CODE = (
    'max(readiness_verdict{verdict="ready"} * 4'
    ' or readiness_verdict{verdict="minor"} * 3'
    ' or readiness_verdict{verdict="staging"} * 2'
    ' or readiness_verdict{verdict="not_ready"} * 1)'
)


def overview() -> JSON:
    score = Look("percentunit", SCORE_STEPS, min=0, max=1, decimals=1)
    panels = [
        stat(
            "Readiness score",
            "readiness_score_ratio: the category scores weighted as configured."
            " Bands: 0.90 ready, 0.80 minor improvements, 0.70 staging only;"
            " alerts fire below 0.90 (warning) and 0.70 (critical).",
            [Query("readiness_score_ratio", "score")],
            score,
        ),
        stat(
            "Verdict",
            "The current verdict from readiness_verdict (one-hot over ready, minor,"
            " staging, not_ready); 'No checks yet' before any probe has run.",
            [Query(VERDICT_CODE, "verdict")],
            Look("none", mappings=VERDICTS, thresholds=steps("text")),
        ),
        stat(
            "Failing checks",
            "Checks of the selected probes that failed in their last run.",
            [Query(f"count({sel('readiness_check_passed')} == 0) or vector(0)")],
            Look("short", NONE_FAILING_STEPS),
            w=4,
        ),
        stat(
            "Critical checks failing",
            "Failing checks of severity critical: any of them makes its probe fail.",
            [
                Query(
                    f"count({sel('readiness_check_passed', CRITICAL_SEVERITY)} == 0)"
                    " or vector(0)"
                )
            ],
            Look("short", NONE_FAILING_STEPS),
            w=4,
        ),
        stat(
            "Probes up",
            "Share of the selected probes whose damped state (readiness_probe_up)"
            " is up.",
            [
                Query(
                    f"sum({sel('readiness_probe_up')})"
                    f" / count({sel('readiness_probe_up')})"
                )
            ],
            Look("percentunit", ALL_GOOD_STEPS, min=0, max=1, decimals=0),
            w=4,
        ),
        bargauge(
            "Category scores",
            "readiness_category_score_ratio: severity-weighted share of passing"
            " checks per category; categories without checks are absent.",
            [Query("readiness_category_score_ratio", "{{category}}", instant=True)],
            score,
        ),
        timeseries(
            "Score over time",
            "The overall score and the category scores; dashed lines at the"
            " verdict bands.",
            [
                Query("readiness_score_ratio", "score"),
                Query("readiness_category_score_ratio", "{{category}}"),
            ],
            score,
            w=16,
        ),
        table(
            "Failing checks and why",
            "Every check that failed in its probe's last run, with the probe's"
            " failure reason (readiness_probe_failure_info). A failing"
            " non-critical check of a successful run shows reason 'check'."
            " Filtered by the Probe variable; the error text is on the status page.",
            [Query(FAILING_CHECKS)],
            Look("short"),
            w=24,
            h=10,
            columns=("probe", "kind", "check", "category", "severity", "reason"),
            hide=("Value",),
        ),
    ]
    return dashboard(
        "readiness-overview",
        "Readiness overview",
        "Readiness score, verdict, category scores and the failing checks.",
        ".+",
        panels,
    )


# --- services and certificates ----------------------------------------------------

SERVICE_KINDS = "http|tcp|tls"


def services() -> JSON:
    kind = f'kind=~"{SERVICE_KINDS}"'
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
            " Dashed lines at the p95 alert thresholds: 2 s info, 3 s warning,"
            " 5 s critical.",
            quantiles(
                sel("readiness_probe_latency_seconds_bucket", kind),
                "probe",
                "{{probe}} ",
            ),
            Look("s", LATENCY_STEPS),
        ),
        bargauge(
            "Uptime over the time range",
            "Share of runs that succeeded (avg_over_time of readiness_probe_success)"
            " over the dashboard's time range; orange under 99 %, red under 95 %"
            " (the error-rate alert thresholds).",
            [
                Query(
                    f"avg_over_time({sel('readiness_probe_success', kind)}[$__range])",
                    "{{probe}}",
                    instant=True,
                )
            ],
            Look("percentunit", SUCCESS_RATIO_STEPS, min=0, max=1, decimals=2),
            w=12,
        ),
        row("Certificates"),
        table(
            "Certificate days left",
            "Every certificate of every chain (position 0 is the leaf), still"
            " listed when expired or unverifiable. Orange under 30 days (warning),"
            " red under 7 days (critical).",
            [
                Query(f"({not_after} - time()) / {DAY:g}"),
                Query(f"{not_after} * 1000"),
            ],
            Look("short", CERT_DAYS_STEPS, decimals=1),
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
            " (readiness_tls_version_info); the tls_version_min check wants 1.2+.",
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
            " latency_window runs, which its latency check compares with"
            " latency_target. Dashed lines at 2 / 3 / 5 s.",
            [Query(sel("readiness_http_latency_p95_seconds"), "{{probe}}")],
            Look("s", LATENCY_STEPS),
        ),
    ]
    return dashboard(
        "readiness-services",
        "Readiness: services and certificates",
        "HTTP, TCP and TLS probes: status, latency, uptime, certificates.",
        SERVICE_KINDS,
        panels,
    )


# --- data stores ------------------------------------------------------------------

DATASTORE_KINDS = "postgres|redis|mongodb"


def ratio_by_probe(numerator: str, denominator: str) -> str:
    return f"sum by (probe) ({numerator}) / sum by (probe) ({denominator})"


def hit_ratio() -> str:
    hits = f"sum by (probe) ({rate(sel('readiness_redis_keyspace_hits_total'))})"
    misses = f"sum by (probe) ({rate(sel('readiness_redis_keyspace_misses_total'))})"
    return f"{hits} / ({hits} + {misses})"


def datastores() -> JSON:
    mongo = "readiness_mongodb_connections"
    panels = [
        row("Connections"),
        timeseries(
            "Connections in use vs max",
            "PostgreSQL: client backends / (max_connections minus reserved slots);"
            " MongoDB: current / (current + available). Dashed line at the 80 %"
            " alert threshold.",
            [
                Query(
                    ratio_by_probe(
                        sel("readiness_postgres_backends"),
                        sel("readiness_postgres_max_connections_usable"),
                    ),
                    "{{probe}}",
                ),
                Query(
                    ratio_by_probe(
                        sel(mongo, 'state="current"'),
                        sel(mongo, 'state=~"current|available"'),
                    ),
                    "{{probe}}",
                ),
            ],
            Look("percentunit", CONNECTIONS_STEPS, min=0, max=1),
        ),
        timeseries(
            "Connections",
            "Connections in use and the most the server accepts: PostgreSQL"
            " backends and usable max_connections, MongoDB current and available,"
            " Redis clients and maxclients.",
            [
                Query(sel("readiness_postgres_backends"), "{{probe}} in use"),
                Query(
                    sel("readiness_postgres_max_connections_usable"), "{{probe}} max"
                ),
                Query(sel(mongo), "{{probe}} {{state}}"),
                Query(sel("readiness_redis_connected_clients"), "{{probe}} clients"),
                Query(sel("readiness_redis_maxclients"), "{{probe}} maxclients"),
            ],
            Look("short"),
        ),
        row("Redis"),
        timeseries(
            "Redis memory used / maxmemory",
            "used_memory over maxmemory (servers without a limit drop out: the"
            " maxmemory_set check fails for them). Dashed lines at the 85 %"
            " warning and 90 % critical alert thresholds.",
            [
                Query(
                    f"{sel('readiness_redis_memory_used_bytes')}"
                    f" / ({sel('readiness_redis_maxmemory_bytes')} > 0)",
                    "{{probe}}",
                )
            ],
            Look("percentunit", MEMORY_STEPS, min=0, max=1),
        ),
        timeseries(
            "Redis memory",
            "readiness_redis_memory_used_bytes and readiness_redis_maxmemory_bytes"
            " (0 means no limit).",
            [
                Query(sel("readiness_redis_memory_used_bytes"), "{{probe}} used"),
                Query(sel("readiness_redis_maxmemory_bytes"), "{{probe}} maxmemory"),
            ],
            Look("bytes"),
        ),
        table(
            "Redis eviction policy and role",
            "maxmemory-policy (readiness_redis_eviction_policy_info; the"
            " eviction_policy check compares it with the expected one) and the"
            " replication role.",
            [
                Query(f"{sel('readiness_redis_eviction_policy_info')} == 1"),
                Query(f"{sel('readiness_redis_role_info')} == 1"),
            ],
            Look("short"),
            w=8,
            columns=("probe", "policy", "role"),
            hide=("Value #A", "Value #B"),
        ),
        stat(
            "Redis persistence",
            "Append-only file on (readiness_redis_aof_enabled) and last RDB"
            " snapshot succeeded (readiness_redis_rdb_last_save_ok).",
            [
                Query(sel("readiness_redis_aof_enabled"), "{{probe}} AOF"),
                Query(sel("readiness_redis_rdb_last_save_ok"), "{{probe}} RDB save"),
            ],
            Look("none", ALL_GOOD_STEPS, mappings=YES_NO),
            w=8,
        ),
        timeseries(
            "Redis keyspace hit ratio",
            "Hits / (hits + misses) from the keyspace counters, and the ratio"
            " between the last two runs that the hit_ratio check judges"
            " (readiness_redis_hit_ratio); red under its 80 % floor. Empty while"
            " nobody reads keys.",
            [
                Query(hit_ratio(), "{{probe}}"),
                Query(sel("readiness_redis_hit_ratio"), "{{probe}} between runs"),
            ],
            Look("percentunit", HIT_RATIO_STEPS, min=0, max=1),
            w=8,
        ),
        timeseries(
            "Redis evictions",
            "Keys evicted per second (readiness_redis_evicted_keys_total).",
            [
                Query(
                    "sum by (probe) "
                    f"({rate(sel('readiness_redis_evicted_keys_total'))})",
                    "{{probe}}",
                )
            ],
            Look("cps"),
            w=12,
        ),
        state_timeline(
            "BullMQ queues paused",
            "readiness_redis_bullmq_queue_paused per queue: a paused queue keeps"
            " its jobs waiting.",
            [
                Query(
                    sel("readiness_redis_bullmq_queue_paused"),
                    "{{probe}} {{queue}}",
                )
            ],
            Look(
                "none",
                mappings=value_map((0, "running", "green"), (1, "paused", "orange")),
            ),
            w=12,
        ),
        timeseries(
            "BullMQ queue depths",
            "Jobs per BullMQ queue and state (readiness_redis_bullmq_jobs);"
            " completed jobs are left out.",
            [
                Query(
                    sel("readiness_redis_bullmq_jobs", 'state!="completed"'),
                    "{{queue}} {{state}}",
                )
            ],
            Look("short"),
            w=24,
        ),
        row("Replication and round trips"),
        timeseries(
            "Replica lag",
            "PostgreSQL standby replay lag (0 on a primary) and MongoDB replica-set"
            " member lag. Dashed line at the 30 s limit of the lag checks.",
            [
                Query(sel("readiness_postgres_replica_lag_seconds"), "{{probe}}"),
                Query(
                    sel("readiness_mongodb_replset_member_lag_seconds"),
                    "{{probe}} {{member}}",
                ),
            ],
            Look("s", REPLICA_LAG_STEPS),
        ),
        state_timeline(
            "MongoDB replica-set members",
            "readiness_mongodb_replset_member_healthy: reachable and primary,"
            " secondary or arbiter.",
            [
                Query(
                    sel("readiness_mongodb_replset_member_healthy"),
                    "{{probe}} {{member}}",
                )
            ],
            Look("none", ALL_GOOD_STEPS, mappings=YES_NO),
        ),
        timeseries(
            "Round trips",
            "Last run's PostgreSQL readiness query, MongoDB ping, and connect"
            " times (only from runs that opened a connection).",
            [
                Query(sel("readiness_postgres_query_seconds"), "{{probe}} query"),
                Query(sel("readiness_mongodb_ping_seconds"), "{{probe}} ping"),
                Query(sel("readiness_postgres_connect_seconds"), "{{probe}} connect"),
                Query(sel("readiness_mongodb_connect_seconds"), "{{probe}} connect"),
                Query(sel("readiness_redis_connect_seconds"), "{{probe}} connect"),
            ],
            Look("s"),
            w=24,
        ),
    ]
    return dashboard(
        "readiness-datastores",
        "Readiness: data stores",
        "PostgreSQL, Redis (with BullMQ queues) and MongoDB probes.",
        DATASTORE_KINDS,
        panels,
    )


# --- modbus -----------------------------------------------------------------------


def modbus() -> JSON:
    panels = [
        state_timeline(
            "Gateway connection",
            "readiness_modbus_gateway_up: the TCP connection or serial port to the"
            " gateway worked.",
            [Query(sel("readiness_modbus_gateway_up"), "{{probe}}")],
            Look("none", ALL_GOOD_STEPS, mappings=UP_DOWN),
        ),
        state_timeline(
            "Device answers",
            "readiness_modbus_device_up: the unit behind the gateway answered.",
            [Query(sel("readiness_modbus_device_up"), "{{probe}}")],
            Look("none", ALL_GOOD_STEPS, mappings=UP_DOWN),
        ),
        timeseries(
            "Register values",
            "Scaled register values (raw * scale + offset); the unit is in the"
            " legend, as each register has its own.",
            [
                Query(
                    sel("readiness_modbus_register_value"),
                    "{{probe}} {{register}} ({{unit}})",
                )
            ],
            Look("short"),
            w=16,
        ),
        table(
            "Register values now",
            "Last value of every register read in the last run, with its unit.",
            [Query(sel("readiness_modbus_register_value"))],
            Look("short"),
            w=8,
            columns=("probe", "register", "Value", "unit"),
        ),
        state_timeline(
            "Register reads",
            "readiness_modbus_register_read_success per register: read in the last"
            " run or not.",
            [
                Query(
                    sel("readiness_modbus_register_read_success"),
                    "{{probe}} {{register}}",
                )
            ],
            Look(
                "none",
                ALL_GOOD_STEPS,
                mappings=value_map((0, "unreadable", "red"), (1, "read", "green")),
            ),
        ),
        state_timeline(
            "Exception codes",
            "Modbus exception codes the device answered, per register and for the"
            " device as a whole (4 device failure, 10 / 11 gateway path or"
            " target); none is 0.",
            [
                Query(
                    sel("readiness_modbus_register_exception_code"),
                    "{{probe}} {{register}}",
                ),
                Query(
                    sel("readiness_modbus_device_exception_code"), "{{probe}} device"
                ),
            ],
            Look("none", NONE_FAILING_STEPS, mappings=MODBUS_EXCEPTIONS),
        ),
        timeseries(
            "Unreadable registers",
            "Registers per probe that could not be read in the last run; the"
            " alert fires after 5 minutes above 0.",
            [
                Query(
                    "sum by (probe) "
                    f"({sel('readiness_modbus_register_read_success')} == bool 0)",
                    "{{probe}}",
                )
            ],
            Look("short", NONE_FAILING_STEPS, min=0),
        ),
        timeseries(
            "Request time and gateway wait",
            "Slowest request of the last run (queueing excluded) and the time the"
            " run waited for its turn on a shared gateway.",
            [
                Query(sel("readiness_modbus_request_seconds"), "{{probe}} request"),
                Query(sel("readiness_modbus_gateway_wait_seconds"), "{{probe}} wait"),
            ],
            Look("s"),
        ),
    ]
    return dashboard(
        "readiness-modbus",
        "Readiness: Modbus devices",
        "Modbus gateways, the devices behind them and their registers.",
        "modbus",
        panels,
    )


# --- workers ----------------------------------------------------------------------


def worker_memory_ratio() -> str:
    """Per worker: memory / the probe's limit (one limit per probe)."""
    return (
        f"{sel('readiness_workers_memory_bytes')}"
        f" / on (job, instance, probe) group_left"
        f" {sel('readiness_workers_memory_limit_bytes')}"
    )


def workers() -> JSON:
    worker_checks = sel(
        "readiness_check_passed", 'check=~"workers_alive|worker_memory"'
    )
    panels = [
        stat(
            "Workers alive",
            "Share of the reported workers whose alive field is above zero"
            " (readiness_workers_alive / readiness_workers_reported).",
            [
                Query(
                    f"{sel('readiness_workers_alive')}"
                    f" / {sel('readiness_workers_reported')}",
                    "{{probe}}",
                )
            ],
            Look("percentunit", ALL_GOOD_STEPS, min=0, max=1, decimals=0),
            w=8,
        ),
        timeseries(
            "Workers alive vs reported",
            "Workers alive and workers the status API reported.",
            [
                Query(sel("readiness_workers_alive"), "{{probe}} alive"),
                Query(sel("readiness_workers_reported"), "{{probe}} reported"),
            ],
            Look("short"),
            w=16,
        ),
        timeseries(
            "Worker memory",
            "Memory each worker reports using (readiness_workers_memory_bytes) and"
            " the probe's memory_limit (readiness_workers_memory_limit_bytes).",
            [
                Query(sel("readiness_workers_memory_bytes"), "{{probe}} {{item}}"),
                Query(sel("readiness_workers_memory_limit_bytes"), "{{probe}} limit"),
            ],
            Look("bytes"),
        ),
        timeseries(
            "Worker memory vs limit",
            "Each worker's memory as a share of its probe's memory_limit. At 100 %"
            " the worker_memory check fails; ReadinessWorkerMemoryHigh fires after"
            " 5 minutes there.",
            [Query(worker_memory_ratio(), "{{probe}} {{item}}")],
            Look("percentunit", WORKER_MEMORY_STEPS, min=0),
        ),
        state_timeline(
            "Alive and memory checks",
            "The workers_alive and worker_memory checks: every worker alive, every"
            " worker under memory_limit (alerts after 5 minutes failing).",
            [Query(of_kind(worker_checks, "workers"), "{{probe}} {{check}}")],
            Look("none", ALL_GOOD_STEPS, mappings=PASS_FAIL),
        ),
        timeseries(
            "Queue depth",
            "Messages or jobs waiting, all items summed"
            " (readiness_workers_queue_depth).",
            [Query(sel("readiness_workers_queue_depth"), "{{probe}}")],
            Look("short"),
        ),
        timeseries(
            "Errors and restarts",
            "Rise of the error and restart counts the API reports, per rate"
            " interval; they should stay flat.",
            [
                Query(
                    rate(sel("readiness_workers_errors_total"), fn="increase"),
                    "{{probe}} errors",
                ),
                Query(
                    rate(sel("readiness_workers_restarts_total"), fn="increase"),
                    "{{probe}} restarts",
                ),
            ],
            Look("short", NONE_FAILING_STEPS, min=0),
            w=24,
        ),
    ]
    return dashboard(
        "readiness-workers",
        "Readiness: workers",
        "Worker threads and job queues behind JSON status APIs.",
        "workers",
        panels,
    )


# --- backups ----------------------------------------------------------------------


def backups() -> JSON:
    newest_age = f"time() - {sel('readiness_backup_newest_timestamp_seconds')}"
    # Each probe has its own max_age: the ratio puts every probe on one scale.
    age_ratio = (
        f"({newest_age}) / on (job, instance, probe)"
        f" {sel('readiness_backup_max_age_seconds')}"
    )
    backup_checks = of_kind(
        sel("readiness_check_passed", 'check=~"backup_.*"'), "backup"
    )
    panels = [
        stat(
            "Age of the newest backup",
            "time() - readiness_backup_newest_timestamp_seconds; measured against"
            " each probe's own max_age in 'Newest backup age / max age'.",
            [Query(newest_age, "{{probe}}")],
            Look("dtdurations"),
            w=8,
        ),
        stat(
            "Newest backup age / max age",
            "Age of the newest backup as a share of the probe's max_age"
            " (readiness_backup_max_age_seconds). Red from 100 %, where"
            " backup_fresh fails and ReadinessBackupTooOld fires after 10 minutes.",
            [Query(age_ratio, "{{probe}}")],
            Look("percentunit", BACKUP_AGE_STEPS, min=0),
            w=8,
        ),
        stat(
            "Backups kept",
            "Files matching each probe's glob (readiness_backup_files), those being"
            " written included.",
            [Query(sel("readiness_backup_files"), "{{probe}}")],
            Look("short", steps("red", (1, "green"))),
            w=8,
        ),
        timeseries(
            "Newest backup age / max age over time",
            "Should saw-tooth below the dashed 100 % line (the probe's max_age):"
            " it drops as each backup lands and climbs until the next.",
            [Query(age_ratio, "{{probe}}")],
            Look("percentunit", BACKUP_AGE_STEPS, min=0),
        ),
        state_timeline(
            "Backup checks",
            "backup_fresh (younger than max_age), backup_retention, backup_cleanup,"
            " backup_size and, when verify is on, backup_integrity.",
            [Query(backup_checks, "{{probe}} {{check}}")],
            Look("none", ALL_GOOD_STEPS, mappings=PASS_FAIL),
        ),
        timeseries(
            "Backup sizes",
            "Size of the newest backup and of all files matching the glob.",
            [
                Query(sel("readiness_backup_newest_size_bytes"), "{{probe}} newest"),
                Query(sel("readiness_backup_total_size_bytes"), "{{probe}} total"),
            ],
            Look("bytes"),
        ),
        state_timeline(
            "Integrity",
            "readiness_backup_verify_success: the newest archive was read end to"
            " end (only for probes with verify on).",
            [Query(sel("readiness_backup_verify_success"), "{{probe}}")],
            Look(
                "none",
                ALL_GOOD_STEPS,
                mappings=value_map((0, "CORRUPT", "red"), (1, "READABLE", "green")),
            ),
        ),
        timeseries(
            "Retention coverage",
            "Age of the oldest backup kept (should reach the retention window) and"
            " the largest gap between backups inside it.",
            [
                Query(
                    f"time() - {sel('readiness_backup_oldest_timestamp_seconds')}",
                    "{{probe}} oldest",
                ),
                Query(sel("readiness_backup_largest_gap_seconds"), "{{probe}} gap"),
            ],
            Look("s"),
            w=24,
        ),
    ]
    return dashboard(
        "readiness-backups",
        "Readiness: backups",
        "Backup sets: freshness, count, sizes, retention and integrity.",
        "backup",
        panels,
    )


# --- the exporter itself ----------------------------------------------------------

# process_* series of the exporter only, not of every scraped target.
EXPORTER_ONLY = "and on (job, instance) readiness_build_info"


def exporter() -> JSON:
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
            Look("s", LATENCY_STEPS),
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
            " timeout, connect, tls, auth, protocol, check, config, internal.",
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
            "Failed runs / runs; dashed lines at the 1 % warning and 5 % critical"
            " error-rate alert thresholds.",
            [
                Query(
                    f"sum by (probe) ({rate(sel('readiness_probe_failures_total'))})"
                    f" / sum by (probe) ({rate(sel('readiness_probe_runs_total'))})",
                    "{{probe}}",
                )
            ],
            Look("percentunit", ERROR_RATIO_STEPS, min=0),
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


# --- output -----------------------------------------------------------------------

BUILDERS: dict[str, Callable[[], JSON]] = {
    "readiness-overview.json": overview,
    "readiness-services.json": services,
    "readiness-datastores.json": datastores,
    "readiness-modbus.json": modbus,
    "readiness-workers.json": workers,
    "readiness-backups.json": backups,
    "readiness-exporter.json": exporter,
}


def render_all() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in BUILDERS.items()
    }


def stale_files(directory: Path = DASHBOARDS_DIR) -> list[str]:
    """Dashboards whose file differs from what this script renders."""
    return [
        name
        for name, text in render_all().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a file is out of date"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"out of date: grafana/dashboards/{name}", file=sys.stderr)
        return 1 if stale else 0
    DASHBOARDS_DIR.mkdir(exist_ok=True)
    for name, text in render_all().items():
        (DASHBOARDS_DIR / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
