"""The HTTP client parts that the http and workers probes share.

One aiohttp session for all of them (`ctx.shared(SESSION_KEY, new_session)`),
with per-phase timing; a body reader with a cap; the URL, header and TLS
settings both kinds validate the same way; the request budget below the
run's timeout. A run of either kind sees, per phase:

    resolve 0.0003  connect 0.0021  processing 0.0120  transfer 0.0004
"""

from __future__ import annotations

import re
import ssl
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from pydantic import SecretStr
from yarl import URL

from exporter.probes.secrets import read_secret_file
from exporter.probes.tlsclient import client_context
from exporter.redact import redact

__all__ = [
    "PHASES",
    "SESSION_KEY",
    "PhaseTimer",
    "bearer_token",
    "check_headers",
    "http_url",
    "new_session",
    "read_capped",
    "remaining_budget",
    "request_budget",
    "ssl_setting",
]

SESSION_KEY = ("http", "session")
PHASES = ("resolve", "connect", "processing", "transfer")
_USER_AGENT = "readiness-exporter"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


# --- config validation -----------------------------------------------------------


def http_url(value: str, *, credentials_field: str | None = None) -> str:
    """*value* if it is an http(s) URL with a host, else ValueError.

    With *credentials_field*, a `user:password@` in the URL is refused and
    the user is sent to that field: credentials in a URL end up in logs and
    travel wherever the URL is reused.
    """
    try:
        parsed = URL(value)
    except ValueError:
        raise ValueError(f"{redact(value)!r} is not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(
            f"{redact(value)!r} is not an http(s) URL: it must be http:// or"
            " https:// with a host, e.g. http://127.0.0.1:3001/path"
        )
    if credentials_field and (parsed.user is not None or parsed.password):
        # Never echo the URL: its password is the problem.
        raise ValueError(
            f"the URL carries credentials (user:password@); remove them and"
            f" set {credentials_field} instead"
        )
    return value


def check_headers(headers: dict[str, SecretStr]) -> dict[str, SecretStr]:
    """*headers* if every name is a token and no value has a newline."""
    for name, secret in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if any(c in secret.get_secret_value() for c in "\r\n"):
            raise ValueError(f"the value of header {name!r} contains a newline")
    return headers


# --- per-run settings -------------------------------------------------------------


def request_budget(timeout: float) -> float:
    """Seconds the HTTP requests of a run may take.

    Below the runner's timeout, so a slow reply ends as an error of ours
    (naming the endpoint, keeping the samples) rather than a cancellation.
    """
    return timeout - min(0.5, timeout * 0.1)


def ssl_setting(
    *,
    ca_file: Path | None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    insecure_skip_verify: bool = False,
) -> ssl.SSLContext | bool:
    """aiohttp's own default context, or the shared one for these fields."""
    if not (ca_file or cert_file or insecure_skip_verify):
        return True
    return client_context(
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        insecure_skip_verify=insecure_skip_verify,
    )


async def bearer_token(token: SecretStr | None, token_file: Path | None) -> str | None:
    """The token given inline or read (again, for rotation) from its file.

    An empty inline token (`bearer_token: ${VAR:-}`) counts as none, as an
    empty password does; an empty file is a config error of the target.
    """
    if token_file is not None:
        return await read_secret_file(token_file, "bearer_token_file")
    if token is not None and token.get_secret_value():
        return token.get_secret_value()
    return None


# --- phase timing and the session ----------------------------------------------


class PhaseTimer:
    """Seconds per phase of one run, filled by aiohttp's trace callbacks."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._connect_started: float | None = None
        self._resolve_started: float | None = None
        self._resolve_in_connect = 0.0
        self._request_sent: float | None = None

    def connect_started(self) -> None:
        self._connect_started = time.perf_counter()
        self._resolve_in_connect = 0.0

    def resolve_started(self) -> None:
        self._resolve_started = time.perf_counter()

    def resolve_ended(self) -> None:
        if self._resolve_started is not None:
            spent = time.perf_counter() - self._resolve_started
            self.seconds["resolve"] += spent
            self._resolve_in_connect += spent
            self._resolve_started = None

    def connect_ended(self) -> None:
        # aiohttp resolves inside connection creation; keep the phases apart.
        if self._connect_started is not None:
            spent = time.perf_counter() - self._connect_started
            self.seconds["connect"] += max(0.0, spent - self._resolve_in_connect)
            self._connect_started = None

    def request_sent(self) -> None:
        self._request_sent = time.perf_counter()

    def response_started(self) -> None:
        if self._request_sent is not None:
            self.seconds["processing"] += time.perf_counter() - self._request_sent
            self._request_sent = None


def _timer_callback(method: str) -> Any:
    async def callback(
        session: aiohttp.ClientSession, trace_ctx: SimpleNamespace, params: object
    ) -> None:
        # Requests made without a timer (workers) are not timed.
        timer = trace_ctx.trace_request_ctx
        if isinstance(timer, PhaseTimer):
            getattr(timer, method)()

    return callback


def _trace_config() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_start.append(_timer_callback("connect_started"))
    trace.on_connection_create_end.append(_timer_callback("connect_ended"))
    trace.on_dns_resolvehost_start.append(_timer_callback("resolve_started"))
    trace.on_dns_resolvehost_end.append(_timer_callback("resolve_ended"))
    trace.on_request_headers_sent.append(_timer_callback("request_sent"))
    trace.on_request_redirect.append(_timer_callback("response_started"))
    trace.on_request_end.append(_timer_callback("response_started"))
    return trace


def new_session() -> aiohttp.ClientSession:
    """The one session of all http and workers probes.

    No keep-alive (every run pays DNS, connect and TLS again, as a fresh
    client would, and the phases are measured), no DNS cache, no connection
    limit (probes must never queue behind each other), no cookie jar
    (cookies must not travel between probes) and no proxy variables.
    """
    connector = aiohttp.TCPConnector(force_close=True, limit=0, use_dns_cache=False)
    return aiohttp.ClientSession(
        connector=connector,
        trace_configs=[_trace_config()],
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": _USER_AGENT},
        trust_env=False,
    )


async def read_capped(
    response: aiohttp.ClientResponse, limit: int
) -> tuple[bytes, bool]:
    """The body up to *limit* bytes, and whether there was more.

    A declared Content-Length over the cap is not read at all (empty body);
    otherwise at most *limit* + 1 bytes are read, the one extra telling that
    the body goes on.
    """
    declared = response.content_length
    if declared is not None and declared > limit:
        return b"", True
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await response.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit], size > limit


def remaining_budget(deadline: float) -> float:
    """Seconds left before *deadline* (a `time.perf_counter()` value).

    A spent budget raises TimeoutError: aiohttp reads a total of zero or
    less as no timeout at all.
    """
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        raise TimeoutError
    return remaining
