"""Systems: the units the checklists describe, each with its probes, its own
scoring and the items no machine can verify (attestations).

    systems:
      schedgen:
        description: Schedgen scheduling service
        scoring: {ready: 0.95}            # over the file's top-level scoring
        attestations:
          - item: restore_tested
            category: data
            severity: critical
            passed: true
            by: alice
            at: 2026-11-20
            expires: 90d                   # or a date

A probe names its system (`system: schedgen`, or `defaults: {system: ...}`);
probes that name none are in the system `default`. An attestation is a
check of kind `attestation` that passes while it is attested as passed and
not expired.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, model_validator

from exporter.probes.base import (
    CategoryName,
    Check,
    Model,
    Severity,
    parse_duration,
)
from exporter.readiness import Judged, Readiness, ScoringConfig, assess, estate

ATTESTATION_KIND = "attestation"
ATTESTATIONS_SOURCE = "attestations"


def _instant(value: object) -> object:
    """A date (midnight UTC) or an aware datetime; naive times are UTC."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            return _instant(dt.datetime.fromisoformat(value))
        except ValueError:
            raise ValueError(
                f"{value!r} is not a date: write 2026-11-20 or 2026-11-20T14:00Z"
            ) from None
    raise ValueError("expected a date such as 2026-11-20")


Instant = Annotated[dt.datetime, BeforeValidator(_instant)]


_DATE = re.compile(r"^\d{4}-\d\d-\d\d")


def _expiry(value: object) -> object:
    """`90d` (after `at`) or a date: a date starts 2026-11-20, so `1000d`
    is a duration."""
    if isinstance(value, str) and value and not _DATE.match(value):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return parse_duration(value)
    return _instant(value)


class Attestation(Model):
    """A checklist item a person vouches for, until it expires."""

    item: str = Field(pattern=r"^[a-z][a-z0-9_]{0,79}$")
    category: CategoryName
    severity: Severity = Severity.WARNING
    passed: bool
    by: str = Field(min_length=1, max_length=100)
    at: Instant
    expires: Annotated[dt.datetime | float, BeforeValidator(_expiry)]
    note: str = Field(default="", max_length=200)

    @property
    def expires_at(self) -> dt.datetime:
        """When the attestation stops counting."""
        if isinstance(self.expires, dt.datetime):
            return self.expires
        return self.at + dt.timedelta(seconds=self.expires)

    @model_validator(mode="after")
    def _expires_after_at(self) -> Self:
        if self.expires_at <= self.at:
            raise ValueError(
                f"attestation {self.item!r}: expires"
                f" ({self.expires_at:%Y-%m-%d}) must come after at"
                f" ({self.at:%Y-%m-%d})"
            )
        return self

    def check(self, now: float) -> Check:
        """The attestation as a check, judged at *now* (a Unix time)."""
        until = self.expires_at.timestamp()
        by = f"{'attested' if self.passed else 'attested as failing'} by {self.by}"
        when = f"on {self.at:%Y-%m-%d}"
        if now >= until:
            detail = f"{by} {when}; expired on {self.expires_at:%Y-%m-%d}: attest again"
            passed = False
        else:
            detail = f"{by} {when}, valid until {self.expires_at:%Y-%m-%d}"
            passed = self.passed
        if self.note:
            detail += f" ({self.note})"
        return Check(self.item, passed, self.category, self.severity, detail[:200])


class AttestationsFile(Model):
    """A separate file of attestations: `attestations: [...]`."""

    attestations: list[Attestation] = Field(default_factory=list)


class SystemConfig(Model):
    """What a system has besides its probes."""

    description: str = Field(default="", max_length=200)
    scoring: dict[str, Any] | None = None
    attestations: list[Attestation] = Field(default_factory=list)
    attestations_file: Path | None = None


@dataclass(frozen=True, slots=True)
class System:
    """A validated system: its scoring (the file's, overlaid with its own)
    and its attestations (inline and from its file)."""

    name: str
    description: str
    scoring: ScoringConfig
    attestations: tuple[Attestation, ...]

    def attestation_checks(self, now: float) -> list[Judged]:
        return [
            Judged(ATTESTATIONS_SOURCE, ATTESTATION_KIND, a.check(now))
            for a in self.attestations
        ]

    def next_change(self, now: float) -> float:
        """When an attestation of this system next expires (inf: never)."""
        later = [
            a.expires_at.timestamp()
            for a in self.attestations
            if a.expires_at.timestamp() > now
        ]
        return min(later, default=math.inf)


@dataclass(frozen=True, slots=True)
class Assessment:
    """Every system's readiness, and the estate's."""

    systems: Mapping[str, Readiness]
    estate: Readiness
    valid_until: float  # an attestation expires then: assess again


def assess_systems(
    systems: Mapping[str, System],
    checks: Iterable[tuple[str, str, str, Iterable[Check]]],
    now: float,
    pending: Mapping[str, int] | None = None,
) -> Assessment:
    """Assess each system from *checks* (system, probe, kind, checks of its
    last run) and its attestations at *now*; a system with *pending* probes
    (not run yet) gets no verdict unless a critical check already fails."""
    pending = pending or {}
    judged: dict[str, list[Judged]] = {name: [] for name in [*systems, *pending]}
    for system_name, probe, kind, probe_checks in checks:
        judged.setdefault(system_name, []).extend(
            Judged(probe, kind, check) for check in probe_checks
        )
    results: dict[str, Readiness] = {}
    for name in sorted(judged):
        found = systems.get(name)
        entries = judged[name]
        if found is not None:
            entries = entries + found.attestation_checks(now)
        scoring = found.scoring if found is not None else ScoringConfig()
        result = assess(entries, scoring)
        waiting = pending.get(name, 0)
        if waiting:
            result = dataclasses.replace(
                result,
                pending=waiting,
                verdict=result.verdict if result.failing_critical else None,
            )
        results[name] = result
    valid_until = min(
        (system.next_change(now) for system in systems.values()), default=math.inf
    )
    return Assessment(results, estate(results), valid_until)
