"""Run one probe once: the only place that catches broadly.

Timeout, timing and exception -> one `Reason` of a closed set. A probe that
raises costs that probe its result and nothing else. Failures are logged by
the scheduler when a probe's state changes, not on every run. Check overrides from the
config (category, severity, disabled checks) are applied here, once, for
every kind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time

from exporter.probes import kind_of
from exporter.probes.base import (
    BaseProbeConfig,
    Check,
    ProbeError,
    ProbeResult,
    Reason,
    Severity,
    first_line,
)
from exporter.probes.context import ProbeContext
from exporter.redact import redact

logger = logging.getLogger(__name__)


def _classify(error: BaseException) -> Reason:
    # Order matters: TimeoutError and SSLError are both OSError subclasses.
    if isinstance(error, TimeoutError):
        return Reason.TIMEOUT
    if isinstance(error, ProbeError):
        return error.instance_reason
    if isinstance(error, ssl.SSLError | ssl.CertificateError):
        return Reason.TLS
    if isinstance(error, OSError):
        return Reason.CONNECT
    return Reason.INTERNAL


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
    config: BaseProbeConfig, reason: Reason, error: str
) -> tuple[Check, ...]:
    """Every planned check, failed: the target could not be judged."""
    detail = f"not evaluated ({reason}: {error})"[:200]
    return tuple(
        Check(spec.name, False, spec.category, spec.severity, detail)
        for spec in kind_of(config).plan(config)
    )


async def run_probe(config: BaseProbeConfig, ctx: ProbeContext) -> ProbeResult:
    """Run *config*'s probe once under its timeout and judge the outcome."""
    kind = kind_of(config)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(config.timeout):
            result = await kind.probe(config, ctx)
    except Exception as error:  # a bug in one probe must not stop the others
        reason = _classify(error)
        text = redact(first_line(error))
        if reason is Reason.TIMEOUT and not isinstance(error, ProbeError):
            # A bare timeout says nothing; a probe's own says what hung.
            text = f"no answer within {config.timeout:g}s"
        if reason is Reason.INTERNAL:
            logger.exception("probe %s (%s) crashed", config.name, config.kind)
        return ProbeResult(
            checks=apply_overrides(config, _failed_plan(config, reason, text)),
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
