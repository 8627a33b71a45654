"""Probe a WebSocket endpoint: the server accepts the upgrade (101 and a
complete handshake) and, with `send`/`expect`, answers a message.

A kind of its own rather than an http option: the upgrade is judged on
101, not on 2xx; it has no body, so the http kind's body, header, CORS and
latency checks do not apply; and a message exchanged after it is a
WebSocket matter. It shares the http kinds' client config (headers, bearer
token, basic auth, tls_config) and their rules for secrets.

    readiness_websocket_status_code{probe="control-plane-ws"} 101
    readiness_websocket_handshake_seconds{probe="control-plane-ws"} 0.0031
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any, ClassVar, Literal, Self

import aiohttp
from pydantic import Field, field_validator, model_validator
from yarl import URL

from exporter.probes.base import (
    Category,
    CheckDef,
    Checks,
    MetricSpec,
    ProbeError,
    ProbeResult,
    Regex,
    Sample,
    Severity,
    first_line,
)
from exporter.probes.context import Deadline, ProbeContext
from exporter.probes.shared.httpclient import (
    REDIRECT_STATUSES,
    HttpClientConfig,
    describe,
    request,
    translate_error,
)
from exporter.redact import redact

__all__ = ["CHECKS", "METRICS", "WebsocketConfig", "probe", "translate_error"]

SESSION_KEY = ("websocket", "session")
_SCHEMES = ("ws", "wss", "http", "https")
_USER_AGENT = "readiness-exporter"

CHECKS = (
    CheckDef(
        "upgrade_accepted",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The server answers the upgrade with 101 Switching Protocols and a valid "
        "Sec-WebSocket-Accept: the WebSocket handshake completes.",
    ),
    CheckDef(
        "expect_matched",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "A message from the server (after `send`, if set) matches `expect` within "
        "the timeout (with `expect`).",
        when=lambda config: config.expect is not None,
    ),
)

METRICS = (
    MetricSpec(
        "websocket_status_code",
        "Status of the reply to the upgrade request, last run (101 when"
        " accepted); 0 if none.",
    ),
    MetricSpec(
        "websocket_handshake_seconds",
        "Time from the start of the run to the completed handshake (connect,"
        " TLS and upgrade), last run; absent when the upgrade failed.",
    ),
    MetricSpec(
        "websocket_reply_seconds",
        "Time from the completed handshake to the message that matched"
        " `expect`, last run; absent without a match.",
    ),
)


class WebsocketConfig(HttpClientConfig):
    """Where the endpoint is, and what it must say once upgraded."""

    RENAMED: ClassVar[dict[str, str]] = HttpClientConfig.RENAMED

    kind: Literal["websocket"] = "websocket"
    url: str
    subprotocols: list[str] = Field(default_factory=list)
    send: str | None = None
    expect: Regex | None = None
    # Browsers fail a WebSocket whose upgrade is redirected; so does the probe.
    follow_redirects: bool = False

    @field_validator("url")
    @classmethod
    def _websocket_url(cls, value: str) -> str:
        try:
            parsed = URL(value)
        except ValueError:
            raise ValueError(f"{redact(value)!r} is not a URL") from None
        if parsed.scheme not in _SCHEMES or not parsed.host:
            raise ValueError(
                f"{redact(value)!r} is not a WebSocket URL: it must be ws:// or"
                " wss:// (or http(s)://) with a host, e.g. ws://127.0.0.1:8080/ws"
            )
        if parsed.user is not None or parsed.password:
            raise ValueError(
                "the URL carries credentials (user:password@); remove them and"
                " set basic_auth instead"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.follow_redirects:
            raise ValueError(
                "follow_redirects: a WebSocket upgrade is never redirected"
                " (browsers fail it); point url at the endpoint itself"
            )
        if self.tls_config.model_fields_set and URL(self.url).scheme in ("ws", "http"):
            raise ValueError("tls_config applies to wss:// (or https://) only")
        return self


# --- the session ----------------------------------------------------------------


class Redirected(aiohttp.ClientError):
    """The server answered the upgrade with a redirect."""

    def __init__(self, status: int, location: str) -> None:
        super().__init__(f"HTTP {status} redirects to {location[:80]!r}")
        self.status = status
        self.location = location


async def _refuse_redirects(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """aiohttp's ws_connect follows redirects, configured headers and all;
    a browser fails the WebSocket instead, and so does the probe."""
    response = await handler(request)
    if response.status in REDIRECT_STATUSES:
        location = response.headers.get("Location", "")
        response.close()
        raise Redirected(response.status, location)
    return response


def new_session() -> aiohttp.ClientSession:
    """The one session of all websocket probes: as the http kinds' (no
    keep-alive, no DNS cache, no limit, no cookie jar, no proxy variables),
    and no redirects."""
    connector = aiohttp.TCPConnector(force_close=True, limit=0, use_dns_cache=False)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": _USER_AGENT},
        trust_env=False,
        middlewares=(_refuse_redirects,),
    )


# --- the run ----------------------------------------------------------------------


def _refusal(error: aiohttp.WSServerHandshakeError | Redirected) -> str:
    """`upgrade_accepted`'s detail when the server answered but did not
    upgrade."""
    if isinstance(error, Redirected):
        shown = error.location[:80] or "nowhere"
        return (
            f"HTTP {error.status} redirects to {shown!r}: a WebSocket upgrade"
            " is not redirected"
        )
    if error.status != 101:
        return f"HTTP {error.status}, not 101: the server refused the upgrade"
    return f"101, but {error.message.lower()}: the handshake is not complete"


async def _connect(
    session: aiohttp.ClientSession, config: WebsocketConfig, deadline: Deadline
) -> aiohttp.ClientWebSocketResponse[Any]:
    """The upgraded connection, within what is left of the run's budget."""
    first = await request(config, config.url)
    async with asyncio.timeout_at(deadline.loop_time()):
        return await session.ws_connect(
            config.url,
            headers={**first.plain, **first.secret},
            protocols=config.subprotocols,
            ssl=config.ssl(),
            server_hostname=first.server_name,
            # The close handshake may use half of the grace after the budget.
            timeout=aiohttp.ClientWSTimeout(
                ws_receive=None, ws_close=deadline.grace / 2
            ),
            autoping=True,
            max_msg_size=config.max_body_bytes,
        )


