"""The http kind: one HTTP request, and a verdict on its reply.

Status, body regex, JSON conditions, latency p95 over a window of runs
(`latency.py`), browser security headers, CORS, the http->https redirect and rate-limit
headers each become a check. The config is in `config.py`, the verdicts in
`verdicts.py`, the presets in `presets.py`; the client (redirects, secrets,
body cap, phase timing) is shared with the workers kind. Sample output:

    readiness_http_status_code{probe="api"} 200
    readiness_http_duration_seconds{probe="api",phase="connect"} 0.0021
    readiness_http_latency_p95_seconds{probe="api"} 0.0154
"""

from __future__ import annotations

import time

import aiohttp

from exporter.probes.base import (
    Category,
    CheckDef,
    Checks,
    MetricSpec,
    ProbeError,
    ProbeResult,
    Reason,
    Sample,
    Severity,
)
from exporter.probes.context import Deadline, ProbeContext
from exporter.probes.http import verdicts
from exporter.probes.http.config import SECURITY_HEADERS, HttpConfig
from exporter.probes.http.latency import LatencyWindow
from exporter.probes.shared.conditions import CONDITION_CHECK
from exporter.probes.shared.httpclient import (
    SESSION_KEY,
    PhaseTimer,
    Reply,
    describe,
    fetch,
    new_session,
    request,
    translate_error,
)

__all__ = ["CHECKS", "METRICS", "HttpConfig", "probe", "translate_error"]

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
        "Content-Length of the final reply, or the body size when read in full;"
        " absent when a body without a declared length was cut.",
    ),
    MetricSpec(
        "http_body_read_bytes",
        "Body bytes actually read, at most max_body_bytes + 1.",
    ),
    MetricSpec(
        "http_latency_p95_seconds",
        "95th percentile of request latency over the latency window: the last"
        " latency_window runs within latency_window_age_max.",
    ),
    MetricSpec("http_redirects", "Redirects followed in the last run."),
)


def _header_check(header: str, meaning: str) -> CheckDef:
    return CheckDef(
        SECURITY_HEADERS[header],
        Category.SECURITY,
        Severity.WARNING,
        meaning,
        when=lambda config: header in config.security_header_names(),
    )


CHECKS = (
    CheckDef(
        "status_ok",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The final status matches `valid_status_codes` (2xx by default).",
    ),
    CheckDef(
        "body_matches",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The body matches `body_regex` (with `body_regex`).",
        when=lambda config: config.body_regex is not None,
    ),
    CONDITION_CHECK,
    CheckDef(
        "latency_p95",
        Category.PERFORMANCE,
        Severity.WARNING,
        "The p95 latency of the last `latency_window` runs within "
        "`latency_window_age_max` is at most `latency_p95_max` (with "
        "`latency_p95_max`).",
        threshold="latency_p95_max",
        when=lambda config: config.latency_p95_max is not None,
    ),
    _header_check("hsts", "Strict-Transport-Security with max-age > 0, over https."),
    _header_check("x_frame_options", "X-Frame-Options is DENY or SAMEORIGIN."),
    _header_check("x_content_type_options", "X-Content-Type-Options is nosniff."),
    _header_check("csp", "A Content-Security-Policy is enforced (not report-only)."),
    CheckDef(
        "cors_not_wildcard",
        Category.SECURITY,
        Severity.WARNING,
        "`Access-Control-Allow-Origin` is neither `*` nor the probe's foreign"
        " origin (with `cors_check`, on by default).",
        when=lambda config: config.cors_check,
    ),
    CheckDef(
        "https_redirect",
        Category.SECURITY,
        Severity.WARNING,
        "The plain-http URL answers 301/302/307/308 with an `https://` Location (with "
        "`redirect_https`).",
        when=lambda config: config.redirect_https,
    ),
    CheckDef(
        "rate_limit_headers",
        Category.SECURITY,
        Severity.INFO,
        "A `RateLimit-*` or `X-RateLimit-*` header is present (with "
        "`rate_limit_headers`).",
        when=lambda config: config.rate_limit_headers,
    ),
)


def _add_latency(ctx: ProbeContext, config: HttpConfig, seconds: float) -> list[float]:
    """The latency window, with this run's *seconds* in it."""
    return ctx.state(LatencyWindow).add(
        seconds,
        now=time.monotonic(),
        runs=config.latency_window,
        age_max=config.latency_window_age_max,
    )


def _origin(config: HttpConfig) -> str:
    for name, value in config.headers.items():
        if name.lower() == "origin":
            return value.get_secret_value()
    return verdicts.PROBE_ORIGIN


async def _judge_redirect(
    session: aiohttp.ClientSession, config: HttpConfig, deadline: Deadline
) -> tuple[bool, str]:
    """`https_redirect`: a second, bare request to the plain-http URL.

    It carries no configured headers or credentials: they must never travel
    over plain http.
    """
    url = config.plain_http_url()
    try:
        async with session.get(
            url,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=deadline.remaining()),
        ) as response:
            location = response.headers.get("Location", "")
            return verdicts.https_redirect(response.status, location)
    except (OSError, aiohttp.ClientError) as error:  # TimeoutError is an OSError
        return False, f"{url} gave no reply ({type(error).__name__})"


def _phase_samples(timer: PhaseTimer) -> list[Sample]:
    return [
        Sample.of("http_duration_seconds", seconds, phase=phase)
        for phase, seconds in timer.seconds.items()
    ]


def _samples(reply: Reply, timer: PhaseTimer, window: list[float]) -> list[Sample]:
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


async def probe(config: HttpConfig, ctx: ProbeContext) -> ProbeResult:
    """Request the target once (plus the plain-http URL if asked) and judge."""
    checks = Checks(CHECKS, config)
    session = ctx.shared(SESSION_KEY, new_session)
    timer = PhaseTimer()
    deadline = ctx.deadline
    started = time.perf_counter()
    first = await request(
        config,
        config.target(),
        method=config.method,
        plain={"Origin": verdicts.PROBE_ORIGIN} if config.cors_check else {},
        data=config.body.encode() if config.body is not None else None,
    )
    try:
        reply = await fetch(session, config, first, deadline, timer)
    except (OSError, aiohttp.ClientError) as error:
        # A run without a reply counts as slow as it was allowed to be, so
        # a flapping service cannot flatter its p95 by failing fast. The
        # samples still worth exporting travel with the failure; the runner
        # classifies the cause.
        window = _add_latency(ctx, config, deadline.budget)
        samples = (
            Sample.of("http_status_code", 0),
            *_phase_samples(timer),
            Sample.of("http_latency_p95_seconds", verdicts.p95(window)),
        )
        raise ProbeError(describe(error, deadline), samples=samples) from error
    latency = time.perf_counter() - started
    window = _add_latency(ctx, config, latency)
    checks.record(
        "status_ok", *verdicts.status_ok(reply.status, config.valid_status_codes)
    )
    verdicts.judge_body(config, reply, checks)
    for name, passed, why in await verdicts.judge_conditions_off_loop(config, reply):
        checks.record(name, passed, why)
    verdicts.judge_headers(config, reply, checks, _origin(config))
    if config.latency_p95_max is not None:
        checks.record(
            "latency_p95",
            *verdicts.latency_p95(
                window, config.latency_p95_max, config.latency_window_age_max
            ),
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
