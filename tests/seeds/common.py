"""What every seed-system test does: run a config's probes once as the
daemon would, read the three surfaces (the status document, /metrics, the
`check --system` gate), and say which checks of which system fail.

    verdict = await judge(config_path, "schedgen")
    assert verdict.failing == {("schedgen-redis", "eviction_policy")}
    assert verdict.gate_exit == 1  # a failing critical check ...
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import main
from exporter.config import load_config
from exporter.metrics import DaemonStatus, MetricsRenderer
from exporter.scheduler import Scheduler
from exporter.status import status_document

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "config" / "examples"


@dataclass(frozen=True)
class Verdict:
    """One system as the daemon and the gate see it after one run of all."""

    system: str
    verdict: str | None
    score: float | None
    failing: set[tuple[str, str]]  # (probe, check)
    details: dict[tuple[str, str], str]
    causes: dict[tuple[str, str], str | None]
    metric_verdict: str | None  # readiness_system_verdict's 1
    gate_exit: int  # check --system's exit code
    gate_verdict: str | None  # the verdict in check's JSON
    document: dict[str, Any]

    def agree(self) -> bool:
        """The status document, /metrics and the gate say the same."""
        ready = self.verdict == "ready"
        return (
            self.verdict == self.metric_verdict == self.gate_verdict
            and (self.gate_exit == 0) == ready
        )


def _metric_verdict(text: str, system: str) -> str | None:
    for family in text_string_to_metric_families(text):
        if family.name != "readiness_system_verdict":
            continue
        for sample in family.samples:
            if sample.labels.get("system") == system and sample.value == 1:
                return sample.labels["verdict"]
    return None


def _gate(path: Path, system: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            ["check", "--config", str(path), "--system", system, "--format", "json"]
        )
    return code, json.loads(out.getvalue())


async def judge(path: Path, system: str) -> Verdict:
    """Run every probe of *path* once as the daemon does, then the gate for
    *system*, and collect what each surface says about *system*."""
    scheduler = Scheduler(load_config(path))
    try:
        renderer = MetricsRenderer(scheduler, DaemonStatus(started_at=0.0))
        await scheduler.run_all_once()
        document = status_document(scheduler)
        text = renderer.render()
    finally:
        await scheduler.stop()
    entry = next(s for s in document["systems"] if s["name"] == system)
    failing = {(c["probe"], c["check"]) for c in entry["failing_checks"]}
    code, gate_doc = await _in_thread(_gate, path, system)
    gate_entry = next(s for s in gate_doc["systems"] if s["name"] == system)
    return Verdict(
        system=system,
        verdict=entry["verdict"],
        score=entry["score"],
        failing=failing,
        details={
            (c["probe"], c["check"]): c["detail"] for c in entry["failing_checks"]
        },
        causes={(c["probe"], c["check"]): c["reason"] for c in entry["failing_checks"]},
        metric_verdict=_metric_verdict(text, system),
        gate_exit=code,
        gate_verdict=gate_entry["verdict"],
        document=document,
    )


async def _in_thread(function: Any, *args: Any) -> Any:
    # The gate runs its own event loop (asyncio.run): not on this one.
    return await asyncio.to_thread(function, *args)
