"""The websocket probe against aiohttp's own WebSocket server on 127.0.0.1
(trustme for wss://), a server that refuses the upgrade, one that botches
it and one that never answers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import WSMsgType, web
from pytest_aiohttp import AiohttpServer

from exporter.kinds import PROBES
from exporter.probes.base import ProbeResult, Reason
from exporter.probes.context import SharedResources
from tests.conftest import StartServer, free_port
from tests.helpers import (
    config_problems,
    detail,
    probe_config,
    run_once,
    sample,
    verdicts,
)
from tests.servers.tls import server_context


@dataclass
class Estate:
    """What the WebSocket service does and what it saw."""

    greeting: str | None = None
    close_after_upgrade: bool = False
    authorizations: list[str | None] = field(default_factory=list)
    origins: list[str | None] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    redirected_hits: int = 0


def service(estate: Estate) -> web.Application:
    """A control plane with a `/ws` endpoint, as Parallax has."""

    async def ws(request: web.Request) -> web.WebSocketResponse:
        estate.authorizations.append(request.headers.get("Authorization"))
        estate.origins.append(request.headers.get("Origin"))
        socket = web.WebSocketResponse(protocols=("parallax.v1",))
        await socket.prepare(request)
        if estate.close_after_upgrade:
            await socket.close(code=1011, message=b"shutting down")
            return socket
        if estate.greeting is not None:
            await socket.send_str(estate.greeting)
        async for message in socket:
            if message.type is WSMsgType.TEXT:
                estate.received.append(message.data)
                if message.data == '{"type": "ping"}':
                    await socket.send_str('{"type": "event", "n": 1}')
                    await socket.send_str('{"type": "pong"}')
        return socket

    async def silent(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for _ in socket:  # reads, never answers
            pass
        return socket

    async def guarded(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer s3cret-token":
            return web.Response(status=401, text="who are you")
        return await ws(request)

    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="no websockets here")  # upgrade ignored: 200

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        estate.redirected_hits += 1
        return web.Response(text="you should not be here")

    app = web.Application()
    for path, handler in {
        "/ws": ws,
        "/silent": silent,
        "/guarded": guarded,
        "/plain": plain,
        "/moved": moved,
        "/elsewhere": elsewhere,
    }.items():
        app.router.add_get(path, handler)
    return app


@pytest.fixture
def estate() -> Estate:
    return Estate()


@pytest.fixture
async def base(estate: Estate, aiohttp_server: AiohttpServer) -> str:
    server = await aiohttp_server(service(estate))
    return f"ws://127.0.0.1:{server.port}"


@pytest.fixture
async def shared() -> AsyncIterator[SharedResources]:
    resources = SharedResources()
    yield resources
    await resources.aclose()


async def run(shared: SharedResources, **fields: Any) -> ProbeResult:
    """One run of a websocket probe named ws with *fields*."""
    return await run_once(probe_config("websocket", name="ws", **fields), shared)


# --- the upgrade ---------------------------------------------------------------------


async def test_an_accepted_upgrade_passes(base: str, shared: SharedResources) -> None:
    result = await run(shared, url=f"{base}/ws")
    assert result.success, result.error
    assert verdicts(result) == {"upgrade_accepted": True}
    assert detail(result, "upgrade_accepted").startswith("101 Switching Protocols in ")
    assert sample(result, "websocket_status_code") == 101
    assert (sample(result, "websocket_handshake_seconds") or 0) > 0


async def test_http_urls_upgrade_too(base: str, shared: SharedResources) -> None:
    url = base.replace("ws://", "http://")
    result = await run(shared, url=f"{url}/ws")
    assert result.success, result.error


async def test_a_refused_upgrade_fails_with_the_status(
    base: str, shared: SharedResources
) -> None:
    result = await run(shared, url=f"{base}/plain", send="x", expect="y")
    # The server answered: a finding (check), not an error of the probe.
    assert result.reason is Reason.CHECK, result.error
    assert verdicts(result) == {"upgrade_accepted": False, "expect_matched": False}
    assert detail(result, "upgrade_accepted") == (
        "HTTP 200, not 101: the server refused the upgrade"
    )
    assert detail(result, "expect_matched") == "not tried: the upgrade failed"
    assert sample(result, "websocket_status_code") == 200
    assert sample(result, "websocket_handshake_seconds") is None


async def test_a_redirect_is_not_followed(
    base: str, estate: Estate, shared: SharedResources
) -> None:
    result = await run(
        shared, url=f"{base}/moved", headers={"X-Api-Key": "k3y-never-elsewhere"}
    )
    assert result.reason is Reason.CHECK, result.error
    assert detail(result, "upgrade_accepted") == (
        "HTTP 302 redirects to '/elsewhere': a WebSocket upgrade is not redirected"
    )
    assert sample(result, "websocket_status_code") == 302
    assert estate.redirected_hits == 0


async def test_credentials_and_headers_are_sent(
    base: str, estate: Estate, shared: SharedResources
) -> None:
    without = await run(shared, url=f"{base}/guarded")
    with_token = await run(
        shared,
        url=f"{base}/guarded",
        bearer_token="s3cret-token",
        headers={"Origin": "https://app.example.com"},
    )
    assert detail(without, "upgrade_accepted") == (
        "HTTP 401, not 101: the server refused the upgrade"
    )
    assert with_token.success, with_token.error
    assert estate.authorizations == ["Bearer s3cret-token"]
    assert estate.origins == ["https://app.example.com"]


async def test_the_chosen_subprotocol_is_named(
    base: str, shared: SharedResources
) -> None:
    result = await run(shared, url=f"{base}/ws", subprotocols=["parallax.v1"])
    assert result.success, result.error
    assert detail(result, "upgrade_accepted").endswith(", subprotocol 'parallax.v1'")


async def test_a_101_with_a_wrong_accept_key_is_not_a_handshake(
    tcp_server: StartServer, shared: SharedResources
) -> None:
    async def botched(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        wrong = base64.b64encode(b"not the right digest").decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + wrong.encode()
            + b"\r\n\r\n"
        )
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            await reader.read()
        writer.close()

    port = await tcp_server(botched)
    result = await run(shared, url=f"ws://127.0.0.1:{port}/ws")
    assert result.reason is Reason.CHECK, result.error
    assert detail(result, "upgrade_accepted") == (
        "101, but invalid challenge response: the handshake is not complete"
    )
    assert sample(result, "websocket_status_code") == 101


async def test_a_hanging_server_is_timeout(
    tcp_server: StartServer, shared: SharedResources
) -> None:
    port = await tcp_server()  # accepts, never answers
    result = await asyncio.wait_for(
        run(shared, url=f"ws://127.0.0.1:{port}/ws", timeout=0.5), 5
    )
    assert result.reason is Reason.TIMEOUT
    assert result.error == "the upgrade: no answer within 0.45s"
    assert sample(result, "websocket_status_code") == 0
    assert detail(result, "upgrade_accepted").startswith("not evaluated (timeout:")


async def test_a_refused_port_is_connect(shared: SharedResources) -> None:
    result = await run(shared, url=f"ws://127.0.0.1:{free_port()}/ws")
    assert result.reason is Reason.CONNECT, result.error
    assert result.error.startswith("the upgrade: ClientConnectorError: 127.0.0.1:")
    assert sample(result, "websocket_status_code") == 0


# --- a message and its reply ---------------------------------------------------------


async def test_send_and_expect_a_reply(
    base: str, estate: Estate, shared: SharedResources
) -> None:
    result = await run(
        shared, url=f"{base}/ws", send='{"type": "ping"}', expect='"type": "pong"'
    )
    assert result.success, result.error
    assert verdicts(result) == {"upgrade_accepted": True, "expect_matched": True}
    assert estate.received == ['{"type": "ping"}']
    # An event came first; the probe read on until the reply matched.
    assert (sample(result, "websocket_reply_seconds") or 0) > 0


async def test_expect_a_greeting_without_sending(
    base: str, estate: Estate, shared: SharedResources
) -> None:
    estate.greeting = '{"type": "hello", "version": "1.4.0"}'
    result = await run(shared, url=f"{base}/ws", expect='"type": "hello"')
    assert result.success, result.error
    assert estate.received == []


async def test_a_silent_endpoint_fails_expect_with_what_it_saw(
    base: str, shared: SharedResources
) -> None:
    result = await asyncio.wait_for(
        run(shared, url=f"{base}/silent", send="ping", expect="pong", timeout=0.5), 5
    )
    # The upgrade succeeded and the probe can say what hung: a check, no timeout.
    assert result.reason is Reason.CHECK, result.error
    assert verdicts(result) == {"upgrade_accepted": True, "expect_matched": False}
    assert detail(result, "expect_matched") == (
        "no match within 0.45s; no message arrived"
    )
    assert sample(result, "websocket_reply_seconds") is None


async def test_a_wrong_reply_is_shown(
    base: str, estate: Estate, shared: SharedResources
) -> None:
    result = await asyncio.wait_for(
        run(
            shared,
            url=f"{base}/ws",
            send='{"type": "ping"}',
            expect='"type": "pang"',
            timeout=0.5,
        ),
        5,
    )
    assert detail(result, "expect_matched") == (
        'no match within 0.45s; last \'{"type": "pong"}\''
    )


async def test_a_server_that_closes_after_the_upgrade(
    base: str, estate: Estate, shared: SharedResources
) -> None:
    estate.close_after_upgrade = True
    result = await run(shared, url=f"{base}/ws", expect="anything")
    assert verdicts(result) == {"upgrade_accepted": True, "expect_matched": False}
    assert detail(result, "expect_matched") == (
        "the server closed the connection (code 1011) before any message"
    )


# --- TLS -----------------------------------------------------------------------------


@pytest.fixture
async def wss_base(
    estate: Estate, ca: trustme.CA, aiohttp_server: AiohttpServer
) -> str:
    server = await aiohttp_server(service(estate), ssl=server_context(ca))
    return f"wss://127.0.0.1:{server.port}"


async def test_wss_with_a_private_ca(
    wss_base: str, ca_file: Path, shared: SharedResources
) -> None:
    result = await run(
        shared, url=f"{wss_base}/ws", tls_config={"ca_file": str(ca_file)}
    )
    assert result.success, result.error


async def test_wss_with_an_unknown_ca_is_tls(
    wss_base: str, shared: SharedResources
) -> None:
    result = await run(shared, url=f"{wss_base}/ws")
    assert result.reason is Reason.TLS, result.error
    assert "CERTIFICATE_VERIFY_FAILED" in result.error


# --- config ----------------------------------------------------------------------------


def test_plan() -> None:
    plan = PROBES["websocket"].plan
    assert [s.name for s in plan(probe_config("websocket", url="ws://h/ws"))] == [
        "upgrade_accepted"
    ]
    with_expect = probe_config("websocket", url="ws://h/ws", expect="pong")
    assert [(s.name, s.category, s.severity) for s in plan(with_expect)] == [
        ("upgrade_accepted", "reliability", "critical"),
        ("expect_matched", "reliability", "critical"),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            "url: ftp://h/ws",
            "'ftp://h/ws' is not a WebSocket URL: it must be ws:// or wss://",
        ),
        (
            "url: ws://user:pw@h/ws",
            "the URL carries credentials (user:password@); remove them and set"
            " basic_auth instead",
        ),
        (
            "url: ws://h/ws\n  follow_redirects: true",
            "follow_redirects: a WebSocket upgrade is never redirected",
        ),
        (
            "url: ws://h/ws\n  tls_config: {insecure_skip_verify: true}",
            "tls_config applies to wss:// (or https://) only",
        ),
        ("url: ws://h/ws\n  expect: '['", "invalid regular expression"),
    ],
)
def test_bad_config_says_what_to_write(fields: str, message: str) -> None:
    problems = config_problems(f"- kind: websocket\n  name: ws\n  {fields}")
    assert message in problems
    assert "pw@" not in problems
