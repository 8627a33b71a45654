"""The deploy gate: run every probe once, print the report, judge it.

Exit 1 when the overall score is under the minimum or any critical check
fails; 0 otherwise. The report lists every check, failing ones first.
"""

from __future__ import annotations

import json
from typing import Any

from exporter.config import Config
from exporter.scheduler import Scheduler
from exporter.status import status_document

EXIT_OK, EXIT_NOT_READY = 0, 1


def _table(doc: dict[str, Any]) -> str:
    rows = [("PROBE", "CHECK", "CATEGORY", "SEVERITY", "PASSED", "DETAIL")]
    checks = [(p["name"], c) for p in doc["probes"] for c in p.get("checks", [])]
    checks.sort(key=lambda pc: pc[1]["passed"])
    for probe, c in checks:
        rows.append(
            (
                probe,
                c["check"],
                c["category"],
                c["severity"],
                "yes" if c["passed"] else "NO",
                c["detail"] or "",
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
    for category, score in doc["categories"].items():
        lines.append(f"{category:<12} {score:.2f}")
    score = doc["score"]
    lines.append(
        f"score {score:.2f}: {doc['verdict_text']}"
        if score is not None
        else "score n/a: no checks ran"
    )
    return "\n".join(lines)


def judge(doc: dict[str, Any], min_score: float) -> tuple[int, str]:
    """Exit code and the sentence that explains it."""
    critical = [
        f"{c['probe']}/{c['check']}"
        for c in doc["failing_checks"]
        if c["severity"] == "critical"
    ]
    score = doc["score"]
    if score is None:
        return EXIT_NOT_READY, "NOT READY: no checks ran"
    if critical:
        return EXIT_NOT_READY, "NOT READY: critical checks failed: " + ", ".join(
            critical
        )
    if score < min_score:
        return (
            EXIT_NOT_READY,
            f"NOT READY: score {score:.2f} is below the minimum {min_score:.2f}",
        )
    return EXIT_OK, f"READY: score {score:.2f} >= {min_score:.2f}"


async def run_gate(config: Config, min_score: float, output: str) -> int:
    """Run *config*'s probes once and print the report in *output* format."""
    scheduler = Scheduler(config)
    try:
        await scheduler.run_all_once()
        doc = status_document(scheduler)
    finally:
        await scheduler.stop()
    code, verdict = judge(doc, min_score)
    if output == "json":
        print(
            json.dumps(
                {**doc, "min_score": min_score, "gate": verdict, "exit_code": code},
                indent=2,
            )
        )
    else:
        print(_table(doc))
        print(verdict)
    return code
