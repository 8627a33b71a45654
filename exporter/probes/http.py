"""Probe that sends one HTTP request and judges the reply.

Status, body regex, JSON conditions, latency p95 over a window of runs,
browser security headers, CORS, the http->https redirect and rate-limit
headers each become a check. Sample output:

    readiness_http_status_code{probe="api"} 200
    readiness_http_duration_seconds{probe="api",phase="connect"} 0.0021
    readiness_http_latency_p95_seconds{probe="api"} 0.0154
"""

from __future__ import annotations

import re
import ssl
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import aiohttp
from pydantic import Field, SecretStr, field_validator, model_validator
from yarl import URL

from exporter.jsonpath import parse_condition
from exporter.probes import http_checks as verdicts
from exporter.probes.base import (
    BaseProbeConfig,
    Checks,
    CheckSpec,
    Duration,
    MetricSpec,
    Model,
    ProbeError,
    ProbeResult,
    Reason,
    Sample,
    first_line,
)
from exporter.probes.context import ProbeContext
from exporter.probes.http_presets import PresetName, apply_preset
from exporter.probes.httpclient import (
    SESSION_KEY,
    PhaseTimer,
    bearer_token,
    check_headers,
    http_url,
    new_session,
    read_capped,
    remaining_budget,
    request_budget,
    ssl_setting,
)
from exporter.probes.secrets import read_secret_file
from exporter.redact import redact

METRICS = (
    MetricSpec("http_status_code", "Final HTTP status of the last run; 0 if none."),
    MetricSpec(
        "http_duration_seconds",
        "Time per phase of the last run, summed over redirects: resolve, connect"
        " (TCP and TLS), processing (request sent to response headers), transfer"
        " (reading the body).",
        labels=("phase",),
    ),
    MetricSpec(
        "http_content_length_bytes",
        "Content-Length of the final reply, or the body size when read in full.",
    ),
    MetricSpec(
        "http_body_read_bytes",
        "Body bytes actually read, at most max_body_bytes + 1.",
    ),
    MetricSpec(
        "http_latency_p95_seconds",
        "95th percentile of request latency over the last latency_window runs.",
    ),
    MetricSpec("http_redirects", "Redirects followed in the last run."),
)

# As many hops as aiohttp follows by default.
_MAX_REDIRECTS = 10
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)

SecurityHeader = Literal["hsts", "x_frame_options", "x_content_type_options", "csp"]


# --- config -------------------------------------------------------------------


def _any_2xx() -> list[int | str]:
    return ["2xx"]


