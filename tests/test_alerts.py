"""The bundled alert rules and Alertmanager example, checked with the real tools.

promtool checks and unit-tests the rules, amtool checks the Alertmanager
config and its routing, the generator must have produced the committed rule
files, a threshold changed in alerts/thresholds.yml moves its alert and its
dashboard line and nothing else, every check a rule, unit test or runbook
names is one a kind declares, and every alert follows the monitoring-mixin
conventions that `mixtool lint` enforces (mixtool itself is a Go binary we
cannot install).
promtool and amtool come from Debian's prometheus and prometheus-alertmanager
packages, which `make test` installs: a missing tool fails, it does not skip.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from alerts import generate
from alerts.thresholds import THRESHOLDS_FILE as THRESHOLDS, load_thresholds
from exporter.kinds import PROBES
from grafana.generator.build import main as generate_dashboards
from tests.dashboards import (
    check_matchers,
    check_references,
    exposed_metric_names,
    undeclared_checks,
)

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
RULE_FILES = sorted((ALERTS / "rules").glob("*.yml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.yml"))
TEMPLATES = ALERTS / "templates"
ALERTMANAGER = ALERTS / "alertmanager.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_BASE = (
    "https://github.com/readiness-exporter/readiness-exporter/blob/main/"
    "docs/runbooks.md#"
)
SEVERITIES = ("critical", "warning", "info")
TIMEOUT = 60
HEALTH = "ReadinessHealthCheckFailing"


def tool(name: str) -> str:
    """Path of a Debian-packaged binary the tests need."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed; `make test` installs it"
            " (apt-get install prometheus prometheus-alertmanager)"
        )
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=ROOT,
    )


@cache
def groups() -> list[dict[str, Any]]:
    """Every rule group of every generated rule file."""
    found: list[dict[str, Any]] = []
    for path in RULE_FILES:
        found.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    return found


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in groups() for rule in group["rules"] if "alert" in rule]


def alert_id(rule: dict[str, Any]) -> str:
    return f"{rule['alert']}-{rule['labels'].get('severity')}"


def unit_tests() -> list[dict[str, Any]]:
    """Every alert_rule_test case of every promtool test file."""
    cases: list[dict[str, Any]] = []
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


# --- the generator -------------------------------------------------------------


def test_generated_rule_files_are_up_to_date() -> None:
    result = run(sys.executable, "-m", "alerts.generate", "--check")
    assert result.returncode == 0, result.stderr


def copy_thresholds(tmp_path: Path, **changes: Any) -> Path:
    """A copy of thresholds.yml with `section.key`-style changes applied."""
    data = yaml.safe_load(THRESHOLDS.read_text(encoding="utf-8"))
    for path, value in changes.items():
        section, key = path.split("__")
        data[section][key] = value
    copy = tmp_path / "thresholds.yml"
    copy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return copy


def copy_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(ALERTS / "rules", rules)
    return rules


def test_generator_check_notices_a_changed_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = copy_rules(tmp_path)
    thresholds = copy_thresholds(tmp_path, certificates__warning_days=21)
    args = ["--thresholds", str(thresholds), "--rules-dir", str(rules)]

    assert generate.main([*args, "--check"]) == 1
    assert "certificates.yml" in capsys.readouterr().err

    assert generate.main(args) == 0
    assert generate.main([*args, "--check"]) == 0
    text = (rules / "certificates.yml").read_text(encoding="utf-8")
    assert "/ 86400 < 21" in text


