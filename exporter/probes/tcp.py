"""Probe that opens a TCP connection, optionally with TLS, and talks a line.

# HELP readiness_tcp_connect_seconds Time to open the connection ...
readiness_tcp_connect_seconds{probe="mqtt"} 0.0012
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import re
import ssl
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from exporter.probes.base import (
    BaseProbeConfig,
    Category,
    Checks,
    CheckSpec,
    MetricSpec,
    Port,
    ProbeResult,
    Sample,
    Severity,
)
from exporter.probes.context import ProbeContext
from exporter.probes.httpclient import request_budget
from exporter.probes.tlsclient import client_context

METRICS = (
    MetricSpec(
        "tcp_connect_seconds",
        "Time to open the connection, TLS handshake included, last run.",
    ),
)


class TcpConfig(BaseProbeConfig):
    """Where to connect, and what to say and hear once connected."""

    kind: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: Port
    tls: bool = False
    server_name: str | None = None
    ca_file: Path | None = None
    insecure_skip_verify: bool = False
    send: str | None = None
    expect: str | None = None
    max_read_bytes: int = Field(default=4096, ge=1, le=1_048_576)

    @field_validator("expect")
    @classmethod
    def _expect_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(
                    f"invalid regular expression: {error}; escape literal"
                    " characters such as [ ( . * with a backslash"
                ) from None
        return value


def plan(config: TcpConfig) -> list[CheckSpec]:
    """`port_open` always; `expect_matched` when a reply is expected."""
    specs = [
        CheckSpec(
            "port_open",
            Category.RELIABILITY,
            Severity.CRITICAL,
            "The port accepts connections.",
        )
    ]
    if config.expect is not None:
        specs.append(
            CheckSpec(
                "expect_matched",
                Category.RELIABILITY,
                Severity.CRITICAL,
                "The reply matches the expected pattern.",
            )
        )
    return specs


def _tls_context(config: TcpConfig) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    return client_context(
        ca_file=config.ca_file, insecure_skip_verify=config.insecure_skip_verify
    )


# How far back a search reaches into what was already received: a match that
# ends in the newest chunk and is at most this long is seen at once; a longer
# one when the reply has doubled since the last full search, or at its end.
_LOOKBACK_CHARS = 1024


class _Reply:
    """What the peer sent so far, kept outside the read so that a read cut
    short by the deadline can still say what arrived."""

    def __init__(self) -> None:
        self.text = ""


async def _read_until(
    reader: asyncio.StreamReader, pattern: re.Pattern[str], limit: int, reply: _Reply
) -> bool:
    """Read into *reply* until *pattern* matches, EOF, or *limit* bytes.

    Each chunk is decoded once and searched only near its end, with a full
    search whenever the text doubled, so a server dripping one byte at a
    time costs linear, not quadratic, work.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    received = 0
    searched_in_full = 0
    while received < limit:
        chunk = await reader.read(limit - received)
        if not chunk:
            break
        received += len(chunk)
        start = max(0, len(reply.text) - _LOOKBACK_CHARS)
        reply.text += decoder.decode(chunk)
        if len(reply.text) >= 2 * searched_in_full:
            start, searched_in_full = 0, len(reply.text)
        if pattern.search(reply.text, start):
            return True
    reply.text += decoder.decode(b"", final=True)
    return pattern.search(reply.text) is not None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:80] if text.strip() else ""


async def _judge_reply(
    config: TcpConfig,
    expect: str,
    reader: asyncio.StreamReader,
    checks: Checks,
    deadline: float,
) -> None:
    """`expect_matched`, decided before the runner's timeout: a peer that
    keeps the connection open after a wrong reply must not turn the run
    into a timeout that hides what it said."""
    reply = _Reply()
    pattern = re.compile(expect)
    try:
        async with asyncio.timeout_at(_loop_time(deadline)):
            matched = await _read_until(reader, pattern, config.max_read_bytes, reply)
    except TimeoutError:
        if not reply.text:
            raise  # a silent peer: the run is a timeout, as the runner says
        budget = request_budget(config.timeout)
        checks.record(
            "expect_matched",
            False,
            f"no match within {budget:g}s; got {_first_line(reply.text)!r}",
        )
        return
    detail = "reply matched" if matched else f"got {_first_line(reply.text)!r}"
    checks.record("expect_matched", matched, detail)


def _loop_time(deadline: float) -> float:
    """*deadline* (a perf_counter reading) on the event loop's clock."""
    return asyncio.get_running_loop().time() + (deadline - time.perf_counter())


async def probe(config: TcpConfig, ctx: ProbeContext) -> ProbeResult:
    """Connect, optionally send a line and match the reply, then close."""
    checks = Checks(plan(config))
    tls_context = _tls_context(config)
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(
        config.host,
        config.port,
        ssl=tls_context,
        server_hostname=(config.server_name or config.host) if tls_context else None,
        limit=config.max_read_bytes,
    )
    connect_seconds = time.perf_counter() - started
    try:
        checks.record("port_open", True, f"connected in {connect_seconds:.3f}s")
        if config.send is not None:
            line = config.send
            writer.write((line if line.endswith("\n") else line + "\n").encode())
            await writer.drain()
        if config.expect is not None:
            deadline = started + request_budget(config.timeout)
            await _judge_reply(config, config.expect, reader, checks, deadline)
    finally:
        writer.close()
        # A peer that never finishes the close must not hold the run.
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
    return ProbeResult(
        checks=checks.finish(),
        samples=(Sample("tcp_connect_seconds", connect_seconds),),
    )
