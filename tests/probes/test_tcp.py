"""The tcp probe against real asyncio servers on 127.0.0.1 (trustme for TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from exporter.kinds import PROBES
from exporter.probes.base import ProbeResult, Reason
from exporter.probes.context import Deadline
from exporter.probes.tcp import judge_closed
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


# --- expect_closed: a port a firewall must keep closed -----------------------------------


@contextlib.contextmanager
def filtered_port() -> Iterator[int]:
    """A port that answers no SYN, as one behind a DROP rule: a listener
    that never accepts, with its accept queue filled (Linux then drops new
    SYNs, so a connect hangs until the client gives up)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):  # the queue holds backlog + 1 on Linux
            filler = socket.socket()
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.skip("this kernel accepts every connection into the queue")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_expect_closed_passes_on_a_refused_port() -> None:
    result = await run(port=free_port(), expect_closed=True)
    assert result.success, result.error
    assert result.reason is None
    assert verdicts(result) == {"port_closed": True}
    assert detail(result, "port_closed") == (
        "refused (nothing listens, or a firewall rejects)"
    )
    assert sample(result, "tcp_connect_seconds") is None


async def test_expect_closed_passes_on_a_filtered_port_within_the_timeout() -> None:
    with filtered_port() as port:
        result = await asyncio.wait_for(
            run(port=port, expect_closed=True, timeout=0.5), 5
        )
    # Silence is the healthy answer here: the run is no timeout.
    assert result.success, result.error
    assert result.reason is None
    assert detail(result, "port_closed") == "no answer within 0.45s (filtered)"


async def test_expect_closed_fails_when_the_port_accepts() -> None:
    async with serve(hold) as port:
        result = await run(port=port, expect_closed=True)
    assert result.reason is Reason.CHECK, result.error
    assert result.error == "failed: port_closed"
    assert verdicts(result) == {"port_closed": False}
    assert detail(result, "port_closed") == (
        f"port {port} accepted a connection on 127.0.0.1; a firewall must keep"
        " it closed to this network"
    )
    assert (sample(result, "tcp_connect_seconds") or 0) > 0


async def test_expect_closed_tries_every_address_of_the_host() -> None:
    # Closed on IPv4, open on IPv6 (a classic gap): open.
    listener = socket.socket(socket.AF_INET6)
    try:
        listener.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    listener.listen()
    port = listener.getsockname()[1]
    config = probe_config("tcp", host="localhost", port=port, expect_closed=True)
    try:
        both = await judge_closed(config, ["127.0.0.1", "::1"], Deadline(2.0))
    finally:
        listener.close()
    after = await judge_closed(config, ["127.0.0.1", "::1"], Deadline(2.0))

    assert verdicts(both) == {"port_closed": False}
    assert "accepted a connection on ::1;" in detail(both, "port_closed")
    assert verdicts(after) == {"port_closed": True}
    assert detail(after, "port_closed") == (
        "127.0.0.1 refused (nothing listens, or a firewall rejects);"
        " ::1 refused (nothing listens, or a firewall rejects)"
    )


async def test_expect_closed_on_a_name_that_does_not_resolve_is_connect() -> None:
    # The probe cannot tell which host to try: no verdict, not a pass.
    result = await run_once(
        probe_config(
            "tcp", host="readiness-test.invalid", port=27017, expect_closed=True
        )
    )
    assert result.reason is Reason.CONNECT, result.error
    assert "gaierror" in result.error
    assert verdicts(result) == {"port_closed": False}


async def test_expect_closed_on_an_address_that_cannot_be_tried_is_no_pass() -> None:
    # A link-local address without its zone (EINVAL): nothing was tried, so
    # the port is not known to be closed.
    result = await run_once(
        probe_config("tcp", name="t", host="fe80::1", port=80, expect_closed=True)
    )
    assert result.reason is Reason.CONNECT, result.error
    assert "Invalid argument" in result.error
    assert verdicts(result) == {"port_closed": False}


def test_expect_closed_plans_port_closed_alone() -> None:
    plan = PROBES["tcp"].plan
    config = probe_config("tcp", host="db", port=27017, expect_closed=True)
    assert [(s.name, s.category, s.severity) for s in plan(config)] == [
        ("port_closed", "security", "critical")
    ]
    open_config = probe_config("tcp", host="db", port=27017, expect="x")
    assert [s.name for s in plan(open_config)] == ["port_open", "expect_matched"]


@pytest.mark.parametrize(
    ("lines", "dropped"),
    [
        (["send: PING"], "send"),
        (["expect: PONG"], "expect"),
        (["tls: true"], "tls"),
        (["tls: true", "send: PING"], "tls, send"),
    ],
)
def test_expect_closed_with_something_to_say_is_a_config_error(
    lines: list[str], dropped: str
) -> None:
    entry = [
        "- kind: tcp",
        "  name: mongo-from-outside",
        "  host: 127.0.0.1",
        "  port: 27017",
        "  expect_closed: true",
        *(f"  {line}" for line in lines),
    ]
    assert config_problems("\n".join(entry)) == (
        "probe 'mongo-from-outside' (probes[0]): expect_closed checks that"
        " nothing accepts the connection, so there is nobody to talk to: drop"
        f" {dropped}"
    )


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
