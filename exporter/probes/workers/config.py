"""The workers kind's config: where the status API is, how its JSON becomes
items (workers, queues) with numbers, and what to judge."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from exporter.probes.base import ByteSize, Duration, Model
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
    memory_max: ByteSize | None = None
    queue_depth_max: float | None = Field(default=None, ge=0)
    errors_budget: float | None = Field(default=None, ge=0)
    restarts_budget: float | None = Field(default=None, ge=0)
    budget_window: Duration = 0.0

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return with_preset(PRESETS, data)

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
            "alive_field": (self.alive_field, None),
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
