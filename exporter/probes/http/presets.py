"""Presets of the http kind: the health endpoints of well-known services.

`preset: grafana` with `url: http://grafana:3000` becomes a probe of
`http://grafana:3000/api/health` with the condition `$.database == "ok"`,
category monitoring, and no browser-facing header checks (internal services
are not read by browsers, so those checks would only add noise). A field
written in the probe's config always wins over the preset's value.
"""

from __future__ import annotations

from typing import Any

from exporter.probes.shared.presets import Preset


def _internal(path: str, **fields: Any) -> dict[str, Any]:
    return {"path": path, "security_headers": False, "cors_check": False, **fields}


PRESETS: dict[str, Preset] = {
    "etcd": Preset(
        _internal(
            "/health",
            conditions=[{"name": "healthy", "condition": '$.health == "true"'}],
        ),
        note='`{"health":"true","reason":""}`, 503 when unhealthy',
    ),
    "qdrant": Preset(
        _internal("/readyz"),
        note="200 once every shard is ready (kubernetes-style readiness)",
    ),
    "minio": Preset(
        _internal("/minio/health/live"),
        note="200 with an empty body while the server is up",
    ),
    "prometheus": Preset(
        _internal("/-/ready", category="monitoring"),
        note="200 once the server is ready to serve traffic, 503 before",
    ),
    "grafana": Preset(
        _internal(
            "/api/health",
            conditions=[{"name": "database", "condition": '$.database == "ok"'}],
            category="monitoring",
        ),
        note='`{"database":"ok","version":...}`, 503 when the database fails',
    ),
    "traefik": Preset(
        _internal("/ping", body_regex=r"^OK\s*$"),
        note="`OK` on the entry point that serves ping (8080 by default)",
    ),
    "jaeger": Preset(
        _internal(
            "/status",
            conditions=[{"name": "status", "condition": '$.status == "StatusOK"'}],
            category="monitoring",
        ),
        note="Jaeger v2 healthcheckv2 extension on port 13133",
    ),
}
