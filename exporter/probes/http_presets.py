"""Presets of the http probe: the health endpoint of well-known services.

`preset: grafana` with `url: http://grafana:3000` becomes a probe of
`http://grafana:3000/api/health` with the condition `$.database == "ok"`,
category monitoring, and no browser-facing header checks. A field written in
the probe's config always wins over the preset's value:

    preset grafana -> path /api/health, conditions [database: $.database == "ok"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PresetName = Literal[
    "etcd", "qdrant", "minio", "prometheus", "grafana", "traefik", "jaeger"
]


@dataclass(frozen=True, slots=True)
class Preset:
    """What a preset fills in; only fields the user left out are filled."""

    path: str
    conditions: tuple[dict[str, str], ...] = ()
    body_regex: str | None = None
    category: str | None = None
    note: str = ""
    # Internal services are not read by browsers, so the browser-facing
    # header checks would only add noise.
    defaults: dict[str, Any] = field(
        default_factory=lambda: {"security_headers": False, "cors_check": False}
    )


PRESETS: dict[str, Preset] = {
    "etcd": Preset(
        "/health",
        ({"name": "healthy", "condition": '$.health == "true"'},),
        note='`{"health":"true","reason":""}`, 503 when unhealthy',
    ),
    "qdrant": Preset(
        "/readyz",
        note="200 once every shard is ready (kubernetes-style readiness)",
    ),
    "minio": Preset(
        "/minio/health/live",
        note="200 with an empty body while the server is up",
    ),
    "prometheus": Preset(
        "/-/ready",
        category="monitoring",
        note="200 once the server is ready to serve traffic, 503 before",
    ),
    "grafana": Preset(
        "/api/health",
        ({"name": "database", "condition": '$.database == "ok"'},),
        category="monitoring",
        note='`{"database":"ok","version":...}`, 503 when the database fails',
    ),
    "traefik": Preset(
        "/ping",
        body_regex=r"^OK\s*$",
        note="`OK` on the entry point that serves ping (8080 by default)",
    ),
    "jaeger": Preset(
        "/status",
        ({"name": "status", "condition": '$.status == "StatusOK"'},),
        category="monitoring",
        note="Jaeger v2 healthcheckv2 extension on port 13133",
    ),
}


def apply_preset(data: Any) -> Any:
    """*data* (raw config) with the preset's values where fields are unset.

    An unknown preset name is left alone so that field validation reports it
    with the list of allowed names.
    """
    if not isinstance(data, dict):
        return data
    preset = PRESETS.get(str(data.get("preset")))
    if preset is None:
        return data
    filled: dict[str, Any] = {"path": preset.path, **preset.defaults}
    if preset.conditions:
        filled["conditions"] = [dict(c) for c in preset.conditions]
    if preset.body_regex is not None:
        filled["body_regex"] = preset.body_regex
    if preset.category is not None:
        filled["category"] = preset.category
    return {**filled, **data}
