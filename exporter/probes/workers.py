"""Probe for worker-thread and job-queue status APIs (JSON over HTTP).

Fetches one or more JSON endpoints under a base URL, picks items (workers,
queues) with JSON paths, turns their fields into numbers (string states via
a `map`, booleans as 1/0) and judges them: every worker alive, memory under
the limit, queue depth under the limit, errors and restarts not rising
faster than their budget. Presets for the MCP Threading System and a BullMQ
jobs endpoint live in `workers_presets.py`.

readiness_workers_value{probe="mcp",field="state",item="w3"} 0
readiness_workers_alive{probe="mcp"} 3
readiness_workers_reported{probe="mcp"} 4
readiness_workers_memory_bytes{probe="mcp",item="w4"} 513802240
readiness_workers_queue_depth{probe="mcp"} 7
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import aiohttp
from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from exporter.jsonpath import JsonPath, compile_path, parse_condition
from exporter.probes.base import (
    AuthError,
    BaseProbeConfig,
    ByteSize,
    Category,
    Checks,
    CheckSpec,
    Duration,
    MetricSpec,
    Model,
    ProbeError,
    ProbeResult,
    ProtocolError,
    Reason,
    Sample,
    Severity,
    first_line,
)
from exporter.probes.context import ProbeContext
from exporter.probes.httpclient import (
    SESSION_KEY,
    bearer_token,
    check_headers,
    http_url,
    new_session,
    read_capped,
    remaining_budget,
    request_budget,
    ssl_setting,
)
from exporter.probes.workers_presets import apply_preset
from exporter.redact import redact

METRICS = (
    MetricSpec(
        "workers_value",
        "A mapped field of one item (worker, queue), last run; string states"
        " are mapped to numbers by the probe's config.",
        labels=("field", "item"),
    ),
    MetricSpec("workers_alive", "Workers whose alive field is above zero."),
    MetricSpec("workers_reported", "Workers the status API reported."),
    MetricSpec(
        "workers_memory_bytes", "Memory a worker reports using.", labels=("item",)
    ),
    MetricSpec(
        "workers_memory_limit_bytes",
        "The configured memory_limit, to draw next to workers_memory_bytes.",
    ),
    MetricSpec("workers_queue_depth", "Messages or jobs waiting, all items summed."),
    MetricSpec(
        "workers_errors_total",
        "Errors the API reports, all items summed (as read, may reset).",
        type="counter",
    ),
    MetricSpec(
        "workers_restarts_total",
        "Worker restarts the API reports, all items summed (as read, may reset).",
        type="counter",
    ),
)

BUILTIN_CHECKS = (
    "workers_alive",
    "worker_memory",
    "queue_depth",
    "errors_budget",
    "restarts_budget",
)
LABEL_VALUE_MAX = 100

# --- config -------------------------------------------------------------------

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


class ConditionSpec(Model):
    """A JSON condition on one endpoint's document, exported as a check."""

    name: Name
    condition: str
    endpoint: Name | None = None

    @field_validator("condition")
    @classmethod
    def _condition_parses(cls, text: str) -> str:
        parse_condition(text)
        return text


