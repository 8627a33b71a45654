"""The workers kind: worker-thread and job-queue status APIs (JSON over HTTP).

Fetches one or more JSON endpoints under a base URL, picks items (workers,
queues) with JSON paths, turns their fields into numbers (string states via
a `map`, booleans as 1/0) and judges them: every worker alive, memory under
the limit, queue depth under the limit, errors and restarts not rising
faster than their budget. The config is in `config.py`, the mapping in
`mapping.py`, the verdicts in `verdicts.py`, presets for the MCP Threading
System and a BullMQ jobs endpoint in `presets.py`; the HTTP client is the
one the http kind uses.

readiness_workers_value{probe="mcp",field="state",item="w3"} 0
readiness_workers_alive{probe="mcp"} 3
readiness_workers_reported{probe="mcp"} 4
readiness_workers_memory_bytes{probe="mcp",item="w4"} 513802240
readiness_workers_queue_depth{probe="mcp"} 7
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import aiohttp

from exporter.probes.base import (
    AuthError,
    Category,
    CheckDef,
    Checks,
    MetricSpec,
    ProbeError,
    ProbeResult,
    ProtocolError,
    Sample,
    Severity,
    first_line,
)
from exporter.probes.context import ProbeContext
from exporter.probes.shared.conditions import CONDITION_CHECK, judge_reply
from exporter.probes.shared.httpclient import (
    SESSION_KEY,
    describe,
    fetch,
    new_session,
    request,
    translate_error,
)
from exporter.probes.workers.config import WorkersConfig
from exporter.probes.workers.mapping import Item, extract_items, owner_items
from exporter.probes.workers.verdicts import (
    BudgetState,
    GrowthState,
    judge_alive,
    judge_alive_min,
    judge_budget,
    judge_growth,
    judge_memory,
    judge_queue,
)

__all__ = ["CHECKS", "METRICS", "WorkersConfig", "probe", "translate_error"]

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
        "workers_memory_max_bytes",
        "The configured memory_max (when set), to draw next to workers_memory_bytes.",
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

CHECKS = (
    CheckDef(
        "workers_alive",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "At least one worker is reported, and every one's `alive_field` is above 0 "
        "(with `alive_field`).",
        when=lambda config: config.alive_field is not None,
    ),
    CheckDef(
        "workers_alive_count",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The live workers, the `alive_field` summed over the items (a worker's "
        "state counts 1, a queue its connected workers), are at least "
        "`workers_alive_min` (with `workers_alive_min`).",
        threshold="workers_alive_min",
        when=lambda config: config.workers_alive_min is not None,
    ),
    CheckDef(
        "worker_memory",
        Category.PERFORMANCE,
        Severity.WARNING,
        "Every worker's `memory_field` is below `memory_max`, a size or the "
        "worker's own limit from the reply (with `memory_max`).",
        threshold="memory_max",
        when=lambda config: config.memory_max is not None,
    ),
    CheckDef(
        "queue_depth",
        Category.PERFORMANCE,
        Severity.WARNING,
        "Every item's `queue_depth_field` is at most `queue_depth_max`, a number "
        "or the item's own limit from the reply (with `queue_depth_max`).",
        threshold="queue_depth_max",
        when=lambda config: config.queue_depth_max is not None,
    ),
    CheckDef(
        "errors_budget",
        Category.PERFORMANCE,
        Severity.WARNING,
        "The summed `errors_field` rose by at most `errors_budget` since the last "
        "run, or within `budget_window` (with `errors_budget`).",
        threshold="errors_budget",
        when=lambda config: config.errors_budget is not None,
    ),
    CheckDef(
        "restarts_budget",
        Category.RELIABILITY,
        Severity.WARNING,
        "The summed `restarts_field` rose by at most `restarts_budget` since the last "
        "run, or within `budget_window` (with `restarts_budget`).",
        threshold="restarts_budget",
        when=lambda config: config.restarts_budget is not None,
    ),
    CheckDef(
        "growth_{item}",
        Category.PERFORMANCE,
        Severity.WARNING,
        "No item's mapped value named in `growth` rose on each of its last "
        "`growth.<value>` runs (a backlog growing, memory creeping up).",
        threshold="growth.<value>",
        items=lambda config: list(config.growth),
    ),
    # Conditions were checks named after themselves before 0.2.0.
    dataclasses.replace(CONDITION_CHECK, formerly=("{item}",)),
)

# Parsing more than this on the event loop would stall every other probe.
_PARSE_IN_THREAD_BYTES = 1_048_576


async def _fetch(
    session: aiohttp.ClientSession,
    config: WorkersConfig,
    endpoint: str,
    ctx: ProbeContext,
) -> bytes:
    url = config.url.rstrip("/") + config.endpoints[endpoint]
    # Messages reach people through the runner, which redacts them.
    where = f"endpoint {endpoint} ({url})"
    first = await request(config, url, plain={"Accept": "application/json"})
    try:
        reply = await fetch(session, config, first, ctx.deadline)
    except (OSError, aiohttp.ClientError) as error:  # TimeoutError is an OSError
        # The runner classifies the cause (timeout, connect, tls, protocol).
        raise ProbeError(f"{where}: {describe(error, ctx.deadline)}") from error
    if 300 <= reply.status < 400:
        why = (
            "redirect not followed (follow_redirects: false)"
            if not config.follow_redirects and "Location" in reply.headers
            else "and no redirect to follow; set url to where the API answers"
        )
        raise ProtocolError(f"{where}: HTTP {reply.status} {why}")
    if reply.status in (401, 403):
        raise AuthError(f"{where}: HTTP {reply.status}")
    if not 200 <= reply.status < 300:
        raise ProtocolError(f"{where}: HTTP {reply.status}")
    if reply.cut:
        raise ProtocolError(
            f"{where}: reply is larger than max_body_bytes"
            f" ({config.max_body_bytes} bytes)"
        )
    return reply.body


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


async def _documents(
    config: WorkersConfig, ctx: ProbeContext
) -> tuple[dict[str, Any], dict[str, int]]:
    """Each endpoint's document, and its size in bytes."""
    session = ctx.shared(SESSION_KEY, new_session)
    documents = {}
    sizes = {}
    # One after another: a status API has few endpoints, and the first
    # failure then names its endpoint without racing the others.
    for endpoint in config.endpoints:
        body = await _fetch(session, config, endpoint, ctx)
        documents[endpoint] = await _parse_json(body, endpoint)
        sizes[endpoint] = len(body)
    return documents, sizes


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
        total = _summed(owner_items(config, field_name, found), field_name)
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


