"""Systems as first-class: config, per-system scoring, attestations, per-kind
defaults, and the same verdict on /metrics, the status document and the
page."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Config, ConfigError, load_config, parse_config
from exporter.metrics import DaemonStatus, MetricsRenderer
from exporter.scheduler import Scheduler
from exporter.status import render_html, status_document
from tests.helpers import config_problems
from tests.kinds import scripted_kind

TODAY = dt.datetime.now(dt.UTC).date()


def config_of(text: str, path: Path | None = None) -> Config:
    if path is None:
        return parse_config(textwrap.dedent(text), "systems.yml")
    path.write_text(textwrap.dedent(text))
    return load_config(path)


ESTATE = f"""
systems:
  schedgen:
    description: Schedgen scheduling service
    attestations:
      - {{item: restore_tested, category: data, severity: critical, passed: true,
          by: alice, at: {TODAY - dt.timedelta(days=10)}, expires: 90d}}
  axon:
    scoring:
      category_weights: {{reliability: 0.3, security: 0.25, documentation: 0.45}}
      ready: 0.95
    attestations:
      - {{item: runbooks_written, category: documentation, passed: true, by: bob,
          at: {TODAY - dt.timedelta(days=40)}, expires: 30d}}
probes:
  - {{kind: scripted, name: api, system: schedgen, interval: 10, timeout: 1}}
  - {{kind: scripted, name: db, system: schedgen, behaviour: fail_critical,
      interval: 10, timeout: 1}}
  - {{kind: scripted, name: llm, system: axon, interval: 10, timeout: 1}}
"""


@pytest.fixture
async def estate(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Scheduler]:
    with scripted_kind(monkeypatch):
        scheduler = Scheduler(config_of(ESTATE))
        await scheduler.run_all_once()
        yield scheduler
        await scheduler.stop()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_each_system_is_judged_on_its_own(estate: Scheduler) -> None:
    assessment = estate.assessment()
    schedgen, axon = assessment.systems["schedgen"], assessment.systems["axon"]
    # A failing critical check makes schedgen not ready, whatever its score.
    assert schedgen.verdict is not None and schedgen.verdict.value == "not_ready"
    assert schedgen.failing_critical == ("db/alive",)
    # axon's own categories: its expired attestation fails in documentation.
    assert axon.categories["documentation"] == 0.0
    assert axon.failing_critical == ()
    assert axon.verdict is not None and axon.verdict.value == "not_ready"
    assert assessment.estate.verdict is not None
    assert assessment.estate.verdict.value == "not_ready"


async def test_metrics_status_and_page_agree(estate: Scheduler) -> None:
    text = MetricsRenderer(estate, DaemonStatus(started_at=1.0)).render()
    found = samples(text)
    doc = status_document(estate)
    page = render_html(doc)
    for system in doc["systems"]:
        name, verdict = system["name"], system["verdict"]
        key = frozenset({("system", name), ("verdict", verdict)})
        assert found[("readiness_system_verdict", key)] == 1
        assert found[
            ("readiness_system_score_ratio", frozenset({("system", name)}))
        ] == pytest.approx(system["score"])
        assert f"System {name}" in page
    estate_verdict = doc["estate"]["verdict"]
    key = frozenset({("verdict", estate_verdict)})
    assert found[("readiness_verdict", key)] == 1
    # Attestations are checks of their own kind, counted and shown.
    attested = frozenset(
        {
            ("probe", "attestations"),
            ("system", "axon"),
            ("kind", "attestation"),
            ("check", "runbooks_written"),
            ("category", "documentation"),
            ("severity", "warning"),
        }
    )
    assert found[("readiness_check_passed", attested)] == 0
    axon = next(s for s in doc["systems"] if s["name"] == "axon")
    assert axon["failing_checks"][0]["check"] == "runbooks_written"
    assert "expired on" in axon["failing_checks"][0]["detail"]
    assert "runbooks_written" in page


async def test_a_failing_check_shows_its_own_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue: a failing warning check showed the probe's reason from
    another check. A judged check's cause is `check`; one the run never got
    to judge has the run's reason."""
    with scripted_kind(monkeypatch):
        scheduler = Scheduler(
            config_of(
                """
                probes:
                  - {kind: scripted, name: tidy, behaviour: fail_warning,
                     interval: 10, timeout: 1}
                  - {kind: scripted, name: gone, behaviour: raise, interval: 10,
                     timeout: 1}
                """
            )
        )
        await scheduler.run_all_once()
        doc = status_document(scheduler)
        await scheduler.stop()
    causes = {(c["probe"], c["check"]): c["reason"] for c in doc["failing_checks"]}
    assert causes[("tidy", "tidy")] == "check"
    assert causes[("gone", "alive")] == "connect"
    assert causes[("gone", "tidy")] == "connect"


