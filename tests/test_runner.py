"""The runner: timeouts, reasons, overrides, and what a failure looks like."""

from __future__ import annotations

import asyncio
import ssl
import time

import aiohttp
import pytest

from exporter.kinds import PROBES
from exporter.probes.base import (
    AuthError,
    Category,
    ProbeError,
    Reason,
    Sample,
    Severity,
)
from exporter.runner import explain
from tests.conftest import StartServer, free_port
from tests.helpers import probe_config, run_once
from tests.kinds import scripted_kind


async def test_healthy_tcp_target(tcp_server: StartServer) -> None:
    port = await tcp_server()
    result = await run_once(probe_config("tcp", name="t", host="127.0.0.1", port=port))
    assert result.success and result.reason is None
    assert [(c.name, c.passed) for c in result.checks] == [("port_open", True)]
    assert result.samples[0].name == "tcp_connect_seconds"
    assert result.duration_seconds > 0 and result.finished_at > 0


async def test_refused_fails_every_planned_check() -> None:
    config = probe_config(
        "tcp", name="t", host="127.0.0.1", port=free_port(), expect="^220", send="HELO"
    )
    result = await run_once(config)
    assert not result.success
    assert result.reason is Reason.CONNECT
    assert [c.name for c in result.checks] == ["port_open", "expect_matched"]
    assert not any(c.passed for c in result.checks)
    assert result.checks[0].detail.startswith("not evaluated (connect: ")


async def test_a_hanging_target_times_out_within_the_timeout(
    tcp_server: StartServer,
) -> None:
    port = await tcp_server()
    config = probe_config(
        "tcp", name="t", host="127.0.0.1", port=port, expect="^OK", timeout=0.3
    )
    started = time.monotonic()
    result = await run_once(config)
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
    config = probe_config("tcp", name="t", host="127.0.0.1", port=port, expect="^220")
    result = await run_once(config)
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
        config = probe_config("scripted", name="s", behaviour=behaviour)
        result = await run_once(config)
    assert (result.success, result.reason) == (success, reason)


async def test_a_probe_error_may_carry_samples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        result = await run_once(probe_config("scripted", behaviour="protocol"))
    assert result.reason is Reason.PROTOCOL
    assert [(s.name, s.value) for s in result.samples] == [("scripted_value", 0.0)]


async def test_errors_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    with scripted_kind(monkeypatch):
        result = await run_once(probe_config("scripted", behaviour="raise"))
    assert "hunter2" not in result.error
    assert "app:***@db" in result.error
    assert all("hunter2" not in c.detail for c in result.checks)


async def test_overrides_change_category_severity_and_drop_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_kind(monkeypatch):
        config = probe_config(
            "scripted",
            behaviour="fail_critical",
            category="data",
            checks={"alive": {"severity": "warning"}, "tidy": {"enabled": False}},
        )
        result = await run_once(config)
    (alive,) = result.checks
    assert (alive.category, alive.severity) == (Category.DATA, Severity.WARNING)
    # Downgraded to a warning, the failed check no longer fails the probe.
    assert result.success


def test_the_scripted_kind_is_gone_after_the_test() -> None:
    assert "scripted" not in PROBES


def raised_from(error: ProbeError, cause: BaseException) -> ProbeError:
    """*error* as `raise error from cause` leaves it."""
    try:
        raise error from cause
    except ProbeError as raised:
        return raised


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (ConnectionRefusedError(111, "Connection refused"), Reason.CONNECT),
        (TimeoutError(), Reason.TIMEOUT),
        (ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION]"), Reason.TLS),
        # Not an OSError: the http kind's translate_error makes it protocol.
        (aiohttp.ServerDisconnectedError(), Reason.PROTOCOL),
        (
            aiohttp.ClientPayloadError("Response payload is not completed"),
            Reason.PROTOCOL,
        ),
        (aiohttp.InvalidURL("http://[::1"), Reason.CONFIG),
    ],
)
def test_a_probe_error_without_a_reason_takes_the_reason_of_its_cause(
    cause: BaseException, reason: Reason
) -> None:
    config = probe_config("http", url="http://127.0.0.1:1/")
    error = raised_from(
        ProbeError("no reply", samples=(Sample.of("http_status_code", 0),)), cause
    )
    # The probe's own words stay; the cause only decides the reason.
    assert explain(error, PROBES["http"], config) == (reason, "no reply")


def test_a_probe_errors_own_reason_wins_over_its_cause() -> None:
    config = probe_config("http", url="http://127.0.0.1:1/")
    refused = raised_from(AuthError("HTTP 401"), ConnectionRefusedError())
    given = raised_from(ProbeError("late", reason=Reason.TLS), TimeoutError())
    assert explain(refused, PROBES["http"], config) == (Reason.AUTH, "HTTP 401")
    assert explain(given, PROBES["http"], config) == (Reason.TLS, "late")


def test_a_probe_error_without_reason_or_cause_is_protocol() -> None:
    config = probe_config("http", url="http://127.0.0.1:1/")
    error = ProbeError("garbled")
    assert explain(error, PROBES["http"], config) == (Reason.PROTOCOL, "garbled")
