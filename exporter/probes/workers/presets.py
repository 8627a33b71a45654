"""Ready-made `workers` configs for two APIs named in the readiness checklists.

A preset fills endpoints, mappings, field roles and thresholds so a user
writes `preset:` and `url:` and nothing else; every part can be overridden
(explicit fields win, mappings and endpoints merge key by key: see
`exporter.probes.shared.presets`). The JSON
shapes each preset expects are documented, with example documents, in
docs/probes/workers.md.

- `mcp-threading`: the MCP Threading System's `GET /api/threading/status`
  (`{"success": true, "data": {"worker": {...}, "health": {...}, ...}}`, one
  worker thread), and the pool form of the same API, `data.workers[*]`, one
  record per worker with a `state` string.
- `bullmq-jobs-endpoint`: a NestJS `GET /api/jobs/metrics` that reports
  BullMQ `getJobCounts()` per queue and the number of connected workers:
  a list of queues, a map keyed by queue name (under `queues` or the whole
  reply), or one bare counts document. A queue's own `maxSize`, when the
  reply has one, is its depth limit (else 1000).

A user's `null` drops a preset's value: `queue_depth_max: null` turns the
check off, `growth: {waiting: null}` one growth check,
`mappings: {workers: {values: {healthy: null}}}` one mapped value.
"""

from __future__ import annotations

from typing import Any

from exporter.probes.shared.presets import Preset

# Worker states as Node worker-thread supervisors name them; anything else is
# reported as unmapped rather than guessed.
WORKER_STATES: dict[str, float] = {
    "RUNNING": 1,
    "IDLE": 1,
    "BUSY": 1,
    "STARTING": 1,
    "STOPPING": 0,
    "STOPPED": 0,
    "ERROR": 0,
    "CRASHED": 0,
    "TERMINATED": 0,
}

MCP_THREADING: dict[str, Any] = {
    "endpoints": {"status": "/api/threading/status"},
    "mappings": {
        "workers": {
            "endpoint": "status",
            # Pool form first; the single-thread form is the whole `data` block.
            "items": ["$.data.workers[*]", "$.data"],
            "item": ["id", "name"],
            "values": {
                "state": {
                    "path": ["state", "isRunning", "worker.isRunning"],
                    "map": WORKER_STATES,
                },
                "healthy": {"path": ["isHealthy", "health.isHealthy"]},
                "memory_bytes": {
                    "path": ["memoryUsage.heapUsed", "health.memoryUsage.heapUsed"]
                },
                "restarts": {"path": ["restartCount", "worker.restartCount"]},
                "errors": {"path": ["errorCount", "errors.totalErrors"]},
                "queue_depth": {"path": ["pendingMessages", "messages.pendingCount"]},
            },
        }
    },
    "alive_field": "state",
    "memory_field": "memory_bytes",
    "queue_depth_field": "queue_depth",
    "errors_field": "errors",
    "restarts_field": "restarts",
    "queue_depth_max": 100,
    "errors_budget": 10,
    "restarts_budget": 0,
    # Pending messages rising on five runs in a row: the worker falls behind.
    "growth": {"queue_depth": 5},
}

BULLMQ_JOBS_ENDPOINT: dict[str, Any] = {
    "endpoints": {"metrics": "/api/jobs/metrics"},
    "mappings": {
        "queues": {
            "endpoint": "metrics",
            # A list or a map of queues (a map's keys are the queue names),
            # then one bare getJobCounts() document, then a reply keyed by
            # queue name: the first whose items carry counts wins.
            "items": ["$.queues[*]", "$.data.queues[*]", "$", "$[*]"],
            "item": ["name"],
            "values": {
                "waiting": {"path": ["counts.waiting", "counts.wait", "waiting"]},
                "active": {"path": ["counts.active", "active"]},
                "delayed": {"path": ["counts.delayed", "delayed"]},
                "failed": {"path": ["counts.failed", "failed"]},
                "workers": {"path": ["workers", "workerCount"]},
                "max_size": {"path": ["maxSize", "limits.maxSize"]},
            },
        }
    },
    "alive_field": "workers",
    "queue_depth_field": "waiting",
    "errors_field": "failed",
    # The queue's own limit when the API reports one.
    "queue_depth_max": ["max_size", 1000],
    "errors_budget": 10,
    # The backlog rising on five runs in a row, as the redis kind's default.
    "growth": {"waiting": 5},
}

PRESETS: dict[str, Preset] = {
    "mcp-threading": Preset(
        MCP_THREADING,
        note="the MCP Threading System's /api/threading/status, one worker or a pool",
    ),
    "bullmq-jobs-endpoint": Preset(
        BULLMQ_JOBS_ENDPOINT,
        note="a NestJS /api/jobs/metrics with BullMQ getJobCounts() per queue",
    ),
}