def test_probes_must_name_a_declared_system() -> None:
    problems = config_problems(
        """
        systems: {web: {}}
        probes:
          - {kind: tcp, name: a, host: h, port: 1, system: wbe}
          - {kind: tcp, name: b, host: h, port: 1}
        """
    )
    assert "probe 'a': field 'system': 'wbe' is not declared under systems: (web)" in (
        problems
    )
    assert "probe 'b': field 'system': 'default' is not declared" in problems


def test_defaults_give_the_system_and_per_kind_fields() -> None:
    config = config_of(
        """
        defaults:
          system: web
          http: {security_headers: [hsts], timeout: 3s}
        systems: {web: {}, ops: {}}
        probes:
          - {kind: http, name: a, url: "https://a/"}
          - {kind: http, name: b, url: "https://b/", system: ops, security_headers: false}
          - {kind: tcp, name: c, host: h, port: 1}
        """
    )
    a, b, c = config.probes
    assert (a.system, b.system, c.system) == ("web", "ops", "web")
    assert a.security_headers == ["hsts"] and a.timeout == 3.0  # type: ignore[attr-defined]
    assert b.security_headers is False  # type: ignore[attr-defined]
    assert c.timeout == 10.0


def test_defaults_name_real_kinds_and_fields() -> None:
    problems = config_problems(
        """
        defaults:
          htp: {timeout: 3s}
          tcp: {bogus: 1, name: x}
        probes: []
        """
    )
    assert "defaults: 'htp' is neither a common default" in problems
    assert "defaults.tcp: unknown field 'bogus'" in problems
    assert "defaults.tcp: 'name' cannot have a default" in problems


def test_a_category_needs_a_weight_in_its_system() -> None:
    problems = config_problems(
        f"""
        systems:
          axon:
            attestations:
              - {{item: coverage_80, category: code_quality, passed: true, by: c,
                  at: {TODAY}, expires: 30d}}
        probes:
          - {{kind: tcp, name: a, host: h, port: 1, system: axon,
              category: documentation}}
        """
    )
    assert (
        "system 'axon': category 'documentation' (used by probe 'a') has no weight"
        " in scoring.category_weights (reliability, security, performance,"
        " monitoring, data); add it to the weights, or move the checks to a"
        " weighted category" in problems
    )
    assert "category 'code_quality' (used by attestation 'coverage_80')" in problems


def test_a_table_of_weights_of_a_systems_own_is_the_whole_table() -> None:
    """The Axon checklist's table has no `reliability`: a probe whose checks
    count there must be moved, not quietly weighed by the default table."""
    config = f"""
        systems:
          axon:
            scoring:
              category_weights: {{code_quality: 0.2, security: 0.25,
                performance: 0.2, monitoring: 0.15, data: 0.1, documentaton: 0.1}}
            attestations:
              - {{item: runbooks, category: documentation, passed: true, by: d,
                  at: {TODAY}, expires: 30d}}
        probes:
          - {{kind: tcp, name: api-port, host: h, port: 1, system: axon}}
        """
    problems = config_problems(config).splitlines()
    assert problems == [
        "system 'axon': category 'reliability' (used by probe 'api-port') has no"
        " weight in scoring.category_weights (code_quality, security, performance,"
        " monitoring, data, documentaton); add it to the weights, or move the"
        " checks to a weighted category (`category:` on the probe, or per check"
        " under `checks:`)",
        "system 'axon': category 'documentation' (used by attestation 'runbooks')"
        " has no weight in scoring.category_weights (code_quality, security,"
        " performance, monitoring, data, documentaton); did you mean"
        " 'documentaton'? Else add it to the weights, or move the checks to a"
        " weighted category (`category:` on the probe, or per check under"
        " `checks:`)",
    ]
    fixed = config_of(
        config.replace("documentaton", "documentation").replace(
            "system: axon}", "system: axon, category: monitoring}"
        )
    )
    assert fixed.systems["axon"].scoring.category_weight("reliability") == 0.0
    assert fixed.warnings == ()


