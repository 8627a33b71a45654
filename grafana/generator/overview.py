"""Readiness overview: score, verdict, category scores, failing checks."""

from __future__ import annotations

from alerts.thresholds import Thresholds
from exporter.readiness import ScoringConfig, Verdict
from grafana.generator.common import dashboard, sel
from grafana.generator.panels import (
    ALL_GOOD_STEPS,
    JSON,
    NONE_FAILING_STEPS,
    Look,
    Query,
    bargauge,
    stat,
    steps,
    table,
    timeseries,
    value_map,
)

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

# The verdicts as one number, best highest, and how the Verdict panel shows it.
RANKED = (Verdict.READY, Verdict.MINOR, Verdict.STAGING, Verdict.NOT_READY)
VERDICT_CODE = (
    "max("
    + " or ".join(
        f'readiness_verdict{{verdict="{verdict}"}} * {len(RANKED) - rank}'
        for rank, verdict in enumerate(RANKED)
    )
    + ")"
)
VERDICTS = value_map(
    (0, "No checks yet", "text"),
    (1, "Not ready", "red"),
    (2, "Staging only", "orange"),
    (3, "Ready, minor improvements", "yellow"),
    (4, "Ready", "green"),
)


def score_text(score: float) -> str:
    """0.9 as 0.90, as scores are written; more places only when needed."""
    return f"{score:.2f}" if round(score, 2) == score else f"{score:g}"


def build(t: Thresholds) -> JSON:
    bands = ScoringConfig()
    alert = t.score
    # Red, orange from the critical alert, yellow from the "minor" band,
    # green from the warning alert (both alerts sit on the default bands).
    score_steps = steps(
        "red",
        (alert.critical, "orange"),
        (bands.minor, "yellow"),
        (alert.warning, "green"),
    )
    score = Look("percentunit", score_steps, min=0, max=1, decimals=1)
    panels = [
        stat(
            "Readiness score",
            "readiness_score_ratio: the category scores weighted as configured."
            f" Bands: {score_text(bands.ready)} ready, {score_text(bands.minor)}"
            f" minor improvements, {score_text(bands.staging)} staging only; alerts"
            f" fire below {score_text(alert.warning)} (warning) and"
            f" {score_text(alert.critical)} (critical).",
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
