"""Checks -> category scores -> overall score and verdict.

Per category, the score is the severity-weighted share of passing checks.
The overall score is the weighted mean of the category scores, over the
categories that have checks (the others drop out and the weights are
renormalised). Bands and default weights come from the Axon checklist's
readiness table (see `readiness-spec.md`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import Field, model_validator

from exporter.probes.base import Category, Check, Model, Severity


class Verdict(StrEnum):
    """Readiness bands: >= 0.90, >= 0.80, >= 0.70, below."""

    READY = "ready"
    MINOR = "minor"
    STAGING = "staging"
    NOT_READY = "not_ready"


VERDICT_TEXT = {
    Verdict.READY: "Ready for production",
    Verdict.MINOR: "Ready with minor improvements",
    Verdict.STAGING: "Staging only",
    Verdict.NOT_READY: "Not ready",
}

DEFAULT_CATEGORY_WEIGHTS = {
    Category.RELIABILITY: 0.30,
    Category.SECURITY: 0.25,
    Category.PERFORMANCE: 0.20,
    Category.MONITORING: 0.15,
    Category.DATA: 0.10,
}

DEFAULT_SEVERITY_WEIGHTS = {
    Severity.CRITICAL: 3.0,
    Severity.WARNING: 2.0,
    Severity.INFO: 1.0,
}


class ScoringConfig(Model):
    """Weights and bands; every one may be changed in the config file."""

    category_weights: dict[Category, float] = Field(
        default_factory=lambda: dict(DEFAULT_CATEGORY_WEIGHTS)
    )
    severity_weights: dict[Severity, float] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_WEIGHTS)
    )
    ready: float = Field(default=0.90, ge=0, le=1)
    minor: float = Field(default=0.80, ge=0, le=1)
    staging: float = Field(default=0.70, ge=0, le=1)

    @model_validator(mode="after")
    def _sane(self) -> ScoringConfig:
        negative = [
            str(k)
            for k, v in (*self.category_weights.items(), *self.severity_weights.items())
            if v < 0
        ]
        if negative:
            raise ValueError(f"weights must not be negative: {', '.join(negative)}")
        if not self.ready >= self.minor >= self.staging:
            raise ValueError(
                "bands must be ordered: ready >= minor >= staging"
                f" (got {self.ready}, {self.minor}, {self.staging})"
            )
        return self

    def category_weight(self, category: Category) -> float:
        """Weight of *category*, falling back to the default table."""
        return self.category_weights.get(category, DEFAULT_CATEGORY_WEIGHTS[category])

    def severity_weight(self, severity: Severity) -> float:
        """Weight of *severity*, falling back to the default table."""
        return self.severity_weights.get(severity, DEFAULT_SEVERITY_WEIGHTS[severity])

    def verdict(self, score: float) -> Verdict:
        """The band *score* falls in."""
        if score >= self.ready:
            return Verdict.READY
        if score >= self.minor:
            return Verdict.MINOR
        if score >= self.staging:
            return Verdict.STAGING
        return Verdict.NOT_READY


@dataclass(frozen=True, slots=True)
class Readiness:
    """The assessment of a set of checks; *score* is None with no checks."""

    score: float | None
    verdict: Verdict
    categories: dict[Category, float] = field(default_factory=dict)
    checks_total: int = 0
    checks_failed: int = 0


def assess(checks: Iterable[Check], scoring: ScoringConfig) -> Readiness:
    """Score *checks* with *scoring*'s weights."""
    passed: dict[Category, float] = {}
    possible: dict[Category, float] = {}
    total = failed = 0
    for check in checks:
        weight = scoring.severity_weight(check.severity)
        possible[check.category] = possible.get(check.category, 0.0) + weight
        if check.passed:
            passed[check.category] = passed.get(check.category, 0.0) + weight
        else:
            failed += 1
        total += 1
    categories = {
        category: (passed.get(category, 0.0) / weight if weight > 0 else 1.0)
        for category, weight in possible.items()
    }
    weights = {c: scoring.category_weight(c) for c in categories}
    weight_sum = sum(weights.values())
    if not categories or weight_sum <= 0:
        return Readiness(None, Verdict.NOT_READY, categories, total, failed)
    score = sum(categories[c] * w for c, w in weights.items()) / weight_sum
    return Readiness(score, scoring.verdict(score), categories, total, failed)
