"""Probe that opens a TCP connection, optionally with TLS, and talks a line;
or, with `expect_closed`, that a port a firewall must block accepts nothing.

# HELP readiness_tcp_connect_seconds Time to open the connection ...
readiness_tcp_connect_seconds{probe="mqtt"} 0.0012
"""

from __future__ import annotations

import asyncio
import codecs
import errno
import re
import socket
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
        when=lambda config: not config.expect_closed,
    ),
    CheckDef(
        "port_closed",
        Category.SECURITY,
        Severity.CRITICAL,
        "Nothing accepts the connection: it is refused, rejected as host "
        "unreachable, or unanswered within the timeout (with `expect_closed`).",
        when=lambda config: config.expect_closed,
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
        "Time to open the connection, TLS handshake included, last run; with"
        " expect_closed, only when the port accepted one.",
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
    expect_closed: bool = False

    @model_validator(mode="after")
    def _tls_settings_need_tls(self) -> Self:
        if self.tls_config.model_fields_set and not self.tls:
            raise ValueError("tls_config applies to TLS only; add tls: true")
        if self.expect_closed:
            talking = [
                name
                for name in ("tls", "send", "expect")
                if getattr(self, name) not in (None, False)
            ]
            if talking:
                raise ValueError(
                    f"expect_closed checks that nothing accepts the connection,"
                    f" so there is nobody to talk to: drop {', '.join(talking)}"
                )
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


# How a connection that could not be opened reads in a detail. Every one of
# them passes `port_closed`: from where the probe stands, nothing can
# connect. Only a name that does not resolve fails the run (`connect`): the
# probe could not tell which host to try.
_WHY_CLOSED = {
    errno.ECONNREFUSED: "refused (nothing listens, or a firewall rejects)",
    errno.EHOSTUNREACH: "host unreachable (rejected by a firewall, or down)",
    errno.ENETUNREACH: "network unreachable from here",
    errno.EACCES: "blocked by this host's own firewall",
    errno.EPERM: "blocked by this host's own firewall",
}


async def _addresses(config: TcpConfig, deadline: Deadline) -> list[str]:
    """Every address `host` resolves to: a port closed on IPv4 but open on
    IPv6 is open."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(deadline.loop_time()):
            infos = await loop.getaddrinfo(
                config.host, config.port, type=socket.SOCK_STREAM
            )
    except TimeoutError:
        raise TimeoutError(
            f"resolving {config.host}: no answer within {deadline.budget:g}s"
        ) from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _attempt(address: str, port: int, deadline: Deadline) -> tuple[float, str]:
    """Try to connect to *address*: the connect time if it opened (the
    connection is closed at once), else -1 and why not."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout_at(deadline.loop_time()):
            _reader, writer = await asyncio.open_connection(address, port)
    except TimeoutError:
        # The firewall drops the SYN and no answer comes.
        return -1, f"no answer within {deadline.budget:g}s (filtered)"
    except OSError as error:
        if error.errno in _WHY_CLOSED:
            return -1, _WHY_CLOSED[error.errno]
        # Any other error (EINVAL for a link-local address without a zone,
        # EMFILE on this host) means nothing was tried: not a closed port.
        raise
    seconds = time.perf_counter() - started
    await close_stream(writer, deadline)
    return seconds, ""


async def judge_closed(
    config: TcpConfig, addresses: list[str], deadline: Deadline
) -> ProbeResult:
    """`port_closed` on every one of *addresses*, tried at once: a refusal
    or silence is the healthy answer, so neither fails the run; a
    connection that opens, on any address, is the finding; an address that
    could not be tried fails the run (the probe cannot tell)."""
    checks = Checks(CHECKS, config)
    outcomes = await asyncio.gather(
        *(_attempt(address, config.port, deadline) for address in addresses)
    )
    opened = {a: s for a, (s, _) in zip(addresses, outcomes, strict=True) if s >= 0}
    if not opened:
        why = [w for _, w in outcomes]
        detail = (
            why[0]
            if len(why) == 1
            else "; ".join(f"{a} {w}" for a, w in zip(addresses, why, strict=True))
        )
        checks.record("port_closed", True, detail)
        return ProbeResult(checks=checks.finish())
    where = ", ".join(opened)
    checks.record(
        "port_closed",
        False,
        f"port {config.port} accepted a connection on {where}; a firewall must"
        " keep it closed to this network",
    )
    return ProbeResult(
        checks=checks.finish(),
        samples=(Sample("tcp_connect_seconds", min(opened.values())),),
    )


async def probe(config: TcpConfig, ctx: ProbeContext) -> ProbeResult:
    """Connect, optionally send a line and match the reply, then close; with
    `expect_closed`, judge that the connection is not accepted."""
    if config.expect_closed:
        addresses = await _addresses(config, ctx.deadline)
        return await judge_closed(config, addresses, ctx.deadline)
    checks = Checks(CHECKS, config)
    tls_context = config.tls_config.context() if config.tls else None
    server_name = config.tls_config.server_name or config.host
    started = time.perf_counter()
    try:
        async with asyncio.timeout_at(ctx.deadline.loop_time()):
            reader, writer = await asyncio.open_connection(
                config.host,
                config.port,
                ssl=tls_context,
                server_hostname=server_name if tls_context else None,
                limit=config.max_read_bytes,
            )
    except TimeoutError:
        what = "connect and TLS handshake" if tls_context else "connect"
        raise TimeoutError(
            f"{what}: no answer within {ctx.deadline.budget:g}s"
        ) from None
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
