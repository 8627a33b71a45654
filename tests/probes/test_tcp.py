"""The tcp probe against real asyncio servers on 127.0.0.1 (trustme for TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from exporter.config import ConfigError, parse_config
from exporter.kinds import config_adapter
from exporter.probes.base import ProbeResult, Reason
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.tcp import TcpConfig
from exporter.runner import run_probe
from tests.conftest import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve(
    handler: Handler, context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and say nothing until the client leaves."""
    with contextlib.suppress(ConnectionError):
        await reader.read()
    writer.close()


def replying(*chunks: bytes, pause: float = 0.0) -> Handler:
    """A server that reads one line, then writes *chunks* and waits."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readline()
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
            await reader.read()
        writer.close()

    return handler


def tcp_config(**fields: Any) -> TcpConfig:
    raw = {"kind": "tcp", "name": "t", "host": "127.0.0.1", "timeout": 2, **fields}
    config = config_adapter().validate_python(raw)
    assert isinstance(config, TcpConfig)
    return config


async def run(**fields: Any) -> ProbeResult:
    config = tcp_config(**fields)
    shared = SharedResources()
    try:
        return await run_probe(config, ProbeContext(config.name, shared))
    finally:
        await shared.aclose()


def checks_of(result: ProbeResult) -> dict[str, bool]:
    return {check.name: check.passed for check in result.checks}


def detail(result: ProbeResult, name: str) -> str:
    return next(c.detail for c in result.checks if c.name == name)


def connect_seconds(result: ProbeResult) -> float:
    (value,) = [s.value for s in result.samples if s.name == "tcp_connect_seconds"]
    return value


# --- plain TCP --------------------------------------------------------------------


async def test_open_port_passes_and_exports_connect_time() -> None:
    async with serve(hold) as port:
        result = await run(port=port)
    assert result.success, result.error
    assert checks_of(result) == {"port_open": True}
    assert connect_seconds(result) > 0


async def test_refused_port_is_connect() -> None:
    result = await run(port=free_port(), expect="PONG")
    assert result.reason is Reason.CONNECT
    assert checks_of(result) == {"port_open": False, "expect_matched": False}


async def test_silent_server_is_timeout_within_the_timeout() -> None:
    async with serve(hold) as port:
        result = await asyncio.wait_for(run(port=port, expect="PONG", timeout=0.5), 5)
    assert result.reason is Reason.TIMEOUT
    assert result.error == "no answer within 0.5s"


async def test_send_and_expect_a_match() -> None:
    seen: list[bytes] = []

    async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        writer.write(b"+PO")
        await writer.drain()
        await asyncio.sleep(0.05)  # the reply arrives in two pieces
        writer.write(b"NG\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    async with serve(pong) as port:
        result = await run(port=port, send="PING", expect=r"^\+PONG")
    assert result.success, result.error
    assert seen == [b"PING\n"]
    assert detail(result, "expect_matched") == "reply matched"


async def test_unmatched_reply_on_a_connection_left_open_fails_the_check() -> None:
    async with serve(replying(b"-ERR unknown command\r\n")) as port:
        result = await asyncio.wait_for(
            run(port=port, send="PING", expect=r"^\+PONG", timeout=0.5), 5
        )
    # The server keeps the connection open: the read ends just before the
    # run's timeout, and the check still says what the server answered.
    assert result.reason is Reason.CHECK, result.error
    assert checks_of(result) == {"port_open": True, "expect_matched": False}
    assert detail(result, "expect_matched") == (
        "no match within 0.45s; got '-ERR unknown command'"
    )


async def test_reply_then_close_without_match_fails_the_check() -> None:
    async def answer_and_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readline()
        writer.write(b"-ERR unknown command\r\n")
        await writer.drain()
        writer.close()

    async with serve(answer_and_close) as port:
        result = await run(port=port, send="PING", expect=r"^\+PONG")
    assert result.reason is Reason.CHECK
    assert checks_of(result) == {"port_open": True, "expect_matched": False}
    assert detail(result, "expect_matched") == "got '-ERR unknown command'"


async def test_garbage_reply_fails_the_check_without_crashing() -> None:
    garbage = bytes(range(256)) * 4
    async with serve(replying(garbage)) as port:
        result = await run(port=port, send="HELLO", expect="READY", max_read_bytes=1024)
    assert result.reason is Reason.CHECK
    assert checks_of(result)["expect_matched"] is False
    assert detail(result, "expect_matched").startswith("got ")


async def test_oversized_reply_stops_at_max_read_bytes() -> None:
    written = 0

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        chunk = b"x" * 4096
        with contextlib.suppress(ConnectionError):
            while written < 64 * 1024 * 1024:
                writer.write(chunk)
                await writer.drain()
                written += len(chunk)
        writer.close()

    async with serve(flood) as port:
        result = await run(port=port, expect="READY", max_read_bytes=8192)
    assert result.reason is Reason.CHECK
    assert checks_of(result) == {"port_open": True, "expect_matched": False}
    assert detail(result, "expect_matched") == f"got {'x' * 80!r}"
    assert written < 16 * 1024 * 1024, "the probe must stop reading at the cap"


async def test_match_across_many_small_pieces() -> None:
    # A dripping server: the banner arrives a few bytes at a time, after
    # more than the search look-back of filler.
    pieces = [b"." * 7] * 200 + [b"220 ", b"rea", b"dy\r\n"]
    async with serve(replying(*pieces, pause=0.001)) as port:
        result = await run(
            port=port, send="HI", expect=r"\.220 ready", max_read_bytes=4096
        )
    assert result.success, detail(result, "expect_matched")


# --- TLS ----------------------------------------------------------------------------


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


async def test_tls_with_a_private_ca(ca: trustme.CA, ca_file: Path) -> None:
    async with serve(replying(b"+PONG\r\n"), server_tls(ca)) as port:
        result = await run(
            port=port, tls=True, ca_file=str(ca_file), send="PING", expect="PONG"
        )
    assert result.success, result.error


async def test_tls_with_an_unknown_ca_is_tls(ca: trustme.CA) -> None:
    async with serve(hold, server_tls(ca)) as port:
        result = await run(port=port, tls=True)
    assert result.reason is Reason.TLS
    assert "CERTIFICATE_VERIFY_FAILED" in result.error


async def test_tls_insecure_skip_verify_accepts_an_unknown_ca(ca: trustme.CA) -> None:
    async with serve(hold, server_tls(ca)) as port:
        result = await run(port=port, tls=True, insecure_skip_verify=True)
    assert result.success, result.error


async def test_tls_with_a_missing_ca_file_is_config(tmp_path: Path) -> None:
    async with serve(hold) as port:
        result = await run(port=port, tls=True, ca_file=str(tmp_path / "none.pem"))
    assert result.reason is Reason.CONFIG
    assert "none.pem" in result.error


# --- config -------------------------------------------------------------------------


def test_bad_expect_regex_is_a_config_error() -> None:
    yaml_text = """
        probes:
          - kind: tcp
            name: broker
            host: 127.0.0.1
            port: 1883
            expect: '['
    """
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(yaml_text), "test.yml")
    problems = "\n".join(caught.value.problems)
    assert "field 'expect': invalid regular expression" in problems
    assert "escape literal characters" in problems
