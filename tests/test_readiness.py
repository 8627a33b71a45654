"""Scores and verdicts as the readiness spec defines them: checklist items
per system, severity weights, category weights, bands, the critical rule,
the estate, attestations."""

from __future__ import annotations

import datetime as dt

import pytest

from exporter.probes.base import Category, Check, Severity
from exporter.readiness import Judged, Readiness, ScoringConfig, Verdict, assess, estate
from exporter.systems import Attestation, System, assess_systems

R, S, P = Category.RELIABILITY, Category.SECURITY, Category.PERFORMANCE
CRIT, WARN, INFO = Severity.CRITICAL, Severity.WARNING, Severity.INFO


def judged(
    category: str,
    severity: Severity,
    passed: bool,
    name: str = "c",
    probe: str = "p",
    kind: str = "http",
) -> Judged:
    return Judged(probe, kind, Check(name, passed, category, severity))


def test_categories_are_severity_weighted() -> None:
    result = assess(
        [
            judged(R, CRIT, True, "a"),
            judged(R, WARN, False, "b"),
            judged(R, INFO, True, "c"),
        ],
        ScoringConfig(),
    )
    assert result.categories == {R: pytest.approx(4 / 6)}
    # One category only: the overall score is that category's.
    assert result.score == pytest.approx(4 / 6)
    assert (result.checks_total, result.checks_failed) == (3, 1)


def test_missing_categories_drop_out_and_weights_renormalise() -> None:
    result = assess(
        [judged(R, WARN, True, "a"), judged(S, WARN, False, "b")], ScoringConfig()
    )
    assert result.score == pytest.approx(0.30 / (0.30 + 0.25))


def test_weights_are_configurable() -> None:
    scoring = ScoringConfig(
        category_weights={R: 1.0, S: 3.0}, severity_weights={CRIT: 1.0, WARN: 1.0}
    )
    result = assess(
        [
            judged(R, WARN, True, "a"),
            judged(S, WARN, False, "b"),
            judged(S, WARN, True, "c"),
        ],
        scoring,
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
    assert ScoringConfig().band(score) is verdict


def test_no_checks_means_no_score_and_no_verdict() -> None:
    result = assess([], ScoringConfig())
    assert result.score is None
    assert result.verdict is None


def test_a_failing_critical_check_means_not_ready_whatever_the_score() -> None:
    """The issue's case: a high score with a critical check failing said
    "Ready for production" while the gate said NOT READY."""
    entries = [judged(R, WARN, True, f"r{i}") for i in range(20)]
    entries += [judged(S, WARN, True, f"s{i}") for i in range(20)]
    entries.append(
        judged(S, CRIT, False, "chain_verifies", probe="web-cert", kind="tls")
    )
    result = assess(entries, ScoringConfig())
    assert result.score is not None and result.score > 0.9
    assert result.verdict is Verdict.NOT_READY
    assert result.failing_critical == ("web-cert/chain_verifies",)


def test_a_check_many_probes_carry_is_one_item_valued_by_the_share_that_pass() -> None:
    """The README's worked example: a frontend and ten JSON endpoints all
    carry the four security-header checks; the frontend drops three of
    them. Counted per probe that was 3 failures in 44 header checks; as
    checklist items it is three items at 10/11 and one at 11/11."""
    entries = []
    for probe in ["frontend", *(f"api-{i}" for i in range(10))]:
        entries.append(judged(R, CRIT, True, "status_ok", probe))
        for header in ("hsts_header", "csp_header", "x_frame_options_header"):
            entries.append(judged(S, WARN, probe != "frontend", header, probe))
        entries.append(judged(S, WARN, True, "x_content_type_options_header", probe))
    result = assess(entries, ScoringConfig())
    items = {item.check: item for item in result.items}
    assert len(items) == 5  # status_ok and four headers, not 55 checks
    assert (items["hsts_header"].passed, items["hsts_header"].total) == (10, 11)
    assert result.categories[S] == pytest.approx((3 * 10 / 11 + 1) / 4)
    assert result.categories[R] == 1.0
    # reliability 1.0 * 0.30, security 0.932 * 0.25, over 0.55.
    assert result.score == pytest.approx((0.30 + 0.25 * (3 * 10 / 11 + 1) / 4) / 0.55)
    assert result.verdict is Verdict.READY
    # The same fault on a system with one probe weighs as much, not less.
    alone = assess(
        [judged(R, CRIT, True, "status_ok", "frontend")]
        + [
            judged(
                S, WARN, header == "x_content_type_options_header", header, "frontend"
            )
            for header in (
                "hsts_header",
                "csp_header",
                "x_frame_options_header",
                "x_content_type_options_header",
            )
        ],
        ScoringConfig(),
    )
    assert alone.categories[S] == 0.25


def test_items_of_different_kinds_stay_apart() -> None:
    result = assess(
        [
            judged(R, CRIT, True, "reachable", "db", "postgres"),
            judged(R, CRIT, False, "reachable", "cache", "redis"),
        ],
        ScoringConfig(),
    )
    assert sorted((i.kind, i.value) for i in result.items) == [
        ("postgres", 1.0),
        ("redis", 0.0),
    ]


def test_an_item_weighs_as_its_most_severe_member() -> None:
    # One probe made the check critical by override: the item is critical.
    result = assess(
        [judged(S, WARN, True, "x", "a"), judged(S, CRIT, True, "x", "b")],
        ScoringConfig(),
    )
    assert [i.severity for i in result.items] == [CRIT]


def test_the_estate_takes_its_worst_system_and_the_mean_score() -> None:
    ready = Readiness(0.95, Verdict.READY, {R: 0.95})
    staging = Readiness(0.75, Verdict.STAGING, {R: 0.7, S: 0.8})
    unjudged = Readiness(None, None)
    whole = estate({"a": ready, "b": staging, "c": unjudged})
    assert whole.verdict is Verdict.STAGING
    assert whole.score == pytest.approx(0.85)
    assert whole.categories == {R: pytest.approx(0.825), S: pytest.approx(0.8)}


def _attestation(**fields: object) -> Attestation:
    base: dict[str, object] = {
        "item": "restore_tested",
        "category": "data",
        "severity": "critical",
        "passed": True,
        "by": "alice",
        "at": "2026-11-20",
        "expires": "30d",
    }
    return Attestation.model_validate({**base, **fields})


def test_an_attestation_counts_until_it_expires() -> None:
    attestation = _attestation()
    system = System("schedgen", "", ScoringConfig(), (attestation,))
    before = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
    after = dt.datetime(2026, 12, 21, tzinfo=dt.UTC).timestamp()

    fresh = assess_systems({"schedgen": system}, [], before)
    assert fresh.systems["schedgen"].verdict is Verdict.READY
    assert fresh.valid_until == attestation.expires_at.timestamp()
    expired = assess_systems({"schedgen": system}, [], after)
    assert expired.systems["schedgen"].verdict is Verdict.NOT_READY
    assert expired.systems["schedgen"].failing_critical == (
        "attestations/restore_tested",
    )
    check = attestation.check(after)
    assert "expired on 2026-12-20" in check.detail and "attest again" in check.detail


def test_an_attestation_of_a_failure_fails() -> None:
    check = _attestation(passed=False, expires="2027-01-01").check(
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
    )
    assert not check.passed
    assert check.detail.startswith("attested as failing by alice on 2026-11-20")


def test_an_attestation_expiring_before_it_was_made_is_refused() -> None:
    with pytest.raises(ValueError, match="must come after at"):
        _attestation(expires="2026-01-01")
