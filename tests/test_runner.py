"""The runner: timeouts, reasons, overrides, and what a failure looks like."""

from __future__ import annotations

import asyncio
import time

import pytest

from exporter.kinds import PROBES
from exporter.probes.base import Category, Reason, Severity
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.tcp import TcpConfig
from exporter.runner import run_probe
from tests.conftest import StartServer, free_port
from tests.kinds import ScriptedConfig, scripted_kind


def ctx() -> ProbeContext:
    return ProbeContext("test", SharedResources())


async def test_healthy_tcp_target(tcp_server: StartServer) -> None:
    port = await tcp_server()
    result = await run_probe(TcpConfig(name="t", host="127.0.0.1", port=port), ctx())
    assert result.success and result.reason is None
    assert [(c.name, c.passed) for c in result.checks] == [("port_open", True)]
    assert result.samples[0].name == "tcp_connect_seconds"
    assert result.duration_seconds > 0 and result.finished_at > 0


async def test_refused_fails_every_planned_check() -> None:
    config = TcpConfig(
        name="t", host="127.0.0.1", port=free_port(), expect="^220", send="HELO"
    )
    result = await run_probe(config, ctx())
    assert not result.success
    assert result.reason is Reason.CONNECT
    assert [c.name for c in result.checks] == ["port_open", "expect_matched"]
    assert not any(c.passed for c in result.checks)
    assert result.checks[0].detail.startswith("not evaluated (connect: ")


async def test_a_hanging_target_times_out_within_the_timeout(
    tcp_server: StartServer,
) -> None:
    port = await tcp_server()
    config = TcpConfig(
        name="t", host="127.0.0.1", port=port, expect="^OK", timeout=0.3, interval=1
    )
    started = time.monotonic()
    result = await run_probe(config, ctx())
    assert result.reason is Reason.TIMEOUT
    assert result.error == "no answer within 0.3s"
    assert time.monotonic() - started < 1.0


async def test_expect_mismatch_is_a_failed_check(tcp_server: StartServer) -> None:
    async def banner(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"500 go away\r\n")
        await writer.drain()
        writer.close()

    port = await tcp_server(banner)
    config = TcpConfig(name="t", host="127.0.0.1", port=port, expect="^220")
    result = await run_probe(config, ctx())
    assert result.reason is Reason.CHECK
    assert result.error == "failed: expect_matched"
    assert result.checks[1].detail == "got '500 go away'"


@pytest.mark.parametrize(
    ("behaviour", "success", "reason"),
    [
        ("pass", True, None),
        ("fail_warning", True, None),
        ("fail_critical", False, Reason.CHECK),
        ("raise", False, Reason.CONNECT),
        ("protocol", False, Reason.PROTOCOL),
        ("crash", False, Reason.INTERNAL),
        ("reason", False, Reason.PROTOCOL),
    ],
)
async def test_outcomes_map_to_the_closed_set(
    monkeypatch: pytest.MonkeyPatch, behaviour: str, success: bool, reason: Reason
) -> None:
    with scripted_kind(monkeypatch):
        config = ScriptedConfig.model_validate({"name": "s", "behaviour": behaviour})
        result = await run_probe(config, ctx())
    assert (result.success, result.reason) == (success, reason)


async def test_a_probe_error_may_carry_samples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        result = await run_probe(ScriptedConfig(name="s", behaviour="protocol"), ctx())
    assert result.reason is Reason.PROTOCOL
    assert [(s.name, s.value) for s in result.samples] == [("scripted_value", 0.0)]


async def test_errors_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    with scripted_kind(monkeypatch):
        result = await run_probe(ScriptedConfig(name="s", behaviour="raise"), ctx())
    assert "hunter2" not in result.error
    assert "app:***@db" in result.error
    assert all("hunter2" not in c.detail for c in result.checks)


async def test_overrides_change_category_severity_and_drop_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        config = ScriptedConfig.model_validate(
            {
                "name": "s",
                "behaviour": "fail_critical",
                "category": "data",
                "checks": {
                    "alive": {"severity": "warning"},
                    "tidy": {"enabled": False},
                },
            }
        )
        result = await run_probe(config, ctx())
    (alive,) = result.checks
    assert (alive.category, alive.severity) == (Category.DATA, Severity.WARNING)
    # Downgraded to a warning, the failed check no longer fails the probe.
    assert result.success


def test_the_scripted_kind_is_gone_after_the_test() -> None:
    assert "scripted" not in PROBES
