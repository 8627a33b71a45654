"""Scores and verdicts as the readiness spec defines them."""

from __future__ import annotations

import pytest

from exporter.probes.base import Category, Check, Severity
from exporter.readiness import ScoringConfig, Verdict, assess

R, S, P = Category.RELIABILITY, Category.SECURITY, Category.PERFORMANCE
CRIT, WARN, INFO = Severity.CRITICAL, Severity.WARNING, Severity.INFO


def check(category: Category, severity: Severity, passed: bool) -> Check:
    return Check("c", passed, category, severity)


def test_categories_are_severity_weighted() -> None:
    result = assess(
        [check(R, CRIT, True), check(R, WARN, False), check(R, INFO, True)],
        ScoringConfig(),
    )
    assert result.categories == {R: pytest.approx(4 / 6)}
    # One category only: the overall score is that category's.
    assert result.score == pytest.approx(4 / 6)
    assert (result.checks_total, result.checks_failed) == (3, 1)


def test_missing_categories_drop_out_and_weights_renormalise() -> None:
    result = assess([check(R, CRIT, True), check(S, CRIT, False)], ScoringConfig())
    assert result.score == pytest.approx(0.30 / (0.30 + 0.25))


def test_weights_are_configurable() -> None:
    scoring = ScoringConfig(
        category_weights={R: 1.0, S: 3.0}, severity_weights={CRIT: 1.0, WARN: 1.0}
    )
    result = assess(
        [check(R, CRIT, True), check(S, CRIT, False), check(S, WARN, True)], scoring
    )
    assert result.categories[S] == 0.5
    assert result.score == pytest.approx((1.0 + 3 * 0.5) / 4)


@pytest.mark.parametrize(
    ("score", "verdict"),
    [
        (1.0, Verdict.READY),
        (0.90, Verdict.READY),
        (0.89, Verdict.MINOR),
        (0.80, Verdict.MINOR),
        (0.75, Verdict.STAGING),
        (0.69, Verdict.NOT_READY),
    ],
)
def test_verdict_bands(score: float, verdict: Verdict) -> None:
    assert ScoringConfig().verdict(score) is verdict


def test_no_checks_means_no_score() -> None:
    result = assess([], ScoringConfig())
    assert result.score is None
    assert result.verdict is Verdict.NOT_READY
