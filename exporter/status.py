"""The status report: one document for `/api/v1/status`, `/` and `check`.

Failing checks come first, with the reason and a short detail. Nothing here
comes from config secrets: probe names, check names and details that probes
and the runner have already redacted.
"""

from __future__ import annotations

import html
import time
from typing import Any

from exporter import __version__
from exporter.probes.base import Severity
from exporter.readiness import VERDICT_TEXT
from exporter.scheduler import ProbeRecord, Scheduler

_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _probe_entry(record: ProbeRecord) -> dict[str, Any]:
    result = record.result
    entry: dict[str, Any] = {
        "name": record.config.name,
        "kind": record.config.kind,
        "interval_seconds": record.config.interval,
        "labels": dict(record.config.labels),
        "runs": record.runs,
        "failures": record.failures,
        "ran": result is not None,
    }
    if result is None:
        return entry
    entry.update(
        success=result.success,
        up=bool(record.up),
        reason=result.reason.value if result.reason else None,
        error=result.error,
        duration_seconds=round(result.duration_seconds, 6),
        last_run_timestamp_seconds=result.finished_at,
        checks=[
            {
                "check": c.name,
                "category": c.category.value,
                "severity": c.severity.value,
                "passed": c.passed,
                "detail": c.detail,
            }
            for c in result.checks
        ],
    )
    return entry


def status_document(scheduler: Scheduler) -> dict[str, Any]:
    """Score, verdict, categories, failing checks and every probe's last run."""
    readiness = scheduler.readiness()
    probes = [_probe_entry(r) for r in scheduler.records.values()]
    failing = [
        {
            "probe": p["name"],
            "kind": p["kind"],
            "reason": p.get("reason"),
            **check,
        }
        for p in probes
        for check in p.get("checks", [])
        if not check["passed"]
    ]
    failing.sort(key=lambda c: (_SEVERITY_ORDER[Severity(c["severity"])], c["probe"]))
    return {
        "version": __version__,
        "generated_at": time.time(),
        "ready": scheduler.ready(),
        "score": readiness.score,
        "verdict": readiness.verdict.value if readiness.score is not None else None,
        "verdict_text": (
            VERDICT_TEXT[readiness.verdict] if readiness.score is not None else None
        ),
        "categories": {c.value: s for c, s in readiness.categories.items()},
        "checks_total": readiness.checks_total,
        "checks_failed": readiness.checks_failed,
        "failing_checks": failing,
        "probes": probes,
    }


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.fail{color:#b00020;font-weight:600}.ok{color:#1b7a1b}
.critical{background:#fde7e9}.warning{background:#fff4e0}.score{font-size:2em}
.muted{color:#777}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _score_text(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.2f}"


def render_html(doc: dict[str, Any]) -> str:
    """The status page: plain HTML, no external assets."""
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta http-equiv='refresh' content='15'>",
        "<title>readiness-exporter</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Production readiness</h1>",
        f"<p><span class='score'>{_score_text(doc['score'])}</span> ",
        f"<b>{_e(doc['verdict_text'] or 'no checks yet')}</b> ",
        f"<span class='muted'>{doc['checks_failed']} of {doc['checks_total']}"
        " checks failing",
        "" if doc["ready"] else "; some probes have not run yet",
        "</span></p>",
        "<p><a href='/metrics'>/metrics</a> · "
        "<a href='/api/v1/status'>/api/v1/status</a></p>",
        "<h2>Categories</h2><table><tr><th>category</th><th>score</th></tr>",
    ]
    for category, score in doc["categories"].items():
        out.append(f"<tr><td>{_e(category)}</td><td>{score:.2f}</td></tr>")
    out.append("</table><h2>Failing checks</h2>")
    if doc["failing_checks"]:
        out.append(
            "<table><tr><th>probe</th><th>check</th><th>category</th>"
            "<th>severity</th><th>reason</th><th>detail</th></tr>"
        )
        for c in doc["failing_checks"]:
            out.append(
                f"<tr class='{_e(c['severity'])}'><td>{_e(c['probe'])}</td>"
                f"<td class='fail'>{_e(c['check'])}</td><td>{_e(c['category'])}</td>"
                f"<td>{_e(c['severity'])}</td><td>{_e(c['reason'] or '')}</td>"
                f"<td>{_e(c['detail'])}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p class='ok'>None.</p>")
    out.append(
        "<h2>Probes</h2><table><tr><th>probe</th><th>kind</th><th>state</th>"
        "<th>reason</th><th>error</th><th>duration</th><th>last run</th>"
        "<th>checks</th></tr>"
    )
    now = time.time()
    for p in doc["probes"]:
        if not p["ran"]:
            out.append(
                f"<tr><td>{_e(p['name'])}</td><td>{_e(p['kind'])}</td>"
                "<td class='muted' colspan='6'>not run yet</td></tr>"
            )
            continue
        passed = sum(1 for c in p["checks"] if c["passed"])
        state = (
            "<span class='ok'>up</span>"
            if p["up"]
            else "<span class='fail'>down</span>"
        )
        out.append(
            f"<tr><td>{_e(p['name'])}</td><td>{_e(p['kind'])}</td><td>{state}</td>"
            f"<td>{_e(p['reason'] or '')}</td><td>{_e(p['error'])}</td>"
            f"<td>{p['duration_seconds']:.3f}s</td>"
            f"<td>{now - p['last_run_timestamp_seconds']:.0f}s ago</td>"
            f"<td>{passed}/{len(p['checks'])}</td></tr>"
        )
    out.append(
        f"</table><p class='muted'>readiness-exporter {_e(doc['version'])}</p>"
        "</body></html>"
    )
    return "".join(out)
