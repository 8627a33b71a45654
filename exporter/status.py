"""The status report: one document for `/api/v1/status`, `/` and `check`.

The estate first, then each system with its score, verdict, failing checks
(critical first, each with its own cause), probes and attestations. The
fields are documented in docs/status-api.md. Nothing here comes from config
secrets: names, labels, and check details that probes and the runner have
already redacted.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from typing import Any

from exporter import __version__
from exporter.metrics import DaemonStatus
from exporter.probes.base import Check, Severity
from exporter.readiness import Readiness
from exporter.scheduler import ProbeRecord, Scheduler
from exporter.systems import ATTESTATION_KIND, ATTESTATIONS_SOURCE, System

_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _check_entry(check: Check, probe_reason: str | None) -> dict[str, Any]:
    # A check the run never got to judge failed for the run's reason; one
    # that was judged and failed is the check's own finding.
    reason = None if check.passed else ("check" if check.evaluated else probe_reason)
    return {
        "check": check.name,
        "category": check.category,
        "severity": check.severity.value,
        "passed": check.passed,
        "evaluated": check.evaluated,
        "reason": reason,
        "detail": check.detail,
    }


def _probe_entry(record: ProbeRecord) -> dict[str, Any]:
    result = record.result
    entry: dict[str, Any] = {
        "name": record.config.name,
        "kind": record.config.kind,
        "system": record.config.system,
        "interval_seconds": record.config.interval,
        "labels": dict(record.config.labels),
        "runs": record.runs,
        "failures": record.failures,
        "ran": result is not None,
    }
    if result is None:
        return entry
    reason = result.reason.value if result.reason else None
    entry.update(
        success=result.success,
        up=bool(record.up),
        reason=reason,
        error=result.error,
        duration_seconds=round(result.duration_seconds, 6),
        last_run_timestamp_seconds=result.finished_at,
        checks=[_check_entry(c, reason) for c in result.checks],
    )
    return entry


def _readiness(readiness: Readiness) -> dict[str, Any]:
    return {
        "score": readiness.score,
        "verdict": readiness.verdict.value if readiness.verdict else None,
        "verdict_text": readiness.verdict_text,
        "categories": dict(sorted(readiness.categories.items())),
        "checks_total": readiness.checks_total,
        "checks_failed": readiness.checks_failed,
        "failing_critical": list(readiness.failing_critical),
    }


def _failing(probes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    failing = [
        {
            "system": p["system"],
            "probe": p["name"],
            "kind": p["kind"],
            "labels": p["labels"],
            **check,
        }
        for p in probes
        for check in p.get("checks", [])
        if not check["passed"]
    ]
    failing.sort(
        key=lambda c: (_SEVERITY_ORDER[Severity(c["severity"])], c["probe"], c["check"])
    )
    return failing


def _attestations(system: System | None, now: float) -> list[dict[str, Any]]:
    if system is None:
        return []
    return [
        {
            "item": a.item,
            "category": a.category,
            "severity": a.severity.value,
            "attested_passed": a.passed,
            "passed": (check := a.check(now)).passed,
            "by": a.by,
            "at_timestamp_seconds": a.at.timestamp(),
            "expires_timestamp_seconds": a.expires_at.timestamp(),
            "detail": check.detail,
        }
        for a in system.attestations
    ]


def _attestation_failures(
    name: str, attestations: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    return [
        {
            "system": name,
            "probe": ATTESTATIONS_SOURCE,
            "kind": ATTESTATION_KIND,
            "labels": {},
            "check": a["item"],
            "category": a["category"],
            "severity": a["severity"],
            "passed": False,
            "evaluated": True,
            "reason": "check",
            "detail": a["detail"],
        }
        for a in attestations
        if not a["passed"]
    ]


def status_document(
    scheduler: Scheduler, status: DaemonStatus | None = None
) -> dict[str, Any]:
    """The estate, every system, their failing checks and every probe."""
    now = time.time()
    assessment = scheduler.assessment()
    probes = [_probe_entry(r) for r in scheduler.records.values()]
    systems = []
    for name, readiness in assessment.systems.items():
        system = scheduler.config.systems.get(name)
        own = [p for p in probes if p["system"] == name]
        attestations = _attestations(system, now)
        failing = _failing(own) + _attestation_failures(name, attestations)
        failing.sort(key=lambda c: _SEVERITY_ORDER[Severity(c["severity"])])
        scoring = system.scoring if system else scheduler.config.scoring
        systems.append(
            {
                "name": name,
                "description": system.description if system else "",
                **_readiness(readiness),
                "category_weights": {
                    c: scoring.category_weight(c) for c in readiness.categories
                },
                "bands": {
                    "ready": scoring.ready,
                    "minor": scoring.minor,
                    "staging": scoring.staging,
                },
                "failing_checks": failing,
                "probes": own,
                "attestations": attestations,
            }
        )
    document: dict[str, Any] = {
        "version": __version__,
        "generated_at": now,
        "all_probes_ran": scheduler.all_ran(),
        "estate": _readiness(assessment.estate),
        "systems": systems,
        "failing_checks": sorted(
            (c for s in systems for c in s["failing_checks"]),
            key=lambda c: (_SEVERITY_ORDER[Severity(c["severity"])], c["system"]),
        ),
    }
    if status is not None:
        document["config"] = {
            "path": str(scheduler.config.path),
            "last_reload_successful": status.last_reload_successful,
            "last_reload_success_timestamp_seconds": (
                status.last_reload_success_timestamp
            ),
            "last_reload_problems": list(status.last_reload_problems),
        }
    return document


# --- the page ------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.2em;margin-top:1.8em}h3{font-size:1em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.fail{color:#b00020;font-weight:600}.ok{color:#1b7a1b}
.critical{background:#fde7e9}.warning{background:#fff4e0}.score{font-size:2em}
.muted{color:#777}.banner{background:#fde7e9;border:1px solid #b00020;padding:.6em}
.labels{color:#555;font-size:.9em}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _score_text(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.2f}"


def _labels(labels: dict[str, str]) -> str:
    return " ".join(f"{_e(k)}={_e(v)}" for k, v in sorted(labels.items()))


def _verdict_line(readiness: dict[str, Any]) -> str:
    return (
        f"<p><span class='score'>{_score_text(readiness['score'])}</span> "
        f"<b>{_e(readiness['verdict_text'] or 'nothing judged yet')}</b> "
        f"<span class='muted'>{readiness['checks_failed']} of"
        f" {readiness['checks_total']} checks failing"
        + (
            f"; critical failing: {len(readiness['failing_critical'])}"
            if readiness["failing_critical"]
            else ""
        )
        + "</span></p>"
    )


def _failing_table(failing: list[dict[str, Any]]) -> list[str]:
    if not failing:
        return ["<p class='ok'>No failing checks.</p>"]
    out = [
        "<table><tr><th>probe</th><th>check</th><th>category</th>"
        "<th>severity</th><th>cause</th><th>detail</th></tr>"
    ]
    for c in failing:
        out.append(
            f"<tr class='{_e(c['severity'])}'><td>{_e(c['probe'])}</td>"
            f"<td class='fail'>{_e(c['check'])}</td><td>{_e(c['category'])}</td>"
            f"<td>{_e(c['severity'])}</td><td>{_e(c['reason'] or '')}</td>"
            f"<td>{_e(c['detail'])}</td></tr>"
        )
    out.append("</table>")
    return out


def _probes_table(probes: list[dict[str, Any]], now: float) -> list[str]:
    out = [
        "<table><tr><th>probe</th><th>kind</th><th>labels</th><th>state</th>"
        "<th>reason</th><th>error</th><th>duration</th><th>last run</th>"
        "<th>checks</th></tr>"
    ]
    for p in probes:
        head = (
            f"<tr><td>{_e(p['name'])}</td><td>{_e(p['kind'])}</td>"
            f"<td class='labels'>{_labels(p['labels'])}</td>"
        )
        if not p["ran"]:
            out.append(head + "<td class='muted' colspan='6'>not run yet</td></tr>")
            continue
        passed = sum(1 for c in p["checks"] if c["passed"])
        state = (
            "<span class='ok'>up</span>"
            if p["up"]
            else "<span class='fail'>down</span>"
        )
        out.append(
            head + f"<td>{state}</td><td>{_e(p['reason'] or '')}</td>"
            f"<td>{_e(p['error'])}</td><td>{p['duration_seconds']:.3f}s</td>"
            f"<td>{now - p['last_run_timestamp_seconds']:.0f}s ago</td>"
            f"<td>{passed}/{len(p['checks'])}</td></tr>"
        )
    out.append("</table>")
    return out


def _system_section(system: dict[str, Any], now: float) -> list[str]:
    out = [
        f"<h2 id='system-{_e(system['name'])}'>System {_e(system['name'])}</h2>",
    ]
    if system["description"]:
        out.append(f"<p class='muted'>{_e(system['description'])}</p>")
    out.append(_verdict_line(system))
    out.append("<h3>Failing checks</h3>")
    out += _failing_table(system["failing_checks"])
    out.append("<h3>Categories</h3><table><tr><th>category</th><th>score</th>")
    out.append("<th>weight</th></tr>")
    for category, score in system["categories"].items():
        weight = system["category_weights"].get(category, 0)
        out.append(
            f"<tr><td>{_e(category)}</td><td>{score:.2f}</td><td>{weight:g}</td></tr>"
        )
    out.append("</table><h3>Probes</h3>")
    out += _probes_table(system["probes"], now)
    if system["attestations"]:
        out.append(
            "<h3>Attestations</h3><table><tr><th>item</th><th>category</th>"
            "<th>severity</th><th>state</th><th>detail</th></tr>"
        )
        for a in system["attestations"]:
            state = (
                "<span class='ok'>passed</span>"
                if a["passed"]
                else "<span class='fail'>failing</span>"
            )
            out.append(
                f"<tr><td>{_e(a['item'])}</td><td>{_e(a['category'])}</td>"
                f"<td>{_e(a['severity'])}</td><td>{state}</td>"
                f"<td>{_e(a['detail'])}</td></tr>"
            )
        out.append("</table>")
    return out


def render_html(doc: dict[str, Any]) -> str:
    """The status page: plain HTML, no external assets."""
    now = time.time()
    estate = doc["estate"]
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta http-equiv='refresh' content='15'>",
        "<title>readiness-exporter</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Production readiness</h1>",
    ]
    config = doc.get("config")
    if config and not config["last_reload_successful"]:
        out.append(
            "<div class='banner'><b>The last configuration reload was rejected;"
            " the previous configuration keeps running.</b><ul>"
            + "".join(f"<li>{_e(p)}</li>" for p in config["last_reload_problems"])
            + "</ul></div>"
        )
    multi = len(doc["systems"]) > 1
    if multi:
        out.append("<h2>Estate</h2>")
    out.append(_verdict_line(estate))
    if not doc["all_probes_ran"]:
        out.append("<p class='muted'>Some probes have not run yet.</p>")
    out.append(
        "<p><a href='/metrics'>/metrics</a> · "
        "<a href='/api/v1/status'>/api/v1/status</a></p>"
    )
    if multi:
        out.append(
            "<table><tr><th>system</th><th>score</th><th>verdict</th>"
            "<th>failing</th></tr>"
        )
        for s in doc["systems"]:
            out.append(
                f"<tr><td><a href='#system-{_e(s['name'])}'>{_e(s['name'])}</a></td>"
                f"<td>{_score_text(s['score'])}</td>"
                f"<td>{_e(s['verdict_text'] or 'nothing judged yet')}</td>"
                f"<td>{s['checks_failed']}</td></tr>"
            )
        out.append("</table>")
    for system in doc["systems"]:
        out += _system_section(system, now)
    out.append(
        f"<p class='muted'>readiness-exporter {_e(doc['version'])}</p></body></html>"
    )
    return "".join(out)
