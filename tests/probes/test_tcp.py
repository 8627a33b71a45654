"""The tcp probe against real asyncio servers on 127.0.0.1 (trustme for TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from exporter.probes.base import ProbeResult, Reason
from tests.conftest import free_port
from tests.helpers import (
    config_problems,
    detail,
    probe_config,
    run_once,
    sample,
    verdicts,
)
from tests.servers.tls import handshake_server, server_context

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


async def run(**fields: Any) -> ProbeResult:
    """One run of a tcp probe of 127.0.0.1 with *fields*."""
    return await run_once(probe_config("tcp", name="t", host="127.0.0.1", **fields))


# --- plain TCP --------------------------------------------------------------------


async def test_open_port_passes_and_exports_connect_time() -> None:
    async with serve(hold) as port:
        result = await run(port=port)
    assert result.success, result.error
    assert verdicts(result) == {"port_open": True}
    assert (sample(result, "tcp_connect_seconds") or 0) > 0


async def test_refused_port_is_connect() -> None:
    result = await run(port=free_port(), expect="PONG")
    assert result.reason is Reason.CONNECT
    assert verdicts(result) == {"port_open": False, "expect_matched": False}


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
        await asyncio.sleep(0.05)  # a slow server: the reply comes in two pieces
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
    assert verdicts(result) == {"port_open": True, "expect_matched": False}
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
    assert verdicts(result) == {"port_open": True, "expect_matched": False}
    assert detail(result, "expect_matched") == "got '-ERR unknown command'"


async def test_garbage_reply_fails_the_check_without_crashing() -> None:
    garbage = bytes(range(256)) * 4
    async with serve(replying(garbage)) as port:
        result = await run(port=port, send="HELLO", expect="READY", max_read_bytes=1024)
    assert result.reason is Reason.CHECK
    assert verdicts(result)["expect_matched"] is False
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
    assert verdicts(result) == {"port_open": True, "expect_matched": False}
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


async def test_tls_with_a_private_ca(ca: trustme.CA, ca_file: Path) -> None:
    async with serve(replying(b"+PONG\r\n"), server_context(ca)) as port:
        result = await run(
            port=port,
            tls=True,
            tls_config={"ca_file": str(ca_file)},
            send="PING",
            expect="PONG",
        )
    assert result.success, result.error


async def test_tls_with_an_unknown_ca_is_tls(ca: trustme.CA) -> None:
    async with serve(hold, server_context(ca)) as port:
        result = await run(port=port, tls=True)
    assert result.reason is Reason.TLS
    assert "CERTIFICATE_VERIFY_FAILED" in result.error


async def test_tls_with_the_wrong_ca_file_is_tls(
    ca: trustme.CA, tmp_path: Path
) -> None:
    wrong = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong))
    async with serve(hold, server_context(ca)) as port:
        result = await run(port=port, tls=True, tls_config={"ca_file": str(wrong)})
    assert result.reason is Reason.TLS
    assert "CERTIFICATE_VERIFY_FAILED" in result.error
    assert verdicts(result) == {"port_open": False}


async def test_tls_insecure_skip_verify_accepts_an_unknown_ca(ca: trustme.CA) -> None:
    async with serve(hold, server_context(ca)) as port:
        result = await run(
            port=port, tls=True, tls_config={"insecure_skip_verify": True}
        )
    assert result.success, result.error


async def test_tls_min_version_13_refuses_a_tls12_server(
    ca: trustme.CA, ca_file: Path
) -> None:
    context = server_context(ca, maximum=ssl.TLSVersion.TLSv1_2)
    async with handshake_server(context) as server:
        allowed = await run(
            port=server.port, tls=True, tls_config={"ca_file": str(ca_file)}
        )
        refused = await run(
            port=server.port,
            tls=True,
            tls_config={"ca_file": str(ca_file), "min_version": "TLS13"},
        )
    assert allowed.success, allowed.error
    assert refused.reason is Reason.TLS, refused.error
    assert "PROTOCOL_VERSION" in refused.error
    assert server.completed == 1


async def test_tls_server_name_is_sent_and_verified(
    ca: trustme.CA, ca_file: Path
) -> None:
    sent: list[str | None] = []
    context = server_context(ca, "mqtt.internal", server_names=sent)
    async with serve(hold, context) as port:
        named = await run(
            port=port,
            tls=True,
            tls_config={"ca_file": str(ca_file), "server_name": "mqtt.internal"},
        )
        by_address = await run(
            port=port, tls=True, tls_config={"ca_file": str(ca_file)}
        )
    assert named.success, named.error
    # Without server_name the host is verified, and the certificate does
    # not name 127.0.0.1 (an IP address is never sent as SNI).
    assert by_address.reason is Reason.TLS
    assert sent == ["mqtt.internal", None]


async def test_tls_with_a_missing_ca_file_is_config(tmp_path: Path) -> None:
    async with serve(hold) as port:
        result = await run(
            port=port, tls=True, tls_config={"ca_file": str(tmp_path / "none.pem")}
        )
    assert result.reason is Reason.CONFIG
    assert "none.pem" in result.error


# --- config -------------------------------------------------------------------------


def test_bad_expect_regex_is_a_config_error() -> None:
    problems = config_problems(
        """
        - kind: tcp
          name: broker
          host: 127.0.0.1
          port: 1883
          expect: '['
        """
    )
    assert "field 'expect': invalid regular expression" in problems
    assert "escape literal characters" in problems


@pytest.mark.parametrize(
    ("old", "value"),
    [
        ("ca_file", "/etc/ca.pem"),
        ("server_name", "mqtt.internal"),
        ("insecure_skip_verify", True),
    ],
)
def test_a_flat_tls_field_names_its_new_place(old: str, value: object) -> None:
    problems = config_problems(
        f"""
        - kind: tcp
          name: broker
          host: 127.0.0.1
          port: 8883
          tls: true
          {old}: {str(value).lower()}
        """
    )
    assert problems == (
        f"probe 'broker' (probes[0]): field {old!r} is now 'tls_config.{old}'"
        " (renamed in 0.2.0; see the README's changelog)"
    )


def test_tls_config_without_tls_is_a_config_error() -> None:
    problems = config_problems(
        """
        - kind: tcp
          name: broker
          host: 127.0.0.1
          port: 1883
          tls_config: {insecure_skip_verify: true}
        """
    )
    assert "tls_config applies to TLS only; add tls: true" in problems