class NamedCondition(Model):
    """A JSON condition with the name of its check (`condition_<name>`)."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,60}$")
    condition: str

    @field_validator("condition")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_condition(value)
        return value


class BasicAuth(Model):
    """HTTP basic auth; the password inline or read from a file each run."""

    username: str
    password: SecretStr | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuth:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("basic_auth needs exactly one of password, password_file")
        return self


class HttpConfig(BaseProbeConfig):
    """One request and what its reply must look like."""

    kind: Literal["http"] = "http"
    preset: PresetName | None = None
    url: str
    path: str | None = None
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    body: str | None = None
    valid_status_codes: list[int | str] = Field(default_factory=_any_2xx)
    body_regex: str | None = None
    conditions: list[NamedCondition] = Field(default_factory=list)
    latency_target: Duration | None = None
    latency_window: int = Field(default=20, ge=1, le=1000)
    security_headers: bool | list[SecurityHeader] = True
    cors_check: bool = True
    redirect_https: bool = False
    redirect_https_url: str | None = None
    rate_limit_headers: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False
    server_name: str | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1, le=268_435_456)
    follow_redirects: bool = True
    basic_auth: BasicAuth | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None

    _presets = model_validator(mode="before")(apply_preset)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url", "redirect_https_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return (
            None if value is None else http_url(value, credentials_field="basic_auth")
        )

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"path {value!r} must start with /")
        return value

    @field_validator("headers")
    @classmethod
    def _header_syntax(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return check_headers(value)

    @field_validator("valid_status_codes")
    @classmethod
    def _status_patterns(cls, value: list[int | str]) -> list[int | str]:
        if not value:
            raise ValueError('list at least one status, e.g. ["2xx"]')
        for index, pattern in enumerate(value):
            problem = verdicts.status_pattern_error(pattern)
            if problem:
                raise ValueError(
                    f"item {index}: {problem}; write a code (200, 204) or a"
                    ' class ("2xx", "3xx")'
                )
        return value

    @field_validator("body_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"invalid regular expression: {error}") from None
        return value

    @field_validator("conditions", mode="before")
    @classmethod
    def _name_plain_conditions(cls, value: Any) -> Any:
        # A plain string gets its position as name, so `condition_0` stays
        # stable until someone reorders the list (named ones never move).
        if not isinstance(value, list):
            return value
        return [
            {"name": str(index), "condition": item} if isinstance(item, str) else item
            for index, item in enumerate(value)
        ]

    @field_validator("conditions")
    @classmethod
    def _unique_names(cls, value: list[NamedCondition]) -> list[NamedCondition]:
        names = [c.name for c in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"condition names {duplicates} are used more than once")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpConfig:
        if self.path is not None and URL(self.url).query_string:
            raise ValueError("with path (or a preset) url must not have a ?query")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate)")
        if self.basic_auth is not None and self.has_bearer_token():
            raise ValueError("use either basic_auth or a bearer token, not both")
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ValueError("use either bearer_token or bearer_token_file, not both")
        plain_url = URL(self.url).scheme != "https"
        if self.redirect_https and self.redirect_https_url is None and plain_url:
            raise ValueError(
                "redirect_https checks that http:// redirects to https://,"
                " so url must be https:// (or set redirect_https_url)"
            )
        return self

    def has_bearer_token(self) -> bool:
        """Whether a token is configured; an empty inline one counts as none."""
        inline = self.bearer_token is not None and self.bearer_token.get_secret_value()
        return bool(inline) or self.bearer_token_file is not None

    def has_credentials(self) -> bool:
        return self.basic_auth is not None or self.has_bearer_token()

    def target(self) -> str:
        """The URL requested: `url`, plus `path` when one is set."""
        if self.path is None:
            return self.url
        return self.url.rstrip("/") + self.path

    def security_header_names(self) -> tuple[str, ...]:
        """Config names of the security headers to check."""
        if self.security_headers is True:
            return tuple(verdicts.SECURITY_HEADERS)
        if self.security_headers is False:
            return ()
        return tuple(h for h in verdicts.SECURITY_HEADERS if h in self.security_headers)

    def plain_http_url(self) -> str:
        """Where the https redirect is tried: the target on http, port 80."""
        if self.redirect_https_url is not None:
            return self.redirect_https_url
        https = URL(self.target())
        # No userinfo: whatever it holds must never travel over plain http.
        return str(https.with_scheme("http").with_port(None).with_user(None))


# --- plan ---------------------------------------------------------------------


def plan(config: HttpConfig) -> list[CheckSpec]:
    """`status_ok` always; the other checks when the config asks for them."""
    body = ["body_matches"] if config.body_regex is not None else []
    latency = ["latency_p95"] if config.latency_target is not None else []
    headers = [verdicts.SECURITY_HEADERS[h] for h in config.security_header_names()]
    switches = {
        "cors_not_wildcard": config.cors_check,
        "https_redirect": config.redirect_https,
        "rate_limit_headers": config.rate_limit_headers,
    }
    return [
        *(verdicts.SPECS[name] for name in ("status_ok", *body)),
        *(verdicts.condition_spec(c.name, c.condition) for c in config.conditions),
        *(verdicts.SPECS[name] for name in (*latency, *headers)),
        *(verdicts.SPECS[name] for name, on in switches.items() if on),
    ]


# --- state between runs ------------------------------------------------------


class LatencyWindow:
    """Latencies of this probe's last runs that got a reply."""

    def __init__(self) -> None:
        self.values: deque[float] = deque(maxlen=20)

    def add(self, seconds: float, size: int) -> list[float]:
        if self.values.maxlen != size:
            self.values = deque(self.values, maxlen=size)
        self.values.append(seconds)
        return list(self.values)


# --- the request --------------------------------------------------------------


async def _basic_auth(config: HttpConfig) -> str | None:
    """The Authorization value for basic_auth, if set."""
    auth = config.basic_auth
    if auth is None:
        return None
    if auth.password_file is not None:
        password = await read_secret_file(
            auth.password_file, "basic_auth.password_file"
        )
    else:
        password = auth.password.get_secret_value() if auth.password else ""
    return aiohttp.encode_basic_auth(auth.username, password)


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", "replace")


