"""Checks -> checklist items -> per-system category scores, score and verdict.

One rule decides readiness, here, for every surface (the metrics, the status
page, the JSON API and the `check` gate with its exit code):

- A system's checklist items are its checks grouped by (category, kind,
  check): a check that ten http probes of one system carry (`hsts_header`)
  is one item, valued by the share of those probes that pass it, so the
  score follows the checklist, not the number of probes. An attestation is
  an item of its own.
- A category's score is the severity-weighted mean of its items' values;
  an item weighs as its most severe member.
- The score is the weighted mean of the category scores with the system's
  category weights, over the categories that have items.
- The verdict is the band the score falls in (>= 0.90 ready, >= 0.80 minor,
  >= 0.70 staging, below not ready), except that **any failing critical
  check makes it not ready**, whatever the score.
- The estate's verdict is its worst system's, its score the mean of the
  systems' scores.

Defaults come from the Axon checklist's readiness table (readiness-spec.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from exporter.probes.base import Category, CategoryName, Check, Model, Severity


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
# Worst first: the estate takes its worst system's verdict.
_SEVERITY_OF_VERDICT = [
    Verdict.NOT_READY,
    Verdict.STAGING,
    Verdict.MINOR,
    Verdict.READY,
]

DEFAULT_CATEGORY_WEIGHTS: dict[str, float] = {
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
    """Weights and bands; every one may be changed in the config file, for
    the estate and per system. Categories beyond the built-in five (an
    attestation in `documentation`) need a weight here."""

    category_weights: dict[CategoryName, float] = Field(
        default_factory=lambda: dict(DEFAULT_CATEGORY_WEIGHTS)
    )
    severity_weights: dict[Severity, float] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_WEIGHTS)
    )
    ready: float = Field(default=0.90, ge=0, le=1)
    minor: float = Field(default=0.80, ge=0, le=1)
    staging: float = Field(default=0.70, ge=0, le=1)

    @model_validator(mode="after")
    def _sane(self) -> Self:
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

    def category_weight(self, category: str) -> float:
        """Weight of *category*; 0 for one the table lacks (the loader
        refuses a category in use without a weight). A table of a config's
        own is the whole table: the defaults do not fill it in."""
        return self.category_weights.get(category, 0.0)

    def has_weight(self, category: str) -> bool:
        """Whether *category* is in the table."""
        return category in self.category_weights

    def severity_weight(self, severity: Severity) -> float:
        """Weight of *severity*, falling back to the default table."""
        return self.severity_weights.get(severity, DEFAULT_SEVERITY_WEIGHTS[severity])

    def band(self, score: float) -> Verdict:
        """The band *score* falls in, ignoring critical checks."""
        if score >= self.ready:
            return Verdict.READY
        if score >= self.minor:
            return Verdict.MINOR
        if score >= self.staging:
            return Verdict.STAGING
        return Verdict.NOT_READY


@dataclass(frozen=True, slots=True)
class Judged:
    """A check of one probe (or an attestation), as the assessment sees it."""

    source: str  # the probe's name, or "attestations"
    kind: str
    check: Check


@dataclass(frozen=True, slots=True)
class Item:
    """One checklist item: the checks of one name that probes of one kind
    carry in one category, valued by the share that pass."""

    category: str
    kind: str
    check: str
    passed: int
    total: int
    severity: Severity

    @property
    def value(self) -> float:
        return self.passed / self.total


@dataclass(frozen=True, slots=True)
class Readiness:
    """The assessment of one system (or the estate). *score* is None while
    there is nothing to judge; the verdict is None too then, and while
    *pending* probes have not run once (a verdict without them could say
    ready about a system whose broken probe has not been heard from)."""

    score: float | None
    verdict: Verdict | None
    categories: dict[str, float] = field(default_factory=dict)
    items: tuple[Item, ...] = ()
    checks_total: int = 0
    checks_failed: int = 0
    failing_critical: tuple[str, ...] = ()  # "probe/check"
    pending: int = 0

    @property
    def verdict_text(self) -> str | None:
        if self.verdict is not None:
            return VERDICT_TEXT[self.verdict]
        if self.pending:
            return (
                f"Waiting for {self.pending} probe{'' if self.pending == 1 else 's'}"
                " to run once"
            )
        return None


_POSITIONAL = re.compile(r"^condition_\d+$")


def items_of(judged: Iterable[Judged], scoring: ScoringConfig) -> list[Item]:
    """Group *judged* checks into checklist items."""
    groups: dict[tuple[str, str, str], list[Check]] = {}
    for entry in judged:
        name = entry.check.name
        # An unnamed condition is named by its place in its probe's list:
        # `condition_0` of two probes are two different questions.
        if _POSITIONAL.match(name):
            name = f"{entry.source}/{name}"
        key = (entry.check.category, entry.kind, name)
        groups.setdefault(key, []).append(entry.check)
    items = []
    for (category, kind, name), checks in groups.items():
        severity = max(
            (c.severity for c in checks), key=lambda s: scoring.severity_weight(s)
        )
        passed = sum(1 for c in checks if c.passed)
        items.append(Item(category, kind, name, passed, len(checks), severity))
    return items


def assess(judged: Iterable[Judged], scoring: ScoringConfig) -> Readiness:
    """The readiness of one system from its checks and attestations."""
    entries = list(judged)
    items = items_of(entries, scoring)
    weighted: dict[str, float] = {}
    possible: dict[str, float] = {}
    for item in items:
        weight = scoring.severity_weight(item.severity)
        possible[item.category] = possible.get(item.category, 0.0) + weight
        weighted[item.category] = weighted.get(item.category, 0.0) + weight * item.value
    categories = {
        category: (weighted[category] / weight if weight > 0 else 1.0)
        for category, weight in possible.items()
    }
    failed = [e for e in entries if not e.check.passed]
    critical = tuple(
        f"{e.source}/{e.check.name}"
        for e in failed
        if e.check.severity is Severity.CRITICAL
    )
    weights = {c: scoring.category_weight(c) for c in categories}
    weight_sum = sum(weights.values())
    if not categories or weight_sum <= 0:
        # No score, but a failing critical check is a verdict by itself.
        verdict = Verdict.NOT_READY if critical else None
        return Readiness(
            None, verdict, categories, tuple(items), len(entries), len(failed), critical
        )
    score = sum(categories[c] * w for c, w in weights.items()) / weight_sum
    verdict = Verdict.NOT_READY if critical else scoring.band(score)
    return Readiness(
        score, verdict, categories, tuple(items), len(entries), len(failed), critical
    )


def estate(systems: Mapping[str, Readiness]) -> Readiness:
    """The estate: its worst system's verdict (none while a system waits for
    its probes to run once; a system with nothing to judge has no say), the
    mean of the systems' scores and of their category scores, every
    system's checks."""
    judged = [r for r in systems.values() if r.score is not None]
    known = [r.verdict for r in systems.values() if r.verdict is not None]
    pending = sum(r.pending for r in systems.values())
    waiting = any(r.pending and r.verdict is None for r in systems.values())
    if Verdict.NOT_READY in known:
        verdict: Verdict | None = Verdict.NOT_READY
    elif not known or waiting:
        verdict = None
    else:
        verdict = min(known, key=_SEVERITY_OF_VERDICT.index)
    categories: dict[str, list[float]] = {}
    for readiness in judged:
        for category, value in readiness.categories.items():
            categories.setdefault(category, []).append(value)
    score = (
        sum(r.score for r in judged if r.score is not None) / len(judged)
        if judged
        else None
    )
    return Readiness(
        score=score,
        verdict=verdict,
        categories={c: sum(v) / len(v) for c, v in categories.items()},
        checks_total=sum(r.checks_total for r in systems.values()),
        checks_failed=sum(r.checks_failed for r in systems.values()),
        failing_critical=tuple(
            name for r in systems.values() for name in r.failing_critical
        ),
        pending=pending,
    )
