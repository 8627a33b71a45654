"""The HTTP client of the http and workers kinds: one config model, one session,
one way to follow redirects and read bodies, so their rules cannot drift.

`HttpClientConfig` holds what both kinds send and how: headers, a bearer
token or basic auth (inline or `*_file`), `tls_config`, the body cap and the
redirect policy. `fetch()` follows redirects itself, so that configured
secrets never leave the configured origin, reads the body up to the cap,
and times each phase of a run:

    resolve 0.0003  connect 0.0021  processing 0.0120  transfer 0.0004
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, Self

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import Field, SecretStr, field_validator, model_validator
from yarl import URL

from exporter.probes.base import (
    BaseProbeConfig,
    ByteSize,
    Model,
    ProtocolError,
    TargetConfigError,
    first_line,
)
from exporter.probes.context import Deadline
from exporter.probes.shared.secrets import has_secret, resolve_secret
from exporter.probes.shared.tls import TlsClientConfig
from exporter.redact import redact

SESSION_KEY = ("http", "session")
PHASES = ("resolve", "connect", "processing", "transfer")
MAX_BODY_BYTES = 64 * 1024 * 1024
# As many hops as aiohttp follows by default.
MAX_REDIRECTS = 10
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_USER_AGENT = "readiness-exporter"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


# --- config ---------------------------------------------------------------------


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


class BasicAuth(Model):
    """HTTP basic auth; the password inline or read from a file each run."""

    SECRETS = ("password",)

    username: str
    password: SecretStr | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _has_password(self) -> Self:
        if not has_secret(self, "password"):
            raise ValueError("basic_auth needs password or password_file")
        return self


class HttpClientConfig(BaseProbeConfig):
    """What the http and workers kinds send, and how."""

    SECRETS = ("bearer_token",)
    RENAMED: ClassVar[dict[str, str]] = {
        name: f"tls_config.{name}"
        for name in (
            "ca_file",
            "cert_file",
            "key_file",
            "server_name",
            "insecure_skip_verify",
        )
    }

    headers: dict[str, SecretStr] = Field(default_factory=dict)
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    basic_auth: BasicAuth | None = None
    tls_config: TlsClientConfig = Field(default_factory=TlsClientConfig)
    max_body_bytes: ByteSize = Field(default=1_048_576, le=MAX_BODY_BYTES)
    follow_redirects: bool = True

    @field_validator("headers")
    @classmethod
    def _header_syntax(cls, headers: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if any(c in secret.get_secret_value() for c in "\r\n"):
                raise ValueError(f"the value of header {name!r} contains a newline")
        return headers

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if self.basic_auth is not None and has_secret(self, "bearer_token"):
            raise ValueError("use either basic_auth or a bearer token, not both")
        return self

    def has_credentials(self) -> bool:
        """Whether the probe authenticates (basic auth or a bearer token)."""
        return self.basic_auth is not None or has_secret(self, "bearer_token")

    def ssl(self) -> ssl.SSLContext | bool:
        """aiohttp's own default context, or the shared one for tls_config."""
        return self.tls_config.context() if self.tls_config.customised else True