def test_a_misspelt_weight_is_a_warning() -> None:
    config = config_of(
        """
        scoring:
          category_weights: {reliability: 0.5, security: 0.3, code_qualty: 0.2}
        probes:
          - {kind: tcp, name: a, host: h, port: 1}
        """
    )
    assert config.warnings == ()  # not a misspelling of anything in use
    typo = config_of(
        """
        scoring:
          category_weights: {reliability: 0.5, securty: 0.5}
        probes:
          - {kind: tcp, name: a, host: h, port: 1}
        """
    )
    assert typo.warnings == (
        "system 'default': scoring.category_weights has 'securty', which no"
        " check or attestation of the system uses; did you mean 'security'?",
    )


def test_attestations_from_a_file_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "attested.yml").write_text(
        f"attestations:\n  - {{item: load_tested, category: performance,"
        f" passed: true, by: dana, at: {TODAY}, expires: 14d}}\n"
    )
    config = config_of(
        """
        systems: {web: {attestations_file: attested.yml}}
        probes: []
        """,
        tmp_path / "config.yml",
    )
    (attestation,) = config.systems["web"].attestations
    assert attestation.item == "load_tested"
    (tmp_path / "attested.yml").write_text("attestations:\n  - {item: x}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "config.yml")
    assert any(
        "field 'attestations[0].category': required field is missing" in p
        for p in caught.value.problems
    )


def test_an_item_attested_twice_in_one_system_is_refused(tmp_path: Path) -> None:
    # Appending a new attestation and keeping the expired one would count
    # the item as half passed.
    (tmp_path / "attested.yml").write_text(
        f"attestations:\n  - {{item: restore_tested, category: data,"
        f" passed: true, by: dana, at: {TODAY}, expires: 90d}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        config_of(
            f"""
        systems:
          web:
            attestations_file: attested.yml
            attestations:
              - {{item: restore_tested, category: data, passed: true, by: bob,
                  at: {TODAY - dt.timedelta(days=100)}, expires: 90d}}
          api:
            attestations_file: attested.yml
        probes: []
        """,
            tmp_path / "config.yml",
        )
    assert caught.value.problems == [
        f"system 'web': attestation 'restore_tested' appears 2 times (at"
        f" {TODAY - dt.timedelta(days=100)}, {TODAY}, inline and attestations_file"
        " together); keep one per item, the latest: re-attesting replaces the"
        " old entry"
    ]


def test_field_and_cross_field_errors_come_together() -> None:
    problems = config_problems(
        "- {kind: tcp, name: t, host: h, port: 1, max_read_bytes: 0,"
        " timeout: 60s, interval: 30s}"
    )
    assert problems.splitlines() == [
        "probe 't' (probes[0]): field 'max_read_bytes': expected at least 1, got 0",
        "probe 't' (probes[0]): timeout (60s) must be below interval (30s)",
    ]


def test_no_pydantic_names_in_errors() -> None:
    problems = config_problems(
        """
        - {kind: http, name: a, url: "http://x/", security_headers: [hsts, bogus]}
        - kind: workers
          name: w
          url: http://x/
          endpoints: {s: /s}
          mappings: {m: {endpoint: s, values: {v: 5}}}
        """
    )
    assert problems.splitlines() == [
        "probe 'a' (probes[0]): field 'security_headers[1]': expected one of hsts,"
        ' x_frame_options, x_content_type_options, csp, got "bogus"',
        "probe 'w' (probes[1]): field 'mappings.m.values.v': expected a mapping of"
        " fields (key: value), got 5",
    ]


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


async def test_every_field_of_the_status_document_is_documented(
    estate: Scheduler,
) -> None:
    doc = status_document(estate, DaemonStatus(started_at=1.0))
    page = (
        Path(__file__).resolve().parent.parent / "docs" / "status-api.md"
    ).read_text()
    # Keys that are data (category names, label names), not fields.
    data = {"reliability", "security", "data", "documentation", "performance"}
    undocumented = sorted(key for key in _keys(doc) - data if f"`{key}`" not in page)
    assert not undocumented, f"add them to docs/status-api.md: {undocumented}"
