"""The workers kind's config: where the status API is, how its JSON becomes
items (workers, queues) with numbers, and what to judge.

A limit (`memory_max`, `queue_depth_max`) is a number, or the name of a
mapped value the API reports beside the figure (its own `maxSize`), or a
list of both tried in order per item: `[max_size, 1000]` is the item's own
`max_size` when the reply has one, else 1000.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from exporter.probes.base import Duration, Model, parse_size
from exporter.probes.shared.conditions import Conditions, NamedCondition
from exporter.probes.shared.httpclient import HttpClientConfig, http_url
from exporter.probes.shared.jsonpath import compile_path
from exporter.probes.shared.presets import with_preset
from exporter.probes.workers.presets import PRESETS

_NAME = r"^[a-z_][a-z0-9_]*$"
Name = Annotated[str, Field(pattern=_NAME, max_length=64)]


def _as_path_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _check_paths(paths: list[str]) -> list[str]:
    if not paths:
        raise ValueError("give at least one JSON path")
    for text in paths:
        compile_path(text)
    return paths


# One JSON path, or several tried in order (the first that matches wins), so
# one config reads more than one version or form of an API.
PathList = Annotated[
    list[str], BeforeValidator(_as_path_list), Field(min_length=1, max_length=8)
]


class ValueSpec(Model):
    """How one field of an item becomes a number."""

    path: PathList
    scale: float = 1.0
    map: dict[str, float] | None = None
    map_default: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _path_shorthand(cls, data: Any) -> Any:
        # `memory_bytes: memoryUsage.heapUsed` is short for {path: ...}.
        return {"path": data} if isinstance(data, str | list) else data

    @field_validator("path")
    @classmethod
    def _paths_compile(cls, paths: list[str]) -> list[str]:
        return _check_paths(paths)


class MappingSpec(Model):
    """Items picked from one endpoint's document, and their values."""

    endpoint: Name
    items: PathList | None = None
    item: PathList | None = None
    values: dict[Name, ValueSpec] = Field(min_length=1)
    max_items: int = Field(default=1000, ge=1, le=100_000)

    @field_validator("items", "item")
    @classmethod
    def _paths_compile(cls, paths: list[str] | None) -> list[str] | None:
        return None if paths is None else _check_paths(paths)


MEMORY_PLAUSIBLE_MIN = 1_048_576
"""A worker's memory limit below 1 MiB is a unit mistake (`512` meaning MB)."""

_NUMBER = re.compile(r"^\d+(\.\d+)?$")

Limit = tuple[float | str, ...]
"""Per item, the first that applies: a number, or a mapped value's name."""


def _limit(size: bool) -> Any:
    def parse(value: Any) -> Any:
        if value is None:
            return None
        candidates = value if isinstance(value, list | tuple) else [value]
        parsed: list[float | str] = []
        for candidate in candidates:
            if isinstance(candidate, str) and re.match(_NAME, candidate):
                parsed.append(candidate)
            elif size:
                parsed.append(float(parse_size(candidate)))
            elif isinstance(candidate, str) and _NUMBER.match(candidate.strip()):
                # A number from the environment (`${QUEUE_MAX:-100}`).
                parsed.append(float(candidate))
            elif isinstance(candidate, int | float) and not isinstance(candidate, bool):
                if candidate < 0:
                    raise ValueError(f"{candidate} is below 0")
                parsed.append(float(candidate))
            else:
                raise ValueError(
                    f"{candidate!r} is neither a number nor the name of a mapped value"
                )
        if not parsed:
            raise ValueError("give a limit, or null for none")
        return tuple(parsed)

    return BeforeValidator(parse)


MemoryLimit = Annotated[Limit, _limit(size=True)]
QueueLimit = Annotated[Limit, _limit(size=False)]


def _drop_nulls(data: Any) -> Any:
    """`null` under a mapping field removes that entry (a preset's value map,
    endpoint or growth check); at the top level it is the field's value."""
    if not isinstance(data, dict):
        return data
    cleaned = dict(data)
    for field in ("endpoints", "growth"):
        if isinstance(cleaned.get(field), dict):
            cleaned[field] = {k: v for k, v in cleaned[field].items() if v is not None}
    mappings = cleaned.get("mappings")
    if isinstance(mappings, dict):
        cleaned["mappings"] = {
            name: (
                {
                    **mapping,
                    "values": {
                        k: v for k, v in mapping["values"].items() if v is not None
                    },
                }
                if isinstance(mapping, dict) and isinstance(mapping.get("values"), dict)
                else mapping
            )
            for name, mapping in mappings.items()
            if mapping is not None
        }
    return cleaned