class WorkersConfig(BaseProbeConfig):
    """Where the status API is, how to read it, and what to judge."""

    kind: Literal["workers"] = "workers"
    preset: str | None = None
    url: str = Field(min_length=1)
    endpoints: dict[Name, str] = Field(min_length=1)
    mappings: dict[Name, MappingSpec] = Field(default_factory=dict)
    conditions: list[ConditionSpec] = Field(default_factory=list)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    ca_file: Path | None = None
    insecure_skip_verify: bool = False
    max_body_bytes: int = Field(default=1_048_576, ge=1, le=67_108_864)
    alive_field: Name | None = None
    memory_field: Name | None = None
    queue_depth_field: Name | None = None
    errors_field: Name | None = None
    restarts_field: Name | None = None
    memory_limit: ByteSize | None = None
    queue_depth_max: float | None = Field(default=None, ge=0)
    errors_budget: float | None = Field(default=None, ge=0)
    restarts_budget: float | None = Field(default=None, ge=0)
    budget_window: Duration = 0.0

    @model_validator(mode="before")
    @classmethod
    def _merge_preset(cls, data: Any) -> Any:
        return apply_preset(data) if isinstance(data, dict) else data

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return http_url(
            url,
            credentials_field="bearer_token (or an Authorization header in headers)",
        )

    @field_validator("headers")
    @classmethod
    def _header_syntax(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return check_headers(value)

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
    def _references_resolve(self) -> WorkersConfig:
        self._check_endpoint_references()
        self._check_value_names()
        self._check_roles()
        self._check_conditions()
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ValueError("set bearer_token or bearer_token_file, not both")
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
            "memory_field": (self.memory_field, "memory_limit"),
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
        seen: set[str] = set()
        for condition in self.conditions:
            if condition.name in BUILTIN_CHECKS or condition.name in seen:
                raise ValueError(
                    f"condition name {condition.name!r} is already a check name;"
                    " pick another"
                )
            seen.add(condition.name)
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

    def condition_endpoint(self, condition: ConditionSpec) -> str:
        """The endpoint a condition reads (the only one when not named)."""
        return condition.endpoint or next(iter(self.endpoints))


# --- plan -----------------------------------------------------------------------


def plan(config: WorkersConfig) -> list[CheckSpec]:
    """The built-in checks whose field and threshold are set, then conditions."""
    specs = []
    if config.alive_field:
        specs.append(
            CheckSpec(
                "workers_alive",
                Category.RELIABILITY,
                Severity.CRITICAL,
                "Every worker reports an alive state.",
            )
        )
    optional = (
        ("worker_memory", config.memory_limit, Category.PERFORMANCE, "memory"),
        ("queue_depth", config.queue_depth_max, Category.PERFORMANCE, "queue depth"),
        ("errors_budget", config.errors_budget, Category.PERFORMANCE, "errors"),
        ("restarts_budget", config.restarts_budget, Category.RELIABILITY, "restarts"),
    )
    for name, threshold, category, what in optional:
        if threshold is not None:
            specs.append(
                CheckSpec(
                    name, category, Severity.WARNING, f"Worker {what} within limits."
                )
            )
    specs.extend(
        CheckSpec(
            c.name,
            Category.RELIABILITY,
            Severity.CRITICAL,
            f"JSON condition: {c.condition}",
        )
        for c in config.conditions
    )
    return specs


# --- fetching -------------------------------------------------------------------


async def _request_headers(config: WorkersConfig) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    headers.update({k: v.get_secret_value() for k, v in config.headers.items()})
    token = await bearer_token(config.bearer_token, config.bearer_token_file)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


async def _fetch(
    session: aiohttp.ClientSession,
    config: WorkersConfig,
    endpoint: str,
    headers: dict[str, str],
    deadline: float,
) -> bytes:
    url = config.url.rstrip("/") + config.endpoints[endpoint]
    where = f"endpoint {endpoint} ({redact(url)})"
    tls = ssl_setting(
        ca_file=config.ca_file, insecure_skip_verify=config.insecure_skip_verify
    )
    try:
        async with session.get(
            url,
            headers=headers,
            ssl=tls,
            # A redirect would carry the configured headers (API keys) to
            # wherever it points; the status API's URL is configured, so
            # a 3xx is a mistake to fix in `url`, not a hop to take.
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=remaining_budget(deadline)),
        ) as response:
            if 300 <= response.status < 400:
                raise ProtocolError(
                    f"{where}: HTTP {response.status} redirect; set url to"
                    " where the status API answers (redirects are not followed)"
                )
            if response.status in (401, 403):
                raise AuthError(f"{where}: HTTP {response.status}")
            if not 200 <= response.status < 300:
                raise ProtocolError(f"{where}: HTTP {response.status}")
            body, cut = await read_capped(response, config.max_body_bytes)
    except TimeoutError:
        budget = request_budget(config.timeout)
        raise ProbeError(
            f"{where}: no answer within {budget:g}s", reason=Reason.TIMEOUT
        ) from None
    except aiohttp.ClientSSLError as error:
        raise ProbeError(f"{where}: {first_line(error)}", reason=Reason.TLS) from None
    except aiohttp.ClientConnectionError as error:
        if isinstance(error, OSError):
            raise
        raise ConnectionError(f"{where}: {first_line(error)}") from None
    except aiohttp.ClientError as error:
        raise ProtocolError(f"{where}: {first_line(error)}") from None
    if cut:
        limit = config.max_body_bytes
        raise ProtocolError(
            f"{where}: reply is larger than max_body_bytes ({limit} bytes)"
        )
    return body


