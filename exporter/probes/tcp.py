"""Probe that opens a TCP connection, optionally with TLS, and talks a line.

# HELP readiness_tcp_connect_seconds Time to open the connection ...
readiness_tcp_connect_seconds{probe="mqtt"} 0.0012
"""

from __future__ import annotations

import asyncio
import codecs
import re
import time
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from exporter.probes.base import (
    BaseProbeConfig,
    Category,
    CheckDef,
    Checks,
    MetricSpec,
    Port,
    ProbeResult,
    Regex,
    Sample,
    Severity,
)
from exporter.probes.context import Deadline, ProbeContext
from exporter.probes.shared.streams import close_stream
from exporter.probes.shared.tls import TlsClientConfig

CHECKS = (
    CheckDef(
        "port_open",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The TCP connection (and, with `tls: true`, the TLS handshake) succeeds.",
    ),
    CheckDef(
        "expect_matched",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The reply matches `expect` within the timeout (with `expect`).",
        when=lambda config: config.expect is not None,
    ),
)

METRICS = (
    MetricSpec(
        "tcp_connect_seconds",
        "Time to open the connection, TLS handshake included, last run.",
    ),
)


class TcpConfig(BaseProbeConfig):
    """Where to connect, and what to say and hear once connected."""

    RENAMED: ClassVar[dict[str, str]] = {
        name: f"tls_config.{name}"
        for name in ("server_name", "ca_file", "insecure_skip_verify")
    }

    kind: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: Port
    tls: bool = False
    tls_config: TlsClientConfig = Field(default_factory=TlsClientConfig)
    send: str | None = None
    expect: Regex | None = None
    max_read_bytes: int = Field(default=4096, ge=1, le=1_048_576)

    @model_validator(mode="after")
    def _tls_settings_need_tls(self) -> Self:
        if self.tls_config.model_fields_set and not self.tls:
            raise ValueError("tls_config applies to TLS only; add tls: true")
        return self


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
    deadline: Deadline,
) -> None:
    """`expect_matched`, decided before the runner's timeout: a peer that
    keeps the connection open after a wrong reply must not turn the run
    into a timeout that hides what it said."""
    reply = _Reply()
    pattern = re.compile(expect)
    try:
        async with asyncio.timeout_at(deadline.loop_time()):
            matched = await _read_until(reader, pattern, config.max_read_bytes, reply)
    except TimeoutError:
        if not reply.text:
            raise  # a silent peer: the run is a timeout, as the runner says
        checks.record(
            "expect_matched",
            False,
            f"no match within {deadline.budget:g}s; got {_first_line(reply.text)!r}",
        )
        return
    detail = "reply matched" if matched else f"got {_first_line(reply.text)!r}"
    checks.record("expect_matched", matched, detail)


async def probe(config: TcpConfig, ctx: ProbeContext) -> ProbeResult:
    """Connect, optionally send a line and match the reply, then close."""
    checks = Checks(CHECKS, config)
    tls_context = config.tls_config.context() if config.tls else None
    server_name = config.tls_config.server_name or config.host
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(
        config.host,
        config.port,
        ssl=tls_context,
        server_hostname=server_name if tls_context else None,
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
            await _judge_reply(config, config.expect, reader, checks, ctx.deadline)
    finally:
        await close_stream(writer, ctx.deadline)
    return ProbeResult(
        checks=checks.finish(),
        samples=(Sample("tcp_connect_seconds", connect_seconds),),
    )