class WorkersConfig(HttpClientConfig):
    """Where the status API is, how to read it, and what to judge."""

    RENAMED: ClassVar[dict[str, str]] = {
        **HttpClientConfig.RENAMED,
        "memory_limit": "memory_max",
    }

    kind: Literal["workers"] = "workers"
    preset: str | None = None
    url: str = Field(min_length=1)
    endpoints: dict[Name, str] = Field(min_length=1)
    mappings: dict[Name, MappingSpec] = Field(default_factory=dict)
    conditions: Conditions = Field(default_factory=list)
    alive_field: Name | None = None
    memory_field: Name | None = None
    queue_depth_field: Name | None = None
    errors_field: Name | None = None
    restarts_field: Name | None = None
    memory_max: MemoryLimit | None = None
    queue_depth_max: QueueLimit | None = None
    workers_alive_min: int | None = Field(default=None, ge=1)
    errors_budget: float | None = Field(default=None, ge=0)
    restarts_budget: float | None = Field(default=None, ge=0)
    budget_window: Duration = 0.0
    growth: dict[Name, int] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return _drop_nulls(with_preset(PRESETS, data))

    @field_validator("growth")
    @classmethod
    def _growth_runs(cls, growth: dict[str, int]) -> dict[str, int]:
        for name, runs in growth.items():
            if not 1 <= runs <= 1000:
                raise ValueError(
                    f"growth of {name!r}: {runs} runs; give 1 to 1000 (how many"
                    " runs in a row the value may not grow)"
                )
        return growth

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return http_url(
            url,
            credentials_field="basic_auth or bearer_token (or an Authorization"
            " header in headers)",
        )

    @field_validator("endpoints")
    @classmethod
    def _endpoint_paths(cls, endpoints: dict[str, str]) -> dict[str, str]:
        for name, path in endpoints.items():
            if not path.startswith("/"):
                raise ValueError(
                    f"endpoint {name!r}: {path!r} must be a path under url,"
                    " starting with /, e.g. /api/threading/status"
                )
        return endpoints

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        self._check_endpoint_references()
        self._check_value_names()
        self._check_roles()
        self._check_limits()
        self._check_growth()
        self._check_conditions()
        return self

    def _check_endpoint_references(self) -> None:
        if not self.mappings and not self.conditions:
            raise ValueError(
                "nothing to read: add `mappings` (or `conditions`), or use a"
                " preset (mcp-threading, bullmq-jobs-endpoint)"
            )
        for name, mapping in self.mappings.items():
            if mapping.endpoint not in self.endpoints:
                raise ValueError(
                    f"mapping {name!r} reads endpoint {mapping.endpoint!r}, which"
                    f" is not in endpoints ({', '.join(self.endpoints)})"
                )

    def _check_value_names(self) -> None:
        seen: dict[str, str] = {}
        for name, mapping in self.mappings.items():
            for value_name in mapping.values:
                if value_name in seen:
                    raise ValueError(
                        f"value {value_name!r} is in mappings {seen[value_name]!r}"
                        f" and {name!r}; value names must be unique (they are"
                        " the `field` label)"
                    )
                seen[value_name] = name

    def _check_roles(self) -> None:
        names = {v for m in self.mappings.values() for v in m.values}
        roles = {
            "alive_field": (self.alive_field, "workers_alive_min"),
            "memory_field": (self.memory_field, "memory_max"),
            "queue_depth_field": (self.queue_depth_field, "queue_depth_max"),
            "errors_field": (self.errors_field, "errors_budget"),
            "restarts_field": (self.restarts_field, "restarts_budget"),
        }
        for role, (value_name, threshold) in roles.items():
            if value_name is not None and value_name not in names:
                raise ValueError(
                    f"{role} {value_name!r} is not a mapped value (mapped:"
                    f" {', '.join(sorted(names)) or 'none'})"
                )
            if threshold and getattr(self, threshold) is not None and not value_name:
                raise ValueError(
                    f"{threshold} needs {role}: name the mapped value it applies to"
                )

    def mapping_of(self, value_name: str) -> str | None:
        """The mapping that defines the mapped value *value_name*."""
        for name, mapping in self.mappings.items():
            if value_name in mapping.values:
                return name
        return None

    def _check_limits(self) -> None:
        limits = (
            ("memory_max", self.memory_max, self.memory_field),
            ("queue_depth_max", self.queue_depth_max, self.queue_depth_field),
        )
        for field, limit, value_name in limits:
            if limit is None or value_name is None:
                continue
            mapping = self.mapping_of(value_name)
            own = self.mappings[mapping].values if mapping else {}
            for candidate in limit:
                if isinstance(candidate, str) and candidate not in own:
                    raise ValueError(
                        f"{field} {candidate!r} is neither a number nor a value"
                        f" of mapping {mapping!r} (its values:"
                        f" {', '.join(own)}); map the API's limit there first"
                    )

    def _check_growth(self) -> None:
        names = {v for m in self.mappings.values() for v in m.values}
        for value_name in self.growth:
            if value_name not in names:
                raise ValueError(
                    f"growth: {value_name!r} is not a mapped value (mapped:"
                    f" {', '.join(sorted(names)) or 'none'})"
                )

    def warnings(self) -> list[str]:
        """What loads but is probably not meant: each names its field."""
        found = []
        for candidate in self.memory_max or ():
            if isinstance(candidate, float) and candidate < MEMORY_PLAUSIBLE_MIN:
                found.append(
                    f"field 'memory_max': {candidate:g} means {candidate:g} bytes,"
                    " less than any worker uses; write the unit (512MB, 2GB)"
                )
        return found

    def fixed_limit(self, limit: Limit | None) -> float | None:
        """The limit that is the same for every item, if it is one."""
        if limit and isinstance(limit[0], float):
            return limit[0]
        return None

    def _check_conditions(self) -> None:
        for condition in self.conditions:
            if condition.endpoint is None and len(self.endpoints) != 1:
                raise ValueError(
                    f"condition {condition.name!r}: say which endpoint it reads"
                    f" (one of {', '.join(self.endpoints)})"
                )
            if condition.endpoint is not None and (
                condition.endpoint not in self.endpoints
            ):
                raise ValueError(
                    f"condition {condition.name!r} reads endpoint"
                    f" {condition.endpoint!r}, which is not in endpoints"
                )

    def condition_endpoint(self, condition: NamedCondition) -> str:
        """The endpoint a condition reads (the only one when not named)."""
        return condition.endpoint or next(iter(self.endpoints))