# --- requests and redirects -------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One hop of a run: what is sent and where.

    `secret` holds what the config entrusts to the target (configured
    headers, the bearer token, basic auth); it never leaves the origin of
    the configured URL, so it is dropped for good at the first redirect to
    another origin, which includes any https -> http downgrade (the scheme
    is part of the origin). aiohttp would only strip Authorization, Cookie
    and Proxy-Authorization, and only on some hops. The configured
    `server_name` goes with it: it names the configured host.
    """

    method: str
    url: URL
    plain: Mapping[str, str]
    secret: Mapping[str, str]
    data: bytes | None = None
    server_name: str | None = None

    def redirected(self, status: int, location: URL) -> Request:
        """The next hop after a *status* redirect to *location*."""
        method, data = self.method, self.data
        # The method rewrites browsers (and aiohttp) apply to redirects.
        if (status == 303 and method != "HEAD") or (
            status in (301, 302) and method == "POST"
        ):
            method, data = "GET", None
        if location.origin() != self.url.origin():
            return Request(method, location, self.plain, {}, data, None)
        return replace(self, method=method, url=location, data=data)


async def request(
    config: HttpClientConfig,
    url: str,
    *,
    method: str = "GET",
    plain: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> Request:
    """The first hop to *url*, carrying the configured headers and
    credentials. *plain* headers are no secret and survive every hop; a
    configured `Origin` header joins them (the CORS check judges it)."""
    plain_headers = dict(plain or {})
    secret: dict[str, str] = {}
    for name, value in config.headers.items():
        if name.lower() == "origin":
            plain_headers = {
                k: v for k, v in plain_headers.items() if k.lower() != "origin"
            }
            plain_headers[name] = value.get_secret_value()
        else:
            secret[name] = value.get_secret_value()
    token = await resolve_secret(config, "bearer_token")
    if token:
        secret["Authorization"] = f"Bearer {token}"
    if config.basic_auth is not None:
        password = await resolve_secret(config.basic_auth, "password") or ""
        secret["Authorization"] = aiohttp.encode_basic_auth(
            config.basic_auth.username, password
        )
    return Request(
        method, URL(url), plain_headers, secret, data, config.tls_config.server_name
    )


class RedirectError(aiohttp.ClientError):
    """A redirect the probe will not follow: too many, or off http(s)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The final reply of a run, its body read up to the cap."""

    status: int
    headers: CIMultiDictProxy[str]
    url: URL
    redirects: int
    content_length: int | None
    body: bytes
    cut: bool
    charset: str | None

    @property
    def read(self) -> int:
        """Body bytes read: a cut body that was streamed means the cap + 1
        were read; one cut by its declared length was not read at all."""
        return len(self.body) + 1 if self.cut and self.body else len(self.body)

    def text(self) -> str:
        """The body as text, in its declared charset (UTF-8 otherwise)."""
        try:
            return self.body.decode(self.charset or "utf-8", "replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", "replace")


def _redirect_target(response: aiohttp.ClientResponse) -> URL | None:
    """Where a 3xx reply sends the client, or None if it is a final reply."""
    location = response.headers.get("Location")
    if response.status not in REDIRECT_STATUSES or not location:
        return None
    try:
        target = response.url.join(URL(location))
    except ValueError:  # yarl: a bad port, an unclosed [IPv6 bracket, ...
        raise RedirectError(
            f"HTTP {response.status} redirects to an invalid URL"
        ) from None
    if target.scheme not in ("http", "https") or not target.host:
        raise RedirectError(f"HTTP {response.status} redirects to a non-http(s) URL")
    return target


async def fetch(
    session: aiohttp.ClientSession,
    config: HttpClientConfig,
    first: Request,
    deadline: Deadline,
    timer: PhaseTimer | None = None,
) -> Reply:
    """The final reply to *first*, following redirects when the config says
    so (here rather than in aiohttp, so that secrets stay with their
    origin), each hop within what is left of *deadline*."""
    hop = first
    tls = config.ssl()
    for hops in range(MAX_REDIRECTS + 1):
        async with session.request(
            hop.method,
            hop.url,
            headers={**hop.plain, **hop.secret},
            data=hop.data,
            allow_redirects=False,
            ssl=tls,
            server_hostname=hop.server_name,
            timeout=aiohttp.ClientTimeout(total=deadline.remaining()),
            trace_request_ctx=timer,
        ) as response:
            target = _redirect_target(response) if config.follow_redirects else None
            if target is None:
                started = time.perf_counter()
                body, cut = await read_capped(response, config.max_body_bytes)
                if timer is not None:
                    timer.seconds["transfer"] = time.perf_counter() - started
                return Reply(
                    status=response.status,
                    headers=CIMultiDictProxy(CIMultiDict(response.headers)),
                    url=response.url,
                    redirects=hops,
                    content_length=response.content_length,
                    body=body,
                    cut=cut,
                    charset=response.charset,
                )
            status = response.status
        hop = hop.redirected(status, target)
    raise RedirectError(f"more than {MAX_REDIRECTS} redirects")


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


def describe(error: BaseException, deadline: Deadline) -> str:
    """Why a request got no reply, in one short line for people: a timeout
    as the budget it ran out of, anything else as its class and words.
    aiohttp's connector errors print the SSL context's repr (with a memory
    address) before their cause, which a cut message then loses; they are
    written as where and why instead:

        ClientConnectorSSLError: 127.0.0.1:8443: [SSL: ...] tlsv1 alert ...
    """
    if isinstance(error, TimeoutError):
        return f"no answer within {deadline.budget:g}s"
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = str(error.os_error) or type(error.os_error).__name__
        return first_line(f"{type(error).__name__}: {error.host}:{error.port}: {cause}")
    return first_line(error)


def translate_error(error: Exception, config: object) -> BaseException | None:
    """aiohttp's exceptions in the runner's terms. Socket, TLS and timeout
    errors are OSError, SSLError and TimeoutError subclasses already."""
    if isinstance(error, aiohttp.InvalidURL):
        return TargetConfigError(f"invalid URL: {error}")
    if isinstance(error, aiohttp.ClientError) and not isinstance(error, OSError):
        # Disconnected mid-reply, a malformed reply, a redirect loop.
        return ProtocolError(f"{type(error).__name__}: {error}")
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
