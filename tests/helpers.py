"""One way for every test module to build a kind's config, run it and read it.

    config = probe_config("redis", url=server.url(), maxmemory_max="2GB")
    result = await run_once(config, shared)
    assert verdicts(result)["maxmemory_set"]
    assert sample(result, "redis_maxmemory_bytes") == 64 * 1024**2

Probes always run through the real runner (`run_probe`), so deadlines,
reasons and overrides are the daemon's own. Waiting for something to happen
is `await eventually(condition)`, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from exporter.config import ConfigError, parse_config
from exporter.kinds import config_adapter
from exporter.probes.base import BaseProbeConfig, ProbeResult
from exporter.probes.context import ProbeContext, SharedResources
from exporter.runner import run_probe

T = TypeVar("T")

DEFAULTS = {"interval": 10, "timeout": 2}


def probe_config(kind: str, name: str = "probe", **fields: Any) -> Any:
    """A validated config of *kind*; interval 10 s and timeout 2 s unless
    given. Typed Any so a test reads its kind's fields without casts."""
    raw = {"kind": kind, "name": name, **DEFAULTS, **fields}
    config = config_adapter().validate_python(raw)
    assert config.kind == kind
    return config


async def run_once(
    config: BaseProbeConfig,
    shared: SharedResources | None = None,
    ctx: ProbeContext | None = None,
) -> ProbeResult:
    """One run of *config* through the runner. Pass the same *ctx* to keep
    state between runs (closing it is then yours), the same *shared* to
    share clients; a context made here is closed after the run, so no
    connection outlives it."""
    if ctx is not None:
        return await run_probe(config, ctx)
    own = ProbeContext(config.name, shared or SharedResources())
    try:
        return await run_probe(config, own)
    finally:
        await own.aclose()


def verdicts(result: ProbeResult) -> dict[str, bool]:
    """Check name -> passed."""
    return {check.name: check.passed for check in result.checks}


def failing(result: ProbeResult) -> set[str]:
    """The names of the checks that failed."""
    return {check.name for check in result.checks if not check.passed}


def detail(result: ProbeResult, name: str) -> str:
    """The detail text of check *name* (KeyError-like failure if absent)."""
    details = [check.detail for check in result.checks if check.name == name]
    assert details, f"no check {name!r} in {[c.name for c in result.checks]}"
    return details[0]


def sample(result: ProbeResult, name: str, **labels: str) -> float | None:
    """The value of the sample *name* with exactly *labels*, or None."""
    wanted = sorted(labels.items())
    values = [
        s.value for s in result.samples if s.name == name and sorted(s.labels) == wanted
    ]
    assert len(values) <= 1, f"{name}{labels} appears {len(values)} times"
    return values[0] if values else None


def samples_of(
    result: ProbeResult, name: str
) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample *name*, keyed by its sorted labels."""
    return {tuple(sorted(s.labels)): s.value for s in result.samples if s.name == name}


def config_problems(yaml_text: str) -> str:
    """The problems (one per line) of an invalid config file; the snippet is
    dedented, and may be a whole file or just the `probes:` list items."""
    text = textwrap.dedent(yaml_text).strip("\n")
    if not text.lstrip().startswith(
        ("probes:", "scoring:", "scheduler:", "defaults:", "systems:")
    ):
        text = "probes:\n" + textwrap.indent(text, "  ")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.yml")
    return "\n".join(caught.value.problems)


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = 10.0,
    every: float = 0.02,
) -> None:
    """Wait until *condition* holds (it may be async); fail after *timeout*."""
    ends = time.monotonic() + timeout
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > ends:
            pytest.fail(f"condition not met within {timeout:g}s")
        await asyncio.sleep(every)


async def wait_for_value(
    read: Callable[[], Awaitable[T]],
    predicate: Callable[[T], bool],
    timeout: float = 10.0,
    every: float = 0.05,
) -> T:
    """Poll *read* until its value satisfies *predicate*; return the value."""
    ends = time.monotonic() + timeout
    while True:
        value = await read()
        if predicate(value):
            return value
        if time.monotonic() > ends:
            pytest.fail(f"last value {value!r} never satisfied the condition")
        await asyncio.sleep(every)