async def _judge_reply(
    config: WebsocketConfig,
    expect: str,
    ws: aiohttp.ClientWebSocketResponse[Any],
    checks: Checks,
    deadline: Deadline,
) -> float | None:
    """`expect_matched`: read messages until one matches, the server
    closes, `max_body_bytes` were read or the budget is spent; the seconds
    it took to match, or None."""
    pattern = re.compile(expect)
    started = time.perf_counter()
    last, received = "", 0
    try:
        async with asyncio.timeout_at(deadline.loop_time()):
            while received <= config.max_body_bytes:
                message = await ws.receive()
                if message.type is aiohttp.WSMsgType.TEXT:
                    text = str(message.data)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    text = bytes(message.data).decode("utf-8", "replace")
                elif message.type is aiohttp.WSMsgType.ERROR:
                    why = first_line(message.data or ws.exception() or "error", 100)
                    checks.record("expect_matched", False, f"connection failed: {why}")
                    return None
                else:  # CLOSE, CLOSING, CLOSED
                    code = ws.close_code
                    checks.record(
                        "expect_matched",
                        False,
                        f"the server closed the connection (code {code}) before"
                        + (f" a match; last {last[:60]!r}" if last else " any message"),
                    )
                    return None
                received += len(text)
                if pattern.search(text):
                    checks.record("expect_matched", True, "reply matched")
                    return time.perf_counter() - started
                last = text.strip()
    except TimeoutError:
        pass
    seen = f"last {last[:60]!r}" if last else "no message arrived"
    if received > config.max_body_bytes:
        why = f"no match in {received} bytes (max_body_bytes); {seen}"
    else:
        why = f"no match within {deadline.budget:g}s; {seen}"
    checks.record("expect_matched", False, why)
    return None


async def _close(ws: aiohttp.ClientWebSocketResponse[Any]) -> None:
    """Say goodbye; aiohttp cuts the line when the server does not answer
    the close within `ws_close`."""
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        await ws.close()


async def probe(config: WebsocketConfig, ctx: ProbeContext) -> ProbeResult:
    """Upgrade once; optionally send a message and wait for a matching one."""
    checks = Checks(CHECKS, config)
    session = ctx.shared(SESSION_KEY, new_session)
    deadline = ctx.deadline
    started = time.perf_counter()
    try:
        ws = await _connect(session, config, deadline)
    except (aiohttp.WSServerHandshakeError, Redirected) as refused:
        # The server answered without upgrading: a finding, not an error.
        checks.record("upgrade_accepted", False, _refusal(refused))
        return ProbeResult(
            checks=checks.finish("not tried: the upgrade failed"),
            samples=(Sample("websocket_status_code", refused.status or 0),),
        )
    except (OSError, aiohttp.ClientError) as error:  # TimeoutError is an OSError
        raise ProbeError(
            f"the upgrade: {describe(error, deadline)}",
            samples=(Sample("websocket_status_code", 0),),
        ) from error
    handshake_seconds = time.perf_counter() - started
    samples = [
        Sample("websocket_status_code", 101),
        Sample("websocket_handshake_seconds", handshake_seconds),
    ]
    try:
        protocol = f", subprotocol {ws.protocol!r}" if ws.protocol else ""
        checks.record(
            "upgrade_accepted",
            True,
            f"101 Switching Protocols in {handshake_seconds:.3f}s{protocol}",
        )
        if config.send is not None:
            await ws.send_str(config.send)
        if config.expect is not None:
            reply_seconds = await _judge_reply(
                config, config.expect, ws, checks, deadline
            )
            if reply_seconds is not None:
                samples.append(Sample("websocket_reply_seconds", reply_seconds))
    finally:
        await _close(ws)
    return ProbeResult(checks=checks.finish(), samples=tuple(samples))