# Parsing more than this on the event loop would stall every other probe.
_PARSE_IN_THREAD_BYTES = 1_048_576


async def _parse_json(body: bytes, endpoint: str) -> Any:
    if len(body) > _PARSE_IN_THREAD_BYTES:
        return await asyncio.to_thread(_decode_json, body, endpoint)
    return _decode_json(body, endpoint)


def _decode_json(body: bytes, endpoint: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(
            f"endpoint {endpoint}: reply is not JSON ({first_line(error, 80)})"
        ) from None
    except RecursionError:
        raise ProtocolError(f"endpoint {endpoint}: JSON nested too deep") from None


# --- mapping --------------------------------------------------------------------


@dataclass(slots=True)
class Item:
    """One worker or queue: its label, numbers, and why some are missing."""

    label: str
    values: dict[str, float] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def _first_match(paths: Sequence[JsonPath], document: Any) -> list[Any]:
    for path in paths:
        found = path.find(document)
        if found:
            return found
    return []


def _compiled(paths: Iterable[str]) -> list[JsonPath]:
    return [compile_path(text) for text in paths]


def to_number(raw: Any, spec: ValueSpec) -> tuple[float | None, str]:
    """*raw* as a number, or None and why not ("" when simply absent)."""
    if raw is None:
        return None, ""
    if isinstance(raw, bool):
        return (1.0 if raw else 0.0), ""
    if isinstance(raw, int | float):
        number = float(raw) * spec.scale
        return (number, "") if math.isfinite(number) else (None, "not finite")
    if isinstance(raw, str):
        return _string_to_number(raw, spec)
    return None, f"is a JSON {type(raw).__name__}, not a value"


def _string_to_number(raw: str, spec: ValueSpec) -> tuple[float | None, str]:
    if spec.map is not None:
        if raw in spec.map:
            return spec.map[raw], ""
        folded = {key.casefold(): value for key, value in spec.map.items()}
        if raw.casefold() in folded:
            return folded[raw.casefold()], ""
    try:
        number = float(raw) * spec.scale
    except ValueError:
        if spec.map_default is not None:
            return spec.map_default, ""
        return None, f"{raw[:30]!r} is not in map"
    return (number, "") if math.isfinite(number) else (None, "not finite")


def _item_label(
    raw: Any, label_paths: list[JsonPath], index: int, count: int, mapping: str
) -> str:
    for value in _first_match(label_paths, raw)[:1]:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            label = str(value)[:LABEL_VALUE_MAX]
            if label:
                return label
    # Without an identifier: the mapping's name for a single item, else the
    # position (bounded by max_items, never free text).
    return mapping if count == 1 else str(index)


def extract_items(name: str, mapping: MappingSpec, document: Any) -> list[Item]:
    """The items of *mapping* in *document*, each with its values."""
    raws = (
        _first_match(_compiled(mapping.items), document)
        if mapping.items
        else [document]
    )
    label_paths = _compiled(mapping.item or [])
    value_paths = {n: _compiled(spec.path) for n, spec in mapping.values.items()}
    items: list[Item] = []
    labels: set[str] = set()
    for index, raw in enumerate(raws):
        label = _item_label(raw, label_paths, index, len(raws), name)
        if label in labels:
            label = f"{label}#{index}"
        labels.add(label)
        item = Item(label)
        for value_name, spec in mapping.values.items():
            found = _first_match(value_paths[value_name], raw)
            number, problem = to_number(found[0], spec) if found else (None, "")
            if number is not None:
                item.values[value_name] = number
            elif problem:
                item.problems[value_name] = problem
        items.append(item)
    return items


# --- judging --------------------------------------------------------------------


class BudgetState:
    """Previous error and restart totals of this probe, for the budgets."""

    def __init__(self) -> None:
        self.history: dict[str, deque[tuple[float, float]]] = {}

    def rise(self, key: str, total: float, now: float, window: float) -> float | None:
        """How much *total* rose since the window's start (or the last run);
        None on the first run. A drop means the app restarted its counters."""
        history = self.history.setdefault(key, deque(maxlen=10_000))
        if history and total < history[-1][1]:
            history.clear()
        baseline: tuple[float, float] | None = history[-1] if history else None
        if window > 0:
            while len(history) > 1 and history[1][0] <= now - window:
                history.popleft()
            baseline = history[0] if history else None
        else:
            history.clear()
        history.append((now, total))
        return None if baseline is None else total - baseline[1]


def _owner_items(
    config: WorkersConfig, field_name: str, found: dict[str, list[Item]]
) -> list[Item]:
    """The items of the mapping that defines *field_name*."""
    for name, mapping in config.mappings.items():
        if field_name in mapping.values:
            return found.get(name, [])
    return []


def _shown(items: Iterable[str], limit: int = 4) -> str:
    listed = list(items)
    more = f" and {len(listed) - limit} more" if len(listed) > limit else ""
    return ", ".join(listed[:limit]) + more


def _why_not_alive(item: Item, alive_field: str) -> str:
    if alive_field in item.values:
        return f"{alive_field} {item.values[alive_field]:g}"
    return item.problems.get(alive_field, f"no {alive_field}")


def judge_alive(checks: Checks, items: list[Item], alive_field: str) -> int:
    """Record `workers_alive`; return how many items are alive."""
    alive = [i for i in items if i.values.get(alive_field, 0.0) > 0]
    dead = [
        f"{i.label} ({_why_not_alive(i, alive_field)})"
        for i in items
        if i.values.get(alive_field, 0.0) <= 0
    ]
    if not items:
        checks.record("workers_alive", False, "no workers found in the reply")
    else:
        detail = f"{len(alive)} of {len(items)} alive"
        checks.record(
            "workers_alive",
            not dead,
            detail + (f"; not alive: {_shown(dead)}" if dead else ""),
        )
    return len(alive)


def _mib(value: float) -> str:
    return f"{value / 1024**2:.1f} MiB"


def judge_memory(
    checks: Checks, items: list[Item], field_name: str, limit: float
) -> None:
    """Record `worker_memory`: every worker's memory below *limit*."""
    measured = [i for i in items if field_name in i.values]
    if not measured:
        checks.record("worker_memory", False, f"no {field_name} figure in the reply")
        return
    over = [i for i in measured if i.values[field_name] >= limit]
    top = max(measured, key=lambda i: i.values[field_name])
    if over:
        shown = _shown(f"{i.label} {_mib(i.values[field_name])}" for i in over)
        checks.record("worker_memory", False, f"at or over {_mib(limit)}: {shown}")
    else:
        checks.record(
            "worker_memory",
            True,
            f"highest {_mib(top.values[field_name])} ({top.label}) of {_mib(limit)}",
        )


def judge_queue(
    checks: Checks, items: list[Item], field_name: str, limit: float
) -> None:
    """Record `queue_depth`: every item's depth at most *limit*."""
    measured = [i for i in items if field_name in i.values]
    total = sum(i.values[field_name] for i in measured)
    if not measured:
        checks.record("queue_depth", False, f"no {field_name} figure in the reply")
        return
    over = [i for i in measured if i.values[field_name] > limit]
    shown = _shown(f"{i.label} {i.values[field_name]:g}" for i in over)
    checks.record(
        "queue_depth",
        not over,
        f"over {limit:g}: {shown}" if over else f"total {total:g}, limit {limit:g}",
    )


def judge_budget(
    checks: Checks,
    check: str,
    total: float | None,
    rise: float | None,
    budget: float,
) -> None:
    """Record a budget check: the total rose by at most *budget*."""
    if total is None:
        checks.record(check, False, "no figure in the reply")
    elif rise is None:
        checks.record(check, True, f"first run, baseline {total:g}")
    else:
        checks.record(
            check,
            rise <= budget,
            f"rose by {rise:g} (budget {budget:g}), now {total:g}",
        )


# --- the probe ------------------------------------------------------------------


async def _documents(config: WorkersConfig, ctx: ProbeContext) -> dict[str, Any]:
    session = ctx.shared(SESSION_KEY, new_session)
    headers = await _request_headers(config)
    deadline = time.perf_counter() + request_budget(config.timeout)
    documents = {}
    # One after another: a status API has few endpoints, and the first
    # failure then names its endpoint without racing the others.
    for endpoint in config.endpoints:
        body = await _fetch(session, config, endpoint, headers, deadline)
        documents[endpoint] = await _parse_json(body, endpoint)
    return documents


def _value_samples(config: WorkersConfig, found: dict[str, list[Item]]) -> list[Sample]:
    samples: list[Sample] = []
    for name, items in found.items():
        for item in items[: config.mappings[name].max_items]:
            samples.extend(
                Sample.of("workers_value", value, field=value_name, item=item.label)
                for value_name, value in item.values.items()
            )
            if config.memory_field in item.values:
                samples.append(
                    Sample.of(
                        "workers_memory_bytes",
                        item.values[config.memory_field],
                        item=item.label,
                    )
                )
    return samples


def _summed(items: list[Item], field_name: str) -> float | None:
    values = [i.values[field_name] for i in items if field_name in i.values]
    return sum(values) if values else None


def _judge_budgets(
    config: WorkersConfig,
    ctx: ProbeContext,
    checks: Checks,
    found: dict[str, list[Item]],
) -> list[Sample]:
    state = ctx.state(BudgetState)
    now = time.monotonic()
    samples: list[Sample] = []
    budgets = (
        ("errors_budget", config.errors_field, config.errors_budget, "errors"),
        ("restarts_budget", config.restarts_field, config.restarts_budget, "restarts"),
    )
    for check, field_name, budget, metric in budgets:
        if field_name is None:
            continue
        total = _summed(_owner_items(config, field_name, found), field_name)
        if total is not None:
            samples.append(Sample.of(f"workers_{metric}_total", total))
        if budget is not None:
            rise = (
                None
                if total is None
                else state.rise(check, total, now, config.budget_window)
            )
            judge_budget(checks, check, total, rise, budget)
    return samples


async def probe(config: WorkersConfig, ctx: ProbeContext) -> ProbeResult:
    """Fetch every endpoint, map the items, judge them."""
    checks = Checks(plan(config))
    documents = await _documents(config, ctx)
    found = {
        name: extract_items(name, mapping, documents[mapping.endpoint])
        for name, mapping in config.mappings.items()
    }
    samples = _value_samples(config, found)
    if config.alive_field:
        workers = _owner_items(config, config.alive_field, found)
        alive = judge_alive(checks, workers, config.alive_field)
        samples += [
            Sample.of("workers_alive", alive),
            Sample.of("workers_reported", len(workers)),
        ]
    if config.memory_limit is not None:
        samples.append(Sample.of("workers_memory_limit_bytes", config.memory_limit))
    if config.memory_field and config.memory_limit is not None:
        items = _owner_items(config, config.memory_field, found)
        judge_memory(checks, items, config.memory_field, config.memory_limit)
    if config.queue_depth_field:
        items = _owner_items(config, config.queue_depth_field, found)
        depth = _summed(items, config.queue_depth_field)
        if config.queue_depth_max is not None:
            judge_queue(checks, items, config.queue_depth_field, config.queue_depth_max)
        if depth is not None:
            samples.append(Sample.of("workers_queue_depth", depth))
    samples += _judge_budgets(config, ctx, checks, found)
    for condition in config.conditions:
        document = documents[config.condition_endpoint(condition)]
        passed, why = parse_condition(condition.condition).evaluate(document)
        checks.record(condition.name, passed, why or "holds")
    return ProbeResult(checks=checks.finish(), samples=tuple(samples))
