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


HEADERS = (
    "hsts_header",
    "csp_header",
    "x_frame_options_header",
    "x_content_type_options_header",
)
TLS_CHECKS = ((CRIT, 4), (WARN, 3))


def _estate_of_the_worked_example(dropped_on: set[str]) -> list[Judged]:
    """The README's worked example: eleven http probes and a tls probe; the
    probes in *dropped_on* lost HSTS, CSP and X-Frame-Options."""
    entries = []
    for probe in ["frontend", *(f"api-{i}" for i in range(10))]:
        entries.append(judged(R, CRIT, True, "status_ok", probe))
        for header in HEADERS:
            lost = probe in dropped_on and header != "x_content_type_options_header"
            entries.append(judged(S, WARN, not lost, header, probe))
    for severity, count in TLS_CHECKS:
        entries += [
            judged(S, severity, True, f"{severity}_{i}", "cert", "tls")
            for i in range(count)
        ]
    return entries


def test_a_check_many_probes_carry_is_one_item_valued_by_the_share_that_pass() -> None:
    """The README's worked example, with its figures."""
    everywhere = {"frontend", *(f"api-{i}" for i in range(10))}
    result = assess(_estate_of_the_worked_example(everywhere), ScoringConfig())
    items = {(item.kind, item.check): item for item in result.items}
    assert len(items) == 5 + 7  # status_ok, four headers, seven tls checks
    assert (
        items[("http", "hsts_header")].passed,
        items[("http", "hsts_header")].total,
    ) == (0, 11)
    assert result.categories[S] == pytest.approx(20 / 26)
    assert result.score == pytest.approx((0.30 + 0.25 * 20 / 26) / 0.55)
    assert result.score is not None and round(result.score, 3) == 0.895
    assert result.verdict is Verdict.MINOR
    # Counted probe by probe (0.1.0) it was "staging only".
    per_probe_security = (22 + 18) / (88 + 18)
    assert round((0.30 + 0.25 * per_probe_security) / 0.55, 3) == 0.717
    # One endpoint losing them: each of the three items is worth 10/11.
    one = assess(_estate_of_the_worked_example({"frontend"}), ScoringConfig())
    assert {(i.passed, i.total) for i in one.items if i.check in HEADERS[:3]} == {
        (10, 11)
    }
    assert one.verdict is Verdict.READY


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


def test_a_system_waiting_for_a_probe_has_no_verdict_yet() -> None:
    system = System("shop", "", ScoringConfig(), ())
    passing = [("shop", "api", "http", [Check("up", True, R, CRIT)])]
    waiting = assess_systems({"shop": system}, passing, 0.0, {"shop": 1})
    shop = waiting.systems["shop"]
    # The probe not heard from yet could be the broken one: no "ready".
    assert (shop.score, shop.verdict, shop.pending) == (1.0, None, 1)
    assert shop.verdict_text == "Waiting for 1 probe to run once"
    assert waiting.estate.verdict is None
    # A critical check already failing is a verdict by itself.
    failing = [("shop", "api", "http", [Check("up", False, R, CRIT)])]
    broken = assess_systems({"shop": system}, failing, 0.0, {"shop": 2})
    assert broken.systems["shop"].verdict is Verdict.NOT_READY
    assert broken.estate.verdict is Verdict.NOT_READY
    # Once every probe has run, the verdict is the score's.
    assert (
        assess_systems({"shop": system}, passing, 0.0).systems["shop"].verdict
        is Verdict.READY
    )


def test_a_failing_critical_check_is_not_ready_even_without_a_score() -> None:
    # A category weighted 0 leaves nothing to score; the critical rule holds.
    scoring = ScoringConfig(category_weights={R: 0.0})
    result = assess([judged(R, CRIT, False, "up")], scoring)
    assert (result.score, result.verdict) == (None, Verdict.NOT_READY)
    assert estate({"a": result}).verdict is Verdict.NOT_READY


def test_unnamed_conditions_of_two_probes_are_two_items() -> None:
    # `condition_0` is "the first condition of this probe": two probes' firsts
    # ask different questions, so one passing does not hide the other.
    result = assess(
        [
            judged(R, WARN, True, "condition_0", "a"),
            judged(R, WARN, False, "condition_0", "b"),
            judged(R, WARN, True, "tls_valid", "a"),
            judged(R, WARN, True, "tls_valid", "b"),
        ],
        ScoringConfig(),
    )
    assert sorted((i.check, i.value) for i in result.items) == [
        ("a/condition_0", 1.0),
        ("b/condition_0", 0.0),
        ("tls_valid", 1.0),
    ]


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


def test_an_expiry_is_a_duration_unless_it_is_written_as_a_date() -> None:
    at = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert _attestation(expires="1000d").expires_at == at + dt.timedelta(days=1000)
    assert _attestation(expires="2027-01-01T12:00Z").expires_at == dt.datetime(
        2027, 1, 1, 12, tzinfo=dt.UTC
    )