def _no_reply_reason(error: BaseException) -> Reason:
    """The runner's reason for *error*; ours to pick only because the error
    travels as a ProbeError, which carries the samples of the failed run."""
    if isinstance(error, TimeoutError):
        return Reason.TIMEOUT
    if isinstance(error, ssl.SSLError | ssl.CertificateError):
        return Reason.TLS
    if isinstance(error, aiohttp.InvalidURL):
        return Reason.CONFIG
    if isinstance(error, OSError):
        return Reason.CONNECT
    return Reason.PROTOCOL  # disconnected mid-reply, malformed reply, loops


def _phase_samples(timer: PhaseTimer) -> list[Sample]:
    return [
        Sample.of("http_duration_seconds", seconds, phase=phase)
        for phase, seconds in timer.seconds.items()
    ]


@dataclass(frozen=True)
class _Request:
    """One hop of a run: what is sent and where.

    `secret` holds what the config entrusts to the target (configured
    headers, the bearer token, basic auth); it never leaves the origin of
    `url` in the config, so it is dropped for good at the first redirect to
    another origin, which includes any https -> http downgrade (the scheme
    is part of the origin). aiohttp would only strip Authorization, Cookie
    and Proxy-Authorization, and only on some hops.
    """

    method: str
    url: URL
    plain: dict[str, str]
    secret: dict[str, str]
    data: bytes | None
    server_name: str | None

    def redirected(self, status: int, location: URL) -> _Request:
        method, data = self.method, self.data
        # The method rewrites browsers (and aiohttp) apply to redirects.
        if (status == 303 and method != "HEAD") or (
            status in (301, 302) and method == "POST"
        ):
            method, data = "GET", None
        if location.origin() != self.url.origin():
            return _Request(method, location, self.plain, {}, data, None)
        return replace(self, method=method, url=location, data=data)


class RedirectError(aiohttp.ClientError):
    """A redirect the probe will not follow: too many, or off http(s)."""


async def _first_request(config: HttpConfig) -> _Request:
    plain = {"Origin": verdicts.PROBE_ORIGIN} if config.cors_check else {}
    secret = {}
    for name, value in config.headers.items():
        # A configured Origin is what the CORS check judges: it must stay
        # the same on every hop, and it is no secret.
        if name.lower() == "origin":
            plain = {name: value.get_secret_value()}
        else:
            secret[name] = value.get_secret_value()
    token = await bearer_token(config.bearer_token, config.bearer_token_file)
    if token:
        secret["Authorization"] = f"Bearer {token}"
    basic = await _basic_auth(config)
    if basic is not None:
        secret["Authorization"] = basic
    return _Request(
        method=config.method,
        url=URL(config.target()),
        plain=plain,
        secret=secret,
        data=config.body.encode() if config.body is not None else None,
        server_name=config.server_name,
    )


def _redirect_target(response: aiohttp.ClientResponse) -> URL | None:
    """Where a 3xx reply sends the client, or None if it is a final reply."""
    location = response.headers.get("Location")
    if response.status not in _REDIRECT_STATUSES or not location:
        return None
    target = response.url.join(URL(location))
    if target.scheme not in ("http", "https") or not target.host:
        raise RedirectError(f"HTTP {response.status} redirects to a non-http(s) URL")
    return target


async def _reply(
    response: aiohttp.ClientResponse, config: HttpConfig, timer: PhaseTimer, hops: int
) -> verdicts.Reply:
    started = time.perf_counter()
    body, cut = await read_capped(response, config.max_body_bytes)
    timer.seconds["transfer"] = time.perf_counter() - started
    # A cut body that was streamed means max_body_bytes + 1 bytes were
    # read; one cut by its declared length was not read at all.
    read = len(body) + 1 if cut and body else len(body)
    return verdicts.Reply(
        status=response.status,
        headers=response.headers,
        scheme=response.url.scheme,
        redirects=hops,
        content_length=response.content_length,
        body=body,
        read=read,
        cut=cut,
        text=_decode(body, response.charset),
    )


async def _fetch(
    session: aiohttp.ClientSession,
    config: HttpConfig,
    timer: PhaseTimer,
    deadline: float,
) -> verdicts.Reply:
    """The final reply, following redirects here rather than in aiohttp, so
    that the configured secrets stay with the configured origin."""
    request = await _first_request(config)
    tls = ssl_setting(
        ca_file=config.ca_file,
        cert_file=config.cert_file,
        key_file=config.key_file,
        insecure_skip_verify=config.insecure_skip_verify,
    )
    for hops in range(_MAX_REDIRECTS + 1):
        async with session.request(
            request.method,
            request.url,
            headers={**request.plain, **request.secret},
            data=request.data,
            allow_redirects=False,
            ssl=tls,
            server_hostname=request.server_name,
            timeout=aiohttp.ClientTimeout(total=remaining_budget(deadline)),
            trace_request_ctx=timer,
        ) as response:
            target = _redirect_target(response) if config.follow_redirects else None
            if target is None:
                return await _reply(response, config, timer, hops)
            status = response.status
        request = request.redirected(status, target)
    raise RedirectError(f"more than {_MAX_REDIRECTS} redirects")


