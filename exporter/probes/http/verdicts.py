"""Verdicts of the http kind that need only a reply, not a connection.

Each function takes what a response carried (status, headers, body) and
returns `(passed, detail)` for one check, so the probe stays about I/O and
these rules can be read (and changed) on their own:

    status_ok                 True   "HTTP 200"
    hsts_header               False  "Strict-Transport-Security missing"
    cors_not_wildcard         False  "Access-Control-Allow-Origin is *"
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from exporter.probes.base import Checks, format_duration
from exporter.probes.http.config import SECURITY_HEADERS, HttpConfig
from exporter.probes.shared import conditions
from exporter.probes.shared.httpclient import Reply
from exporter.redact import redact

# The foreign origin the probe claims to come from; `.invalid` can never be a
# real site (RFC 2606), so a server that grants it grants anyone.
PROBE_ORIGIN = "https://readiness-probe.invalid"

_MAX_AGE = re.compile(r"(?:^|;)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
Verdict = tuple[bool, str]


# --- status codes ------------------------------------------------------------


def status_allowed(status: int, patterns: Iterable[int | str]) -> bool:
    """Whether *status* matches one of the validated *patterns*."""
    for pattern in patterns:
        text = str(pattern).strip().lower()
        if text.endswith("xx") and str(status)[0] == text[0]:
            return True
        if text == str(status):
            return True
    return False


def status_ok(status: int, patterns: Iterable[int | str]) -> Verdict:
    """`status_ok`: the final status is one of the expected ones."""
    allowed = list(patterns)
    if status_allowed(status, allowed):
        return True, f"HTTP {status}"
    wanted = ", ".join(str(p) for p in allowed)
    return False, f"HTTP {status}, wanted {wanted}"


# --- body ----------------------------------------------------------------------


def body_too_large(limit: int) -> str:
    """The detail of every body check when the body was cut off."""
    return f"body larger than {limit} bytes (max_body_bytes); not checked"


def body_matches(text: str, pattern: re.Pattern[str]) -> Verdict:
    """`body_matches`: the body contains a match of `body_regex`."""
    if pattern.search(text):
        return True, "body matches"
    shown = text.strip().replace("\n", " ")[:60]
    return False, f"body {shown!r} does not match {pattern.pattern[:60]!r}"


def parse_json(body: bytes) -> tuple[Any, str]:
    """The JSON document in *body*, or `(None, why not)`."""
    if not body.strip():
        return None, "body is empty, conditions need JSON"
    try:
        return json.loads(body), ""
    except UnicodeDecodeError:
        return None, "body is not UTF-8 text, conditions need JSON"
    except json.JSONDecodeError as error:
        return None, f"body is not JSON ({error.msg} at char {error.pos})"
    except RecursionError:
        return None, "body is JSON nested too deep to read (about 1,000 levels)"


# --- headers ---------------------------------------------------------------------


def hsts(headers: Mapping[str, str], scheme: str) -> Verdict:
    """`hsts_header`: HSTS with a positive max-age, on an https reply."""
    value = headers.get("Strict-Transport-Security")
    if value is None:
        return False, "Strict-Transport-Security missing"
    if scheme != "https":
        return False, "HSTS sent over plain http, where browsers ignore it"
    match = _MAX_AGE.search(value)
    if match is None or int(match.group(1)) <= 0:
        return False, f"Strict-Transport-Security {value[:60]!r} has no max-age > 0"
    return True, f"max-age={match.group(1)}"


def x_frame_options(headers: Mapping[str, str]) -> Verdict:
    """`x_frame_options_header`: DENY or SAMEORIGIN."""
    value = headers.get("X-Frame-Options")
    if value is None:
        return False, "X-Frame-Options missing"
    if value.strip().upper() in ("DENY", "SAMEORIGIN"):
        return True, value.strip().upper()
    return False, f"X-Frame-Options is {value[:40]!r}, wanted DENY or SAMEORIGIN"


def x_content_type_options(headers: Mapping[str, str]) -> Verdict:
    """`x_content_type_options_header`: nosniff."""
    value = headers.get("X-Content-Type-Options")
    if value is None:
        return False, "X-Content-Type-Options missing"
    if value.strip().lower() == "nosniff":
        return True, "nosniff"
    return False, f"X-Content-Type-Options is {value[:40]!r}, wanted nosniff"


def content_security_policy(headers: Mapping[str, str]) -> Verdict:
    """`csp_header`: an enforced (not report-only) policy is present."""
    value = headers.get("Content-Security-Policy", "").strip()
    if value:
        return True, f"{len(value)} characters of policy"
    if headers.get("Content-Security-Policy-Report-Only"):
        return False, "only Content-Security-Policy-Report-Only, nothing enforced"
    return False, "Content-Security-Policy missing"


def security_header(name: str, headers: Mapping[str, str], scheme: str) -> Verdict:
    """The verdict of the security header called *name* in config."""
    if name == "hsts":
        return hsts(headers, scheme)
    if name == "x_frame_options":
        return x_frame_options(headers)
    if name == "x_content_type_options":
        return x_content_type_options(headers)
    return content_security_policy(headers)


def cors_not_wildcard(headers: Mapping[str, str], origin: str) -> Verdict:
    """`cors_not_wildcard`: a foreign *origin* is not granted access."""
    granted = headers.get("Access-Control-Allow-Origin")
    if granted is None:
        return True, "no Access-Control-Allow-Origin for a foreign origin"
    if granted.strip() == "*":
        return False, "Access-Control-Allow-Origin is * (any site may read it)"
    if granted.strip().rstrip("/") == origin.rstrip("/"):
        return False, "Access-Control-Allow-Origin echoes a foreign origin"
    return True, "foreign origin not granted"


def rate_limit_headers(headers: Mapping[str, str]) -> Verdict:
    """`rate_limit_headers`: RateLimit-* or X-RateLimit-* present."""
    found = sorted(
        {
            name
            for name in headers
            if name.lower().startswith(("ratelimit", "x-ratelimit"))
        }
    )
    if found:
        return True, ", ".join(found)[:100]
    return False, "no RateLimit-* or X-RateLimit-* header"


def https_redirect(status: int, location: str) -> Verdict:
    """`https_redirect`: the plain-http reply redirects to an https URL."""
    if status not in (301, 302, 307, 308):
        return False, f"plain http answered HTTP {status}, not a redirect"
    if not location.lower().startswith("https://"):
        # Redacted before it is cut: a cut could hide a password's `@`.
        shown = redact(location)[:80] or "nothing"
        return False, f"HTTP {status} redirects to {shown!r}, not https"
    return True, f"HTTP {status} to https"


# --- latency ------------------------------------------------------------------------


def p95(values: Iterable[float]) -> float:
    """Nearest-rank 95th percentile (the slowest run when there are few)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = math.ceil(0.95 * len(ordered))
    return ordered[rank - 1]


