"""What every dashboard shares: the frame (variables, links, tags), the
PromQL helpers that follow the probe variable, the looks drawn from the
alert thresholds, and the names of checks and limits, read from the kinds'
tables so that a renamed check fails the generator instead of going stale."""

from __future__ import annotations

from collections.abc import Iterable

from alerts.thresholds import Thresholds
from exporter.kinds import PROBES
from grafana.generator.panels import DATASOURCE, JSON, Query, layout, steps

SCHEMA_VERSION = 39
TAG = "readiness-exporter"


# --- names and numbers from their sources -------------------------------------


def limit_field(kind: str, check: str) -> str:
    """The config field that sets the limit of *kind*'s check *check*."""
    field = PROBES[kind].check(check).threshold
    if field is None:
        raise ValueError(f"check {check!r} of {kind} has no threshold field")
    return field


def default_limit(*checks: tuple[str, str]) -> float:
    """The default of the limit field of every (kind, check): one value."""
    defaults = {
        PROBES[kind].config.model_fields[limit_field(kind, check)].default
        for kind, check in checks
    }
    if len(defaults) != 1:
        raise ValueError(f"the checks {checks} have different defaults {defaults}")
    (default,) = defaults
    return float(default)


def percent(ratio: float) -> str:
    return f"{round(ratio * 100, 6):g} %"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:g} minutes"


def latency_steps(t: Thresholds) -> JSON:
    latency = t.latency_p95_seconds
    return steps(
        "green",
        (latency.info, "yellow"),
        (latency.warning, "orange"),
        (latency.critical, "red"),
    )


# --- the frame ----------------------------------------------------------------


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


# --- PromQL -------------------------------------------------------------------

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
