"""Workers: worker threads and job queues behind JSON status APIs."""

from __future__ import annotations

from alerts.thresholds import Thresholds
from exporter.kinds import check
from grafana.generator.common import dashboard, limit_field, minutes, of_kind, rate, sel
from grafana.generator.panels import (
    ALL_GOOD_STEPS,
    JSON,
    NONE_FAILING_STEPS,
    PASS_FAIL,
    Look,
    Query,
    stat,
    state_timeline,
    steps,
    timeseries,
)

# A worker's memory as a share of its probe's limit: orange as it nears the
# limit, red from the limit itself, where the worker_memory check fails and
# ReadinessWorkerMemoryHigh fires (a ratio to each probe's own limit).
MEMORY_NEAR_LIMIT, AT_LIMIT = 0.85, 1.0


def worker_memory_ratio() -> str:
    """Per worker: memory / the probe's limit (one limit per probe)."""
    return (
        f"{sel('readiness_workers_memory_bytes')}"
        f" / on (job, instance, probe) group_left"
        f" {sel('readiness_workers_memory_max_bytes')}"
    )


def build(t: Thresholds) -> JSON:
    alive, memory = check("workers", "workers_alive"), check("workers", "worker_memory")
    memory_max = limit_field("workers", memory)
    worker_checks = sel("readiness_check_passed", f'check=~"{alive}|{memory}"')
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
            f" the probe's {memory_max} (readiness_workers_memory_max_bytes).",
            [
                Query(sel("readiness_workers_memory_bytes"), "{{probe}} {{item}}"),
                Query(sel("readiness_workers_memory_max_bytes"), "{{probe}} limit"),
            ],
            Look("bytes"),
        ),
        timeseries(
            "Worker memory vs limit",
            f"Each worker's memory as a share of its probe's {memory_max}. At 100 %"
            f" the {memory} check fails; ReadinessWorkerMemoryHigh fires after"
            f" {minutes(t.workers.memory_for)} there.",
            [Query(worker_memory_ratio(), "{{probe}} {{item}}")],
            Look(
                "percentunit",
                steps("green", (MEMORY_NEAR_LIMIT, "orange"), (AT_LIMIT, "red")),
                min=0,
            ),
        ),
        state_timeline(
            "Alive and memory checks",
            f"The {alive} and {memory} checks: every worker alive, every worker"
            f" under {memory_max} (ReadinessWorkerDown alerts after"
            f" {minutes(t.workers.down_for)}, ReadinessWorkerMemoryHigh after"
            f" {minutes(t.workers.memory_for)}).",
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