def _origin(config: HttpConfig) -> str:
    for name, value in config.headers.items():
        if name.lower() == "origin":
            return value.get_secret_value()
    return verdicts.PROBE_ORIGIN


async def _judge_redirect(
    session: aiohttp.ClientSession, config: HttpConfig, deadline: float
) -> tuple[bool, str]:
    """`https_redirect`: a second, bare request to the plain-http URL.

    It carries no configured headers or credentials: they must never travel
    over plain http.
    """
    url = config.plain_http_url()
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        return False, "no time left for the plain-http request"
    try:
        async with session.get(
            url,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=remaining),
        ) as response:
            location = response.headers.get("Location", "")
            return verdicts.https_redirect(response.status, redact(location))
    except (OSError, aiohttp.ClientError) as error:  # TimeoutError is an OSError
        return False, f"{redact(url)} gave no reply ({type(error).__name__})"


def _samples(
    reply: verdicts.Reply, timer: PhaseTimer, window: list[float]
) -> list[Sample]:
    samples = [
        Sample.of("http_status_code", reply.status),
        *_phase_samples(timer),
        Sample.of("http_body_read_bytes", reply.read),
        Sample.of("http_latency_p95_seconds", verdicts.p95(window)),
        Sample.of("http_redirects", reply.redirects),
    ]
    length = reply.content_length
    if length is None and not reply.cut:
        length = reply.read
    if length is not None:
        samples.append(Sample.of("http_content_length_bytes", length))
    return samples


def _auth_refused(config: HttpConfig, status: int) -> bool:
    return (
        config.has_credentials()
        and status in (401, 403)
        and not verdicts.status_allowed(status, config.valid_status_codes)
    )


def _no_reply(
    config: HttpConfig, error: BaseException, timer: PhaseTimer, window: list[float]
) -> ProbeError:
    """The failure of a run that got no reply, with the samples still worth
    exporting: status code 0, the phases that did happen, the p95."""
    reason = _no_reply_reason(error)
    text = first_line(error)
    if reason is Reason.TIMEOUT:
        text = f"no answer within {request_budget(config.timeout):g}s"
    samples = (
        Sample.of("http_status_code", 0),
        *_phase_samples(timer),
        Sample.of("http_latency_p95_seconds", verdicts.p95(window)),
    )
    return ProbeError(redact(text), reason=reason, samples=samples)


async def probe(config: HttpConfig, ctx: ProbeContext) -> ProbeResult:
    """Request the target once (plus the plain-http URL if asked) and judge."""
    checks = Checks(plan(config))
    session = ctx.shared(SESSION_KEY, new_session)
    latencies = ctx.state(LatencyWindow)
    timer = PhaseTimer()
    started = time.perf_counter()
    budget = request_budget(config.timeout)
    deadline = started + budget
    try:
        reply = await _fetch(session, config, timer, deadline)
    except (OSError, aiohttp.ClientError) as error:
        # A run without a reply counts as slow as it was allowed to be, so
        # a flapping service cannot flatter its p95 by failing fast.
        window = latencies.add(budget, config.latency_window)
        raise _no_reply(config, error, timer, window) from error
    latency = time.perf_counter() - started
    window = latencies.add(latency, config.latency_window)
    checks.record(
        "status_ok", *verdicts.status_ok(reply.status, config.valid_status_codes)
    )
    verdicts.judge_body(config, reply, checks)
    verdicts.judge_headers(config, reply, checks, _origin(config))
    if config.latency_target is not None:
        checks.record(
            "latency_p95", *verdicts.latency_p95(window, config.latency_target)
        )
    if config.redirect_https:
        checks.record(
            "https_redirect", *await _judge_redirect(session, config, deadline)
        )
    refused = _auth_refused(config, reply.status)
    return ProbeResult(
        checks=checks.finish(),
        samples=tuple(_samples(reply, timer, window)),
        reason=Reason.AUTH if refused else None,
        error=f"HTTP {reply.status} with the configured credentials" if refused else "",
    )
