"""The deploy gate: run every probe once, print the report, judge it.

The gate uses the verdict the daemon shows (exporter/readiness.py): it
passes when the judged system (`--system`, else the only system, else the
estate) is ready: no critical check failing and the score in the ready
band. `--min-score` replaces the band with a bar of its own for the gate
only; a failing critical check still fails it.
The report lists every check, failing ones first.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from exporter.config import Config
from exporter.scheduler import Scheduler
from exporter.status import status_document

EXIT_OK, EXIT_NOT_READY = 0, 1


class UnknownSystem(ValueError):
    """`--system` names no system of the config."""


def only_system(config: Config, system: str) -> Config:
    """*config* with only *system*'s probes and settings."""
    names = sorted({p.system for p in config.probes} | set(config.systems))
    if system not in names:
        raise UnknownSystem(
            f"no system {system!r} in {config.path} (systems: {', '.join(names)})"
        )
    return dataclasses.replace(
        config,
        probes=tuple(p for p in config.probes if p.system == system),
        systems={k: v for k, v in config.systems.items() if k == system},
    )


def _table(doc: dict[str, Any], judged: dict[str, Any]) -> str:
    rows = [("SYSTEM", "PROBE", "CHECK", "SEVERITY", "PASSED", "DETAIL")]
    checks = [
        (s["name"], p["name"], c)
        for s in doc["systems"]
        for p in s["probes"]
        for c in p.get("checks", [])
    ] + [
        (s["name"], "attestations", {"check": a["item"], **a})
        for s in doc["systems"]
        for a in s["attestations"]
    ]
    checks.sort(key=lambda row: row[2]["passed"])
    for system, probe, c in checks:
        detail = c["detail"] or ""
        if not c["passed"] and c.get("reason") not in (None, "check"):
            detail = f"[{c['reason']}] {detail}"
        rows.append(
            (
                system,
                probe,
                c["check"],
                c["severity"],
                "yes" if c["passed"] else "NO",
                detail,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True))
        + "  "
        + row[5]
        for row in rows
    ]
    lines.append("")
    for system in doc["systems"]:
        lines.append(f"system {system['name']}: {_verdict(system)}")
        for category, score in system["categories"].items():
            lines.append(f"  {category:<12} {score:.2f}")
    if len(doc["systems"]) > 1:
        lines.append(f"estate: {_verdict(doc['estate'])}")
    lines.append(f"judged: {judged['name']}")
    return "\n".join(lines)


def _verdict(readiness: dict[str, Any]) -> str:
    score = readiness["score"]
    if score is None:
        return "score n/a: no checks ran"
    return f"score {score:.2f}: {readiness['verdict_text']}"


def judge(judged: dict[str, Any], min_score: float | None) -> tuple[int, str]:
    """Exit code and the sentence that explains it, for the system or
    estate entry *judged* of a status document: its verdict must be ready,
    or with *min_score* its score at least that and no critical failing."""
    name = judged["name"]
    score = judged["score"]
    if score is None:
        return EXIT_NOT_READY, f"NOT READY ({name}): no checks ran"
    if judged["failing_critical"]:
        return EXIT_NOT_READY, (
            f"NOT READY ({name}): critical checks failed: "
            + ", ".join(judged["failing_critical"])
        )
    if min_score is not None:
        if score < min_score:
            return (
                EXIT_NOT_READY,
                f"NOT READY ({name}): score {score:.2f} is below the minimum"
                f" {min_score:.2f}",
            )
        return EXIT_OK, f"READY ({name}): score {score:.2f} >= {min_score:.2f}"
    if judged["verdict"] != "ready":
        return EXIT_NOT_READY, (
            f"NOT READY ({name}): score {score:.2f}, {judged['verdict_text']}"
        )
    return EXIT_OK, f"READY ({name}): score {score:.2f}, {judged['verdict_text']}"


async def run_gate(
    config: Config, min_score: float | None, output: str, system: str | None = None
) -> int:
    """Run *config*'s probes (only *system*'s with one) once, print the
    report in *output* format, and return the exit code."""
    if system is not None:
        config = only_system(config, system)
    scheduler = Scheduler(config)
    try:
        await scheduler.run_all_once()
        doc = status_document(scheduler)
    finally:
        await scheduler.stop()
    if system is not None:
        judged = next(s for s in doc["systems"] if s["name"] == system)
    elif len(doc["systems"]) == 1:
        judged = doc["systems"][0]
    else:
        judged = {"name": "estate", **doc["estate"]}
    code, verdict = judge(judged, min_score)
    if output == "json":
        print(
            json.dumps(
                {
                    **doc,
                    "judged": judged["name"],
                    "min_score": min_score,
                    "gate": verdict,
                    "exit_code": code,
                },
                indent=2,
            )
        )
    else:
        print(_table(doc, judged))
        print(verdict)
    return code