def test_generator_keeps_rule_files_it_did_not_generate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = copy_rules(tmp_path)
    own = rules / "my-team.yml"
    own.write_text("groups:\n- name: my-team\n  rules: []\n", encoding="utf-8")
    # A file an earlier version generated and no template gives any more.
    retired = rules / "retired.yml"
    retired.write_text(
        (rules / "score.yml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    args = ["--rules-dir", str(rules)]

    assert generate.main([*args, "--check"]) == 1
    stale = capsys.readouterr().err
    assert "retired.yml" in stale
    assert "my-team.yml" not in stale

    assert generate.main(args) == 0
    assert own.read_text(encoding="utf-8").startswith("groups:")
    assert not retired.exists()
    assert generate.main([*args, "--check"]) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score_typo": 0.5}, "score_typo"),
        ({"score": {"warning": 0.9, "critical": 0.7, "for": "30m", "x": 1}}, "x"),
        ({"errors": {"warning": 0.05, "critical": 0.01, "for": "10m"}}, "warning"),
        ({"errors": {"warning": 1.5, "critical": 2, "for": "10m"}}, "less than 1"),
        ({"modbus": {"for": "5 minutes"}}, "invalid duration"),
    ],
    ids=["unknown-key", "unknown-nested-key", "misordered", "ratio", "duration"],
)
def test_generator_rejects_bad_thresholds(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    message: str,
) -> None:
    data = yaml.safe_load(THRESHOLDS.read_text(encoding="utf-8"))
    thresholds = tmp_path / "thresholds.yml"
    thresholds.write_text(yaml.safe_dump({**data, **change}), encoding="utf-8")

    assert generate.main(["--thresholds", str(thresholds), "--check"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("placeholder", "message"),
    [
        ("${check:redis.memory_usage}", "declares no check 'memory_usage'"),
        ("${check:mongo.reachable}", "no probe kind 'mongo'"),
        ("${field:redis.reachable}", "has no threshold field"),
        ("${item:redis.reachable}", "is no family"),
        ("${errors.warnings}", "no 'warnings' in 'errors'"),
        ("${check:redis.maxmemory set}", "malformed placeholder"),
        ("${error.warning}", "no section 'error'"),
    ],
)
def test_template_naming_something_undeclared_fails(
    tmp_path: Path, placeholder: str, message: str
) -> None:
    template = tmp_path / "bad.yml"
    template.write_text(
        (TEMPLATES / "score.yml")
        .read_text(encoding="utf-8")
        .replace("${score.warning}", placeholder),
        encoding="utf-8",
    )
    with pytest.raises(generate.TemplateError, match=re.escape(message)):
        generate.generate(load_thresholds(), tmp_path)


def test_template_rule_of_the_wrong_shape_fails(tmp_path: Path) -> None:
    template = tmp_path / "bad.yml"
    text = (TEMPLATES / "score.yml").read_text(encoding="utf-8")
    template.write_text(text.replace("severity: warning", "severity: page"))
    with pytest.raises(generate.TemplateError, match="severity must be one of"):
        generate.generate(load_thresholds(), tmp_path)
    template.write_text(text.replace("    for: ${score.for}\n", "", 1))
    with pytest.raises(generate.TemplateError, match="expected the keys"):
        generate.generate(load_thresholds(), tmp_path)


def test_family_placeholders_give_the_tables_patterns() -> None:
    t = load_thresholds()
    rendered = generate.fill(
        "${check:redis.bullmq_{item}_depth} ${item:redis.bullmq_{item}_depth}"
        " ${check:redis.bullmq_pdf_depth} ${field:backup.backup_fresh}",
        t,
    )
    depth = PROBES["redis"].check("bullmq_{item}_depth")
    assert rendered.split() == [
        depth.pattern,
        "bullmq_(.+)_depth",
        "bullmq_pdf_depth",
        PROBES["backup"].check("backup_fresh").threshold,
    ]


def test_generator_is_not_larger_than_the_rules_it_writes() -> None:
    def lines(path: Path) -> int:
        return len(path.read_text(encoding="utf-8").splitlines())

    generator = lines(ALERTS / "generate.py")
    assert generator <= sum(lines(path) for path in RULE_FILES)


# --- one source of thresholds ----------------------------------------------------

# The thresholds the dashboards draw (threshold steps and the panel texts
# that state them); every other one moves alert rules only.
ON_DASHBOARDS = {
    "errors.warning",
    "errors.critical",
    "latency_p95_seconds.info",
    "latency_p95_seconds.warning",
    "latency_p95_seconds.critical",
    "certificates.warning_days",
    "certificates.critical_days",
    "databases.connections_warning",
    "redis.memory_warning",
    "redis.memory_critical",
    "modbus.for",
    "workers.down_for",
    "workers.memory_for",
    "backups.too_old_for",
    "score.warning",
    "score.critical",
}


def regenerate(thresholds: Path, out: Path) -> dict[str, list[str]]:
    """Rule files and dashboards from *thresholds*, written under *out*: the
    lines of each, by `rules/<name>` and `dashboards/<name>`."""
    rules, dashboards = out / "rules", out / "dashboards"
    args = ["--thresholds", str(thresholds)]
    assert generate.main([*args, "--rules-dir", str(rules)]) == 0
    assert generate_dashboards([*args, "--out", str(dashboards)]) == 0
    return {
        f"{path.parent.name}/{path.name}": path.read_text(encoding="utf-8").splitlines()
        for path in sorted([*rules.iterdir(), *dashboards.iterdir()])
    }


def moved_lines(
    before: dict[str, list[str]], after: dict[str, list[str]]
) -> dict[str, list[tuple[str, str]]]:
    """(old, new) of every changed line, by file; no line may come or go."""
    assert before.keys() == after.keys()
    moved = {}
    for name, old in before.items():
        assert len(old) == len(after[name]), f"{name} changed shape"
        pairs = [(a, b) for a, b in zip(old, after[name], strict=True) if a != b]
        if pairs:
            moved[name] = pairs
    return moved


def test_a_threshold_moves_its_alert_and_dashboard_line_only(tmp_path: Path) -> None:
    before = regenerate(copy_thresholds(tmp_path), tmp_path / "before")
    changed = copy_thresholds(tmp_path, certificates__warning_days=21)
    moved = moved_lines(before, regenerate(changed, tmp_path / "after"))

    # The alert's expression, the panel's threshold step and the sentence
    # of the panel's description that states it.
    assert {name: len(pairs) for name, pairs in moved.items()} == {
        "rules/certificates.yml": 1,
        "dashboards/readiness-services.json": 2,
    }
    for pairs in moved.values():
        for old, new in pairs:
            assert new == old.replace("30", "21"), (old, new)
    (alert,) = moved["rules/certificates.yml"]
    assert alert[1].endswith("/ 86400 < 21")
    text, step = moved["dashboards/readiness-services.json"]
    assert step[1].strip() == '"value": 21.0'
    assert "Orange under 21 days (warning)" in text[1]


def numeric_thresholds() -> list[str]:
    """`section.key` of every number and duration in thresholds.yml."""
    t = load_thresholds()
    return [
        f"{section}.{info.alias or key}"
        for section in type(t).model_fields
        if isinstance(model := getattr(t, section), BaseModel)
        for key, info in type(model).model_fields.items()
        if isinstance(getattr(model, key), float)
    ]


def bumped(value: Any) -> Any:
    """*value* moved a little, within its range and written the same way:
    10m -> 11m, 1h -> 2h, 0.85 -> 0.86, 0.99 -> 0.985, 30 -> 30.5."""
    if isinstance(value, str):
        return re.sub(r"^\d+", lambda m: str(int(m[0]) + 1), value)
    if value < 1:
        return round(value + 0.01 if value <= 0.95 else value - 0.005, 6)
    return value + 0.5


@pytest.mark.parametrize("path", numeric_thresholds())
def test_every_threshold_moves_alert_numbers_only(tmp_path: Path, path: str) -> None:
    section, key = path.split(".")
    data = yaml.safe_load(THRESHOLDS.read_text(encoding="utf-8"))
    before = regenerate(copy_thresholds(tmp_path), tmp_path / "before")
    change = {f"{section}__{key}": bumped(data[section][key])}
    moved = moved_lines(
        before, regenerate(copy_thresholds(tmp_path, **change), tmp_path / "after")
    )

    assert any(name.startswith("rules/") for name in moved), f"{path} moves no alert"
    on_dashboards = any(name.startswith("dashboards/") for name in moved)
    assert on_dashboards == (path in ON_DASHBOARDS), moved.keys()
    number = re.compile(r"\d+(?:\.\d+)?")
    for name, pairs in moved.items():
        for old, new in pairs:
            assert number.sub("#", old) == number.sub("#", new), (name, old, new)


def test_node_selector_goes_into_every_node_selector(tmp_path: Path) -> None:
    before = regenerate(copy_thresholds(tmp_path), tmp_path / "before")
    changed = copy_thresholds(tmp_path, host__node_selector='job="node"')
    after = regenerate(changed, tmp_path / "after")

    assert moved_lines(before, after).keys() == {"rules/host.yml"}
    exprs = " ".join(after["rules/host.yml"])
    selectors = re.findall(r"node_\w+(\{[^}]*\})?", exprs)
    assert len(selectors) == 9
    assert all(s.startswith('{job="node"') for s in selectors), selectors


# --- promtool --------------------------------------------------------------------


def test_promtool_check_rules_passes_on_every_rule_file() -> None:
    result = run(tool("promtool"), "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


def test_promtool_unit_tests_pass() -> None:
    result = run(tool("promtool"), "test", "rules", *TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


@pytest.mark.parametrize("rule", alert_rules(), ids=alert_id)
def test_every_alert_variant_has_a_firing_unit_test(rule: dict[str, Any]) -> None:
    expected = [
        alert
        for case in unit_tests()
        if case["alertname"] == rule["alert"]
        for alert in case.get("exp_alerts") or []
    ]
    variant = [
        a
        for a in expected
        if a["exp_labels"].get("severity") == rule["labels"]["severity"]
    ]
    assert variant, f"no promtool case where {alert_id(rule)} fires"
    for alert in variant:
        assert set(alert.get("exp_annotations", {})) == {
            "summary",
            "description",
            "runbook_url",
        }


@pytest.mark.parametrize(
    "name", sorted({rule["alert"] for rule in alert_rules()}), ids=str
)
def test_every_alert_has_a_unit_test_where_it_does_not_fire(name: str) -> None:
    quiet = [
        case
        for case in unit_tests()
        if case["alertname"] == name and not case.get("exp_alerts")
    ]
    assert quiet, f"no promtool case where {name} stays quiet"


# --- amtool ------------------------------------------------------------------------


def test_amtool_check_config_passes() -> None:
    result = run(tool("amtool"), "check-config", ALERTMANAGER)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("severity", "receiver"),
    [("critical", "pager"), ("warning", "ticket"), ("info", "default")],
)
def test_amtool_routes_severity_to_its_receiver(severity: str, receiver: str) -> None:
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        f"--verify.receivers={receiver}",
        f"severity={severity}",
        "alertname=ReadinessProbeDown",
        "probe=api",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_alertmanager_groups_by_alertname_and_probe() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    assert config["route"]["group_by"] == ["alertname", "probe"]
    by_probe = config["inhibit_rules"][0]
    assert by_probe["equal"] == ["alertname", "probe", "check", "instance"]


def _matched_names(matchers: list[str]) -> set[str]:
    """Alert names an alertname matcher of an inhibit rule selects."""
    names: set[str] = set()
    for matcher in matchers:
        found = re.fullmatch(r'alertname=~?"([^"]+)"', matcher)
        if found:
            names.update(found[1].split("|"))
    return names


def test_inhibit_rules_name_existing_alerts_on_disjoint_sides() -> None:
    # An alert matching both sides of a rule cannot be inhibited by another
    # alert matching both: keep sources and targets apart.
    known = {rule["alert"] for rule in alert_rules()}
    config = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    for rule in config["inhibit_rules"]:
        sources = _matched_names(rule["source_matchers"])
        targets = _matched_names(rule["target_matchers"])
        assert (sources | targets) <= known
        assert not sources & targets, rule


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# Loopback only: proxy variables from the environment must not apply.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(url: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}
    )
    with DIRECT.open(request, timeout=5) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus-alertmanager exited with {process.returncode}")
        try:
            DIRECT.open(f"{url}/-/ready", timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail("prometheus-alertmanager did not become ready within 20 s")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on 127.0.0.1 with the example config; gives its URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            tool("prometheus-alertmanager"),
            f"--config.file={ALERTMANAGER}",
            f"--storage.path={tmp_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, "severity": severity, **labels}}


def alert_states(url: str) -> dict[tuple[str, ...], str]:
    """State (active, suppressed) of every alert, keyed by its label values."""
    return {
        tuple(sorted(a["labels"].values())): a["status"]["state"]
        for a in http_json(f"{url}/api/v2/alerts")
    }


def wait_for_states(
    url: str, expected: dict[tuple[str, ...], str]
) -> dict[tuple[str, ...], str]:
    """The alert states once they match *expected*, or the last seen after 10 s:
    the inhibitor learns of new source alerts asynchronously."""
    deadline = time.monotonic() + 10
    states = alert_states(url)
    while states != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        states = alert_states(url)
    return states


def test_alertmanager_inhibits_warning_while_critical_fires(alertmanager: str) -> None:
    # Inhibition is computed as alerts arrive; amtool's route test ignores it.
    memory = "ReadinessHostMemoryHigh"
    errors = "ReadinessProbeErrorRateHigh"
    sent = [
        alert(errors, "critical", probe="db"),
        alert(errors, "warning", probe="db"),
        alert(errors, "warning", probe="api"),
        # No probe label: the critical of host b must not mute host a.
        alert(memory, "critical", instance="b:9100"),
        alert(memory, "warning", instance="b:9100"),
        alert(memory, "warning", instance="a:9100"),
    ]
    states = ["active", "suppressed", "active", "active", "suppressed", "active"]
    sent += [
        # One check's critical mutes its own warning, not another check's.
        alert(HEALTH, "critical", probe="web", check="status_ok"),
        alert(HEALTH, "warning", probe="web", check="status_ok"),
        alert(HEALTH, "warning", probe="web", check="dependencies_up"),
    ]
    states += ["active", "suppressed", "active"]
    expected = {
        tuple(sorted(a["labels"].values())): state
        for a, state in zip(sent, states, strict=True)
    }
    http_json(f"{alertmanager}/api/v2/alerts", sent)
    assert wait_for_states(alertmanager, expected) == expected


def test_alertmanager_sends_one_page_per_cause(alertmanager: str) -> None:
    # A probe that cannot reach its target pages as ReadinessProbeDown only; a
    # critical check's own alert mutes the generic error-rate and burn pages.
    down = {"probe": "mongo", "instance": "exp:9102"}
    stale = {"probe": "pg-backups", "instance": "exp:9102"}
    sent = [
        alert("ReadinessProbeDown", "critical", **down),
        alert("ReadinessProbeErrorRateHigh", "critical", **down),
        alert("ReadinessProbeErrorBudgetBurn", "critical", **down),
        alert(HEALTH, "critical", check="reachable", **down),
        alert("ReadinessProbeLatencyHigh", "warning", **down),
        # The same probe name on another exporter is another target.
        alert("ReadinessProbeErrorRateHigh", "warning", probe="mongo", instance="b"),
        alert("ReadinessBackupTooOld", "critical", **stale),
        alert("ReadinessProbeErrorRateHigh", "critical", **stale),
        alert("ReadinessProbeErrorBudgetBurn", "warning", **stale),
        # A warning is no cause to hide a page for.
        alert("ReadinessBackupRetentionNotMet", "warning", probe="nas", instance="c"),
        alert("ReadinessProbeErrorRateHigh", "critical", probe="nas", instance="c"),
    ]
    states = ["active"] + ["suppressed"] * 4 + ["active", "active"]
    states += ["suppressed", "suppressed", "active", "active"]
    expected = {
        tuple(sorted(a["labels"].values())): state
        for a, state in zip(sent, states, strict=True)
    }
    http_json(f"{alertmanager}/api/v2/alerts", sent)
    assert wait_for_states(alertmanager, expected) == expected


# --- mixin lint (mixtool's rules) -----------------------------------------------------

CAMEL_CASE = re.compile(r"^([A-Z]+[a-z0-9]+)+$")
SUMMARY_STYLE = re.compile(r"^[A-Z].+\.$")
TEMPLATED = re.compile(r"\{\{.+\}\}")


def runbook_anchors() -> set[str]:
    """GitHub's anchors for the headings of docs/runbooks.md."""
    headings = re.findall(r"^#+ (.+)$", RUNBOOKS.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("rule", alert_rules(), ids=alert_id)
def test_alert_follows_the_mixin_conventions(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert CAMEL_CASE.match(name), "alert-name-camelcase"
    assert len(name) <= 40, "alert-name-length"
    assert name.startswith("Readiness"), "shared prefix"
    assert rule["labels"]["severity"] in SEVERITIES, "alert-severity-rule"
    annotations = rule["annotations"]
    assert TEMPLATED.search(annotations["description"]), "description templating"
    summary = annotations["summary"]
    assert not TEMPLATED.search(summary), "alert-summary-templating"
    assert SUMMARY_STYLE.match(summary), "alert-summary-style"


@pytest.mark.parametrize("rule", alert_rules(), ids=alert_id)
def test_runbook_url_points_at_a_section_of_the_runbooks(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["runbook_url"]
    assert url == RUNBOOK_BASE + rule["alert"].lower()
    assert url.rsplit("#", 1)[1] in runbook_anchors()


@pytest.mark.parametrize("group", groups(), ids=lambda group: group["name"])
def test_rule_group_size_and_name(group: dict[str, Any]) -> None:
    assert len(group["rules"]) <= 20, "alert-group-rule-count"
    assert len(group["name"]) <= 40, "alert-group-name-length"


def test_variants_of_one_alert_differ_in_severity_only() -> None:
    # The Alertmanager inhibition (critical mutes warning) relies on this.
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in alert_rules():
        by_name.setdefault(rule["alert"], []).append(rule)
    for name, rules in by_name.items():
        severities = [rule["labels"]["severity"] for rule in rules]
        assert len(severities) == len(set(severities)), name
        assert len({rule["annotations"]["summary"] for rule in rules}) == 1, name


# --- metric and check names -------------------------------------------------------


def referenced_names() -> set[str]:
    exprs = " ".join(rule["expr"] for group in groups() for rule in group["rules"])
    return set(re.findall(r"(?<![:\w])(readiness_[a-zA-Z0-9_]+)", exprs))


def test_rules_use_only_metric_names_the_exporter_exposes() -> None:
    names = referenced_names()
    assert len(names) >= 20, names
    unknown = names - exposed_metric_names()
    assert not unknown, f"rules use metrics the exporter does not expose: {unknown}"


def test_recorded_series_are_defined_before_use() -> None:
    recorded = {
        rule["record"] for g in groups() for rule in g["rules"] if "record" in rule
    }
    exprs = " ".join(rule["expr"] for group in groups() for rule in group["rules"])
    used = set(re.findall(r"\b(probe:[a-z_]+:[a-z0-9_]+)", exprs))
    assert used <= recorded


def test_rules_name_only_declared_checks() -> None:
    matchers = [
        m for path in RULE_FILES for m in check_matchers(path.read_text("utf-8"))
    ]
    names = [name for m in matchers for name in check_references(*m)]
    assert len(names) >= 13, names  # found them, so the test cannot pass empty
    assert undeclared_checks(matchers) == []


def test_unit_tests_name_only_declared_checks() -> None:
    # Series matchers, and the `check` label of the alerts they expect.
    matchers = [
        m for path in TEST_FILES for m in check_matchers(path.read_text("utf-8"))
    ]
    matchers += [
        ("=", alert["exp_labels"]["check"])
        for case in unit_tests()
        for alert in case.get("exp_alerts") or []
        if "check" in alert["exp_labels"]
    ]
    assert len(matchers) >= 20, matchers
    assert undeclared_checks(matchers) == []


def test_check_name_test_finds_undeclared_and_renamed_checks() -> None:
    text = (
        'x{check="cert_expiry_30d"} y{check=~"status_ok|bullmq_.+_depth|backup_.*"}'
        ' z{check!~"memory_usage"} w{check="bullmq_pdf_depth"}'
    )
    assert undeclared_checks(check_matchers(text)) == [
        "cert_expiry_30d",
        "backup_.*",
        "memory_usage",
    ]


def test_runbooks_name_only_declared_checks() -> None:
    # "the `backup_fresh` check", "`cert_expiry_warning`/`cert_expiry_critical`
    # checks"; `<queue>` stands for a family's item.
    text = RUNBOOKS.read_text(encoding="utf-8")
    mentions = re.findall(r"((?:`[a-z0-9_<>]+`/)*`[a-z0-9_<>]+`) checks?\b", text)
    names = [
        re.sub(r"<\w+>", "item", name)
        for mention in mentions
        for name in re.findall(r"`([a-z0-9_<>]+)`", mention)
    ]
    assert len(names) >= 8, names
    assert undeclared_checks([("=", name) for name in names]) == []
