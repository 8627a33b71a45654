"""Config loading: valid files, and every mistake reported with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, Settings, load_config, parse_config
from exporter.probes.base import Category, Severity, parse_duration, parse_size
from tests.conftest import config_from


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "bad.yml")
    return caught.value.problems


def test_a_valid_file_with_defaults_and_overrides() -> None:
    config = config_from(
        """
        defaults: {interval: 1m, timeout: 5s}
        scheduler: {max_concurrency: 4, jitter: 0}
        scoring: {category_weights: {reliability: 0.3, security: 0.5, data: 0.2}}
        probes:
          - kind: tcp
            name: db
            host: 127.0.0.1
            port: 5432
            labels: {team: data}
            category: data
            checks: {port_open: {severity: warning}}
          - {kind: tcp, name: mq, host: 127.0.0.1, port: 5672, interval: 10s}
        """
    )
    first, second = config.probes
    assert (first.interval, first.timeout) == (60.0, 5.0)
    assert (second.interval, second.timeout) == (10.0, 5.0)
    assert first.labels == {"team": "data"}
    assert first.category == Category.DATA
    assert first.checks["port_open"].severity is Severity.WARNING
    assert config.scheduler.max_concurrency == 4
    assert config.scoring.category_weight(Category.SECURITY) == 0.5


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("26h", 93600),
        ("7d", 604800),
        ("1h30m", 5400),
        ("2w", 1209600),
        (15, 15),
        ("2.5", 2.5),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2 << 30),
        ("2gb", 2 << 30),
        ("512MiB", 512 << 20),
        ("1.5g", 3 << 29),
        ("10 kb", 10240),
        (4096, 4096),
    ],
)
def test_sizes_are_powers_of_1024(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["2 parsecs", "-1", "0", "GB", True])
def test_bad_sizes(text: str | bool) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["5x", "m", "10 parsecs", "-5s", "", True])
def test_bad_durations(text: str | bool) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        (
            "{kind: nope, name: x}",
            "bad.yml: probe 'x' (probes[0]): unknown kind 'nope' (expected one of:",
        ),
        (
            "{kind: tcp, name: x, host: h, port: 1, colour: red}",
            "bad.yml: probe 'x' (probes[0]): unknown field 'colour' (allowed: ",
        ),
        (
            "{kind: tcp, name: x, host: h, port: 1, interval: 10s, timeout: 10s}",
            "bad.yml: probe 'x' (probes[0]): timeout (10s) must be below interval"
            " (10s)",
        ),
        (
            "{kind: tcp, name: x, host: h}",
            "bad.yml: probe 'x' (probes[0]): field 'port': required field is missing",
        ),
        (
            "{kind: tcp, name: x, host: h, port: 99999}",
            "bad.yml: probe 'x' (probes[0]): field 'port': expected at most 65535,"
            " got 99999",
        ),
        (
            "{kind: tcp, name: x, host: h, port: 1, interval: soon}",
            "bad.yml: probe 'x' (probes[0]): field 'interval': invalid duration 'soon'",
        ),
        (
            "{kind: tcp, name: x, host: '${READINESS_TEST_UNSET}', port: 1}",
            "bad.yml: probe 'x' (probes[0]): field 'host': environment variable"
            " READINESS_TEST_UNSET is not set",
        ),
        (
            "{kind: tcp, name: x, host: h, port: 1, labels: {probe: y}}",
            "bad.yml: probe 'x' (probes[0]): labels ['probe'] are set by the exporter",
        ),
        ("{name: x}", "bad.yml: probe 'x' (probes[0]): field 'kind' is missing"),
        (
            "{kind: tcp, name: x, host: h, port: 1, labels: {__name__: y}}",
            "bad.yml: probe 'x' (probes[0]): labels ['__name__'] are set by the"
            " exporter",
        ),
        (
            "{kind: http, name: x, url: 'http://h/', latency_target: 1s}",
            "bad.yml: probe 'x' (probes[0]): field 'latency_target' is now"
            " 'latency_p95_max' (renamed in 0.2.0; see the README's changelog)",
        ),
    ],
)
def test_mistakes_name_file_probe_and_field(probe: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"probes:\n  - {probe}\n", "bad.yml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_user_labels_may_not_clash_with_kind_labels() -> None:
    problems = problems_of(
        "probes:\n  - {kind: tls, name: c, host: h, labels: {cn: x, team: y}}\n"
    )
    assert problems == [
        "probe 'c' (probes[0]): field 'labels': ['cn'] already used by the tls"
        " metrics; pick other names"
    ]


def test_an_override_of_a_renamed_check_names_the_new_one() -> None:
    problems = problems_of(
        "probes:\n"
        "  - {kind: tls, name: c, host: h,"
        " checks: {cert_expiry_30d: {severity: critical}}}\n"
    )
    assert problems == [
        "probe 'c' (probes[0]): field 'checks': check 'cert_expiry_30d' is now"
        " 'cert_expiry_warning' (renamed in 0.2.0)"
    ]


def test_an_old_config_is_told_every_rename_in_one_pass() -> None:
    """A renamed field and a renamed check of one probe are reported
    together, so an upgrade needs one round of edits, not two."""
    problems = problems_of(
        "probes:\n"
        "  - {kind: tls, name: c, host: h, warn_days: 30,"
        " checks: {cert_expiry_30d: {severity: critical}}}\n"
    )
    assert problems == [
        "probe 'c' (probes[0]): field 'warn_days' is now 'days_left_min_warning'"
        " (renamed in 0.2.0; see the README's changelog)",
        "probe 'c' (probes[0]): field 'checks': check 'cert_expiry_30d' is now"
        " 'cert_expiry_warning' (renamed in 0.2.0)",
    ]


def test_check_overrides_must_name_real_checks() -> None:
    problems = problems_of(
        "probes:\n"
        "  - {kind: tcp, name: a, host: h, port: 1, checks: {port_opn: {enabled: false}}}\n"
    )
    assert problems == [
        "probe 'a' (probes[0]): field 'checks': port_opn is not a check of this"
        " probe (its checks: port_open)"
    ]


@pytest.mark.parametrize(
    ("scoring", "message"),
    [
        ("{category_weights: {data: -1}}", "weights must not be negative: data"),
        ("{ready: 0.7, minor: 0.9}", "bands must be ordered"),
    ],
)
def test_scoring_mistakes(scoring: str, message: str) -> None:
    (problem,) = problems_of(f"scoring: {scoring}\nprobes: []\n")
    assert message in problem


def test_top_level_env_and_model_problems_come_together() -> None:
    problems = problems_of(
        "scheduler: {max_concurrency: '${READINESS_TEST_UNSET}', jitter: 7}\n"
    )
    assert len(problems) == 3  # the unset variable, then both bad values
    assert "READINESS_TEST_UNSET is not set" in problems[0]


def test_duplicate_names_point_at_the_first() -> None:
    problems = problems_of(
        "probes:\n"
        "  - {kind: tcp, name: db, host: h, port: 1}\n"
        "  - {kind: tcp, name: db, host: h, port: 2}\n"
    )
    assert problems == [
        "probe 'db' (probes[1]): duplicate probe name 'db', already used by"
        " probes[0]; names must be unique"
    ]


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        "probes:\n  - {kind: tcp, name: a, host: h}\n  - {kind: nope, name: b}\n"
    )
    assert len(problems) == 2


def test_invalid_yaml_gives_line_and_column() -> None:
    problems = problems_of("probes:\n  - {kind: tcp, name: [\n")
    assert problems[0].startswith("line 3, column 1: invalid YAML")


def test_unknown_top_level_section() -> None:
    assert problems_of("probes: []\nprobs: []\n") == [
        "unknown field 'probs' (allowed: defaults, probes, scheduler, scoring, systems)"
    ]


def test_environment_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READINESS_TEST_HOST", "db.internal")
    config = config_from(
        """
        probes:
          - kind: tcp
            name: db
            host: ${READINESS_TEST_HOST}
            port: ${READINESS_TEST_PORT:-5432}
            send: "costs $$5"
        """
    )
    probe = config.probes[0]
    assert probe.model_dump()["host"] == "db.internal"
    assert probe.model_dump()["port"] == 5432
    assert probe.model_dump()["send"] == "costs $5"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "absent.yml")


def test_settings_from_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READINESS_WEB_LISTEN_ADDRESS", "127.0.0.1:9999")
    monkeypatch.setenv("READINESS_LOG_FORMAT", "json")
    assert Settings().listen_host_port() == ("127.0.0.1", 9999)
    assert Settings().log_format == "json"
    flagged = Settings(web_listen_address="[::1]:8080")
    assert flagged.listen_host_port() == ("::1", 8080)
    with pytest.raises(ValueError, match="HOST:PORT"):
        Settings(web_listen_address="nowhere").listen_host_port()


@pytest.mark.parametrize(
    "probe",
    [
        "{kind: http, name: a, url: 'http://x/', basic_auth: 'admin:Hunter2secret'}",
        "{kind: http, name: a, url: 'http://x/', headers: {Authorization: [Hunter2secret]}}",
        "{kind: postgres, name: a, dsn: 'postgresql://h/d', password: [Hunter2secret]}",
        "{kind: redis, name: a, url: [redis://u:Hunter2secret@h]}",
        "{kind: http, name: a, url: 'http://x/', bearer_token: {t: Hunter2secret}}",
    ],
)
def test_a_mistake_in_a_secret_field_never_shows_the_value(probe: str) -> None:
    """Config problems reach logs, the reload reply and the status page."""
    problems = problems_of(f"probes:\n  - {probe}\n")
    assert problems
    assert not any("Hunter2" in problem for problem in problems), problems
