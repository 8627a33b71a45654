"""Presets: ready-made field values for well-known targets, one mechanism
for every kind that has them.

A preset fills what the user left out; a field written in the probe's
config always wins, and mappings merge key by key (a user's `endpoints`
entry adds to the preset's). Lists are replaced whole.

    with_preset(PRESETS, {"preset": "grafana", "url": "http://g:3000"})
    -> {"path": "/api/health", "conditions": [...], "url": "http://g:3000", ...}
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Preset:
    """Field values, and a note for the docs on the reply they expect."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """*base* with *override* laid over it; nested mappings merge key by key."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def with_preset(presets: Mapping[str, Preset], data: Any) -> Any:
    """*data* (a probe's raw config) laid over the preset it names, if any."""
    if not isinstance(data, Mapping) or data.get("preset") is None:
        return data
    name = data["preset"]
    if not isinstance(name, str) or name not in presets:
        # Raised before field validation, so the message names the field.
        raise ValueError(
            f"field 'preset': unknown preset {name!r}: use one of"
            f" {', '.join(sorted(presets))}"
        )
    return deep_merge(presets[name].fields, data)
