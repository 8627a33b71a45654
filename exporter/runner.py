"""Run one probe once: the only place that catches broadly.

The runner gives the run its deadline (`ctx.deadline`), times it, enforces
the hard timeout and turns whatever went wrong into one `Reason` of a
closed set: a `ProbeError`'s own reason, else the kind's translation of a
driver's exception (`translate_error` in the table of kinds), else the
exception's class. A probe that raises costs that probe its result and
nothing else. Failures are logged by the scheduler when a probe's state
changes, not on every run. Check overrides from the config (category,
severity, disabled checks) are applied here, once, for every kind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time

from exporter.kinds import ProbeKind, kind_of
from exporter.probes.base import (
    BaseProbeConfig,
    Check,
    ProbeError,
    ProbeResult,
    Reason,
    Severity,
    first_line,
)
from exporter.probes.context import Deadline, ProbeContext
from exporter.redact import redact

logger = logging.getLogger(__name__)


def classify(error: BaseException) -> Reason:
    """The reason of an exception no kind translated."""
    # Order matters: TimeoutError and SSLError are both OSError subclasses.
    if isinstance(error, TimeoutError):
        return Reason.TIMEOUT
    if isinstance(error, ProbeError) and error.instance_reason is not None:
        return error.instance_reason
    if isinstance(error, ssl.SSLError | ssl.CertificateError):
        return Reason.TLS
    if isinstance(error, OSError):
        return Reason.CONNECT
    if isinstance(error, ProbeError):
        return Reason.PROTOCOL
    return Reason.INTERNAL


def explain(
    error: BaseException, kind: ProbeKind, config: BaseProbeConfig
) -> tuple[Reason, str]:
    """Why a run failed: its reason and a one-line text for people.

    A `ProbeError` keeps its own words; without a reason of its own it
    takes the reason of the exception it was raised from. A driver's
    exception is first translated by its kind.
    """
    text = first_line(error)
    if isinstance(error, ProbeError):
        if error.instance_reason is None and isinstance(error.__cause__, Exception):
            return explain(error.__cause__, kind, config)[0], text
        return classify(error), text
    if isinstance(error, Exception) and kind.translate_error is not None:
        translated = kind.translate_error(error, config)
        if translated is not None:
            return classify(translated), first_line(translated)
    return classify(error), text


def apply_overrides(
    config: BaseProbeConfig, checks: tuple[Check, ...]
) -> tuple[Check, ...]:
    """Apply the probe's `category` and per-check overrides; drop disabled."""
    adjusted = []
    for check in checks:
        override = config.checks.get(check.name)
        if override is not None and not override.enabled:
            continue
        category = (
            (override.category if override else None)
            or config.category
            or check.category
        )
        severity = (override.severity if override else None) or check.severity
        if category != check.category or severity != check.severity:
            check = dataclasses.replace(check, category=category, severity=severity)
        adjusted.append(check)
    return tuple(adjusted)


def _failed_plan(
    kind: ProbeKind, config: BaseProbeConfig, reason: Reason, error: str
) -> tuple[Check, ...]:
    """Every planned check, failed: the target could not be judged."""
    detail = f"not evaluated ({reason}: {error})"[:200]
    return tuple(
        Check(spec.name, False, spec.category, spec.severity, detail, False)
        for spec in kind.plan(config)
    )


async def run_probe(config: BaseProbeConfig, ctx: ProbeContext) -> ProbeResult:
    """Run *config*'s probe once under its timeout and judge the outcome."""
    kind = kind_of(config)
    started = time.perf_counter()
    ctx.deadline = Deadline(config.timeout)
    try:
        async with asyncio.timeout(config.timeout):
            result = await kind.probe(config, ctx)
    except Exception as error:  # a bug in one probe must not stop the others
        reason, text = explain(error, kind, config)
        if isinstance(error, TimeoutError) and not str(error):
            # A bare timeout (the runner's own, or a driver's that says
            # nothing) is told in the user's terms; a probe's or driver's
            # worded timeout keeps its words, which say what hung.
            text = f"no answer within {config.timeout:g}s"
        if reason is Reason.INTERNAL:
            logger.exception("probe %s (%s) crashed", config.name, config.kind)
        return ProbeResult(
            checks=apply_overrides(config, _failed_plan(kind, config, reason, text)),
            samples=error.samples if isinstance(error, ProbeError) else (),
            success=False,
            reason=reason,
            error=text,
            duration_seconds=time.perf_counter() - started,
            finished_at=time.time(),
        )
    checks = apply_overrides(config, result.checks)
    failed_critical = [
        c.name for c in checks if not c.passed and c.severity is Severity.CRITICAL
    ]
    # A probe may name its own reason (a device behind a live gateway that
    # answers with an exception is a protocol failure, not a missed check).
    verdict = result.reason or (Reason.CHECK if failed_critical else None)
    message = result.error or (
        "failed: " + ", ".join(failed_critical) if failed_critical else ""
    )
    return dataclasses.replace(
        result,
        checks=checks,
        success=verdict is None,
        reason=verdict,
        error=redact(message),
        duration_seconds=time.perf_counter() - started,
        finished_at=time.time(),
    )