def _judge_workers(
    config: WorkersConfig, checks: Checks, found: dict[str, list[Item]]
) -> list[Sample]:
    samples: list[Sample] = []
    if config.alive_field:
        workers = owner_items(config, config.alive_field, found)
        alive = judge_alive(checks, workers, config.alive_field)
        if config.workers_alive_min is not None:
            judge_alive_min(
                checks, workers, config.alive_field, config.workers_alive_min
            )
        samples += [
            Sample.of("workers_alive", alive),
            Sample.of("workers_reported", len(workers)),
        ]
    fixed_memory_max = config.fixed_limit(config.memory_max)
    if fixed_memory_max is not None:
        samples.append(Sample.of("workers_memory_max_bytes", fixed_memory_max))
    if config.memory_field and config.memory_max is not None:
        items = owner_items(config, config.memory_field, found)
        judge_memory(checks, items, config.memory_field, config.memory_max)
    if config.queue_depth_field:
        items = owner_items(config, config.queue_depth_field, found)
        depth = _summed(items, config.queue_depth_field)
        if config.queue_depth_max is not None:
            judge_queue(checks, items, config.queue_depth_field, config.queue_depth_max)
        if depth is not None:
            samples.append(Sample.of("workers_queue_depth", depth))
    return samples


async def probe(config: WorkersConfig, ctx: ProbeContext) -> ProbeResult:
    """Fetch every endpoint, map the items, judge them."""
    checks = Checks(CHECKS, config)
    documents, sizes = await _documents(config, ctx)
    found = {
        name: extract_items(name, mapping, documents[mapping.endpoint])
        for name, mapping in config.mappings.items()
    }
    samples = _value_samples(config, found)
    samples += _judge_workers(config, checks, found)
    samples += _judge_budgets(config, ctx, checks, found)
    growth = ctx.state(GrowthState)
    for value_name, runs in config.growth.items():
        items = owner_items(config, value_name, found)
        memory = value_name == config.memory_field
        judge_growth(checks, growth, value_name, runs, items, memory)
    for endpoint in config.endpoints:
        reading = [
            c for c in config.conditions if config.condition_endpoint(c) == endpoint
        ]
        if reading:
            verdicts = await judge_reply(reading, documents[endpoint], sizes[endpoint])
            for name, passed, why in verdicts:
                checks.record(name, passed, why)
    return ProbeResult(checks=checks.finish(), samples=tuple(samples))
