"""The bundled alert rules and Alertmanager example, checked with the real tools.

promtool checks and unit-tests the rules, amtool checks the Alertmanager
config and its routing, the generator must have produced the committed rule
files, and every alert follows the monitoring-mixin conventions that
`mixtool lint` enforces (mixtool itself is a Go binary we cannot install).
promtool and amtool come from Debian's prometheus and prometheus-alertmanager
packages, which `make test` installs: a missing tool fails, it does not skip.
"""

from __future__ import annotations

import inspect
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

from exporter import metrics
from exporter.kinds import PROBES

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
RULE_FILES = sorted((ALERTS / "rules").glob("*.yml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.yml"))
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
    result = run(sys.executable, ALERTS / "generate.py", "--check")
    assert result.returncode == 0, result.stderr


def test_generator_check_notices_a_changed_threshold(tmp_path: Path) -> None:
    copy = tmp_path / "alerts"
    shutil.copytree(ALERTS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    thresholds = copy / "thresholds.yml"
    text = thresholds.read_text(encoding="utf-8")
    thresholds.write_text(text.replace("warning_days: 30", "warning_days: 21"))

    stale = run(sys.executable, copy / "generate.py", "--check")
    assert stale.returncode == 1
    assert "certificates.yml" in stale.stderr

    assert run(sys.executable, copy / "generate.py").returncode == 0
    assert run(sys.executable, copy / "generate.py", "--check").returncode == 0
    rules = (copy / "rules" / "certificates.yml").read_text(encoding="utf-8")
    assert "/ 86400 < 21" in rules


def test_generator_keeps_rule_files_it_did_not_generate(tmp_path: Path) -> None:
    copy = tmp_path / "alerts"
    shutil.copytree(ALERTS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    own = copy / "rules" / "my-team.yml"
    own.write_text("groups:\n- name: my-team\n  rules: []\n", encoding="utf-8")
    # A file an earlier version generated and the thresholds no longer give.
    retired = copy / "rules" / "retired.yml"
    retired.write_text(
        (copy / "rules" / "score.yml").read_text(encoding="utf-8"), encoding="utf-8"
    )

    stale = run(sys.executable, copy / "generate.py", "--check")
    assert stale.returncode == 1
    assert "retired.yml" in stale.stderr
    assert "my-team.yml" not in stale.stderr

    assert run(sys.executable, copy / "generate.py").returncode == 0
    assert own.read_text(encoding="utf-8").startswith("groups:")
    assert not retired.exists()
    assert run(sys.executable, copy / "generate.py", "--check").returncode == 0


def test_generator_rejects_a_misspelt_threshold(tmp_path: Path) -> None:
    copy = tmp_path / "alerts"
    shutil.copytree(ALERTS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    thresholds = copy / "thresholds.yml"
    text = thresholds.read_text(encoding="utf-8")
    thresholds.write_text(text + "\nscore_typo: 0.5\n")

    result = run(sys.executable, copy / "generate.py", "--check")
    assert result.returncode == 2
    assert "score_typo" in result.stderr


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


# --- metric names ------------------------------------------------------------------------


def exported_names() -> set[str]:
    """Every readiness_ family the exporter can expose."""
    core = set(re.findall(r'"(readiness_[a-z_]+)"', inspect.getsource(collector)))
    kinds = {
        collector.NAMESPACE + spec.name
        for kind in PROBES.values()
        for spec in kind.metrics
    }
    return core | kinds


def referenced_names() -> set[str]:
    exprs = " ".join(rule["expr"] for group in groups() for rule in group["rules"])
    names = set(re.findall(r"(?<![:\w])(readiness_[a-zA-Z0-9_]+)", exprs))
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}


def test_rules_use_only_metric_names_the_exporter_exposes() -> None:
    unknown = referenced_names() - exported_names()
    assert not unknown, f"rules use metrics the exporter does not expose: {unknown}"


def test_recorded_series_are_defined_before_use() -> None:
    recorded = {
        rule["record"] for g in groups() for rule in g["rules"] if "record" in rule
    }
    exprs = " ".join(rule["expr"] for group in groups() for rule in group["rules"])
    used = set(re.findall(r"\b(probe:[a-z_]+:[a-z0-9_]+)", exprs))
    assert used <= recorded


def test_rules_use_only_check_names_the_probes_define() -> None:
    # Check names come from each kind's plan(); they appear there as literals.
    sources = " ".join(
        path.read_text(encoding="utf-8")
        for path in (ROOT / "exporter" / "probes").glob("*.py")
    )
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    matchers = re.findall(r'\bcheck[!=]~?"([^"]+)"', exprs)
    names = {
        name for m in matchers for name in m.split("|") if re.fullmatch(r"\w+", name)
    }
    missing = {name for name in names if f'"{name}"' not in sources}
    assert names
    assert not missing, f"rules use checks no probe defines: {missing}"