def latency_p95(
    window: list[float], target: float, age_max: float | None = None
) -> Verdict:
    """`latency_p95`: the p95 over the window (runs at most *age_max* old)
    is at most *target*; a failure counts the runs that were slower."""
    value = p95(window)
    runs = f"{len(window)} run" + ("" if len(window) == 1 else "s")
    within = f" within {format_duration(age_max)}" if age_max is not None else ""
    detail = f"p95 {value:.3f}s over {runs}{within}, target {target:g}s"
    if value <= target:
        return True, detail
    slower = sum(1 for seconds in window if seconds > target)
    return False, f"{detail}; {slower} of {len(window)} slower"


# --- a whole reply -------------------------------------------------------------------


def judge_body(config: HttpConfig, reply: Reply, checks: Checks) -> None:
    """Record `body_matches`."""
    if config.body_regex is None:
        return
    if reply.cut:
        checks.record("body_matches", False, body_too_large(config.max_body_bytes))
        return
    pattern = re.compile(config.body_regex, re.MULTILINE)
    checks.record("body_matches", *body_matches(reply.text(), pattern))


def judge_conditions(config: HttpConfig, reply: Reply) -> list[tuple[str, bool, str]]:
    """(check, passed, detail) of every `condition_<name>`: the body parsed
    as JSON once, every condition judged on it."""
    if not config.conditions:
        return []
    if reply.cut:
        why = body_too_large(config.max_body_bytes)
    else:
        document, why = parse_json(reply.body)
        if not why:
            return conditions.judge(config.conditions, document)
    return [(f"condition_{c.name}", False, why) for c in config.conditions]


async def judge_conditions_off_loop(
    config: HttpConfig, reply: Reply
) -> list[tuple[str, bool, str]]:
    """`judge_conditions`, in a thread when a CEL condition reads a reply
    over `CEL_IN_THREAD_BYTES` (converting it for CEL is not free)."""
    if reply.read > conditions.CEL_IN_THREAD_BYTES and any(
        c.cel is not None for c in config.conditions
    ):
        return await asyncio.to_thread(judge_conditions, config, reply)
    return judge_conditions(config, reply)


def judge_headers(
    config: HttpConfig, reply: Reply, checks: Checks, origin: str
) -> None:
    """Record the security header, CORS and rate-limit checks asked for."""
    for name in config.security_header_names():
        verdict = security_header(name, reply.headers, reply.url.scheme)
        checks.record(SECURITY_HEADERS[name], *verdict)
    if config.cors_check:
        checks.record("cors_not_wildcard", *cors_not_wildcard(reply.headers, origin))
    if config.rate_limit_headers:
        checks.record("rate_limit_headers", *rate_limit_headers(reply.headers))
