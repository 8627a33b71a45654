"""End to end: demo estate -> exporter -> Prometheus -> Alertmanager -> webhooks.

One module-scoped stack on 127.0.0.1, all real processes:

- the exporter on the demo estate (`python -m demo`, as
  tests/test_demo.py starts it), whose failing checks are known;
- `prometheus` scraping it every second with every bundled rule file of
  alerts/rules/ loaded (copies with `for: 0s`, thresholds as shipped) and
  alerting to
- `prometheus-alertmanager` running alerts/alertmanager.yml as shipped except
  for the webhook host:port (our sink) and 1 s grouping timers;
- a webhook sink recording every POST by path.

It proves that the exporter's series arrive in Prometheus, that the demo's
failing checks fire the bundled alerts, that Alertmanager routes them by
severity with their labels and annotations and inhibits a warning whose
critical twin fires and the echoes of an unreachable probe's
ReadinessProbeDown (which a merely failing check does not fire), that every Grafana panel query finds data (except an
allow-list explained below), and that `promtool check metrics` accepts the
exposition. The Debian tools are installed by `make test`: a missing one
fails the module instead of skipping it.
"""

from __future__ import annotations

import contextlib
import datetime
import signal
import socket
import sys
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import demo_environment
from tests.dashboards import (
    dashboard_files,
    exposed_metric_names,
    metric_names,
    panel_queries,
)
from tests.servers.monitoring import (
    ALERTMANAGER,
    JSON,
    PROMETHEUS,
    PROMTOOL,
    Alertmanager,
    ManagedProcess,
    Prometheus,
    ToolMissing,
    WebhookSink,
    find_tool,
    free_port,
    promtool_check_metrics,
    wait_for,
    write_alertmanager_config,
    write_prometheus_config,
    write_rules_without_for,
)

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "alerts" / "rules"
ALERTMANAGER_CONFIG = ROOT / "alerts" / "alertmanager.yml"
JOB = "readiness"

DEMO_READY_WAIT = 60.0
# Bounded waits for things that take a few scrape/evaluation/group intervals.
PROPAGATION_WAIT = 30.0
# After an inhibited warning's critical twin was delivered: rule evaluations
# (each followed by a 1 s group_interval) in which a wrongly uninhibited
# alert would have fired and arrived.
SETTLE_EVALUATIONS = 3

POSTGRES_PORT, REDIS_PORT = 5432, 6379
REDIS_FAMILY = "readiness_redis_memory_used_bytes"
# Families of the spec's metric list the demo must produce (Redis apart).
SPEC_FAMILIES = (
    "readiness_probe_success",
    "readiness_probe_up",
    "readiness_probe_duration_seconds",
    "readiness_probe_latency_seconds_bucket",
    "readiness_probe_runs_total",
    "readiness_probe_failures_total",
    "readiness_probe_failure_info",
    "readiness_probe_last_run_timestamp_seconds",
    "readiness_check_passed",
    "readiness_category_score_ratio",
    "readiness_score_ratio",
    "readiness_verdict",
    "readiness_build_info",
    "readiness_http_status_code",
    "readiness_tls_cert_not_after_timestamp_seconds",
    "readiness_backup_newest_timestamp_seconds",
    "readiness_modbus_register_value",
    "readiness_workers_alive",
)

# (alertname, severity, probe) the demo's deliberate failures must fire:
# api-cert's certificate expires in 20 days (< 30, > 7), postgres-backups'
# newest backup is stale, one of mcp-threading's workers is STOPPED.
EXPECTED_FIRING = (
    ("ReadinessTlsCertificateExpiring", "warning", "api-cert"),
    ("ReadinessBackupTooOld", "critical", "postgres-backups"),
    ("ReadinessWorkerDown", "critical", "mcp-threading"),
)
# ReadinessHealthCheckFailing warns on every failing reliability check and
# pages on the critical ones only. local-mongo's `reachable` check is critical
# and fails wherever no MongoDB listens (the demo/CI machine, see MONGO_ABSENT),
# so both variants fire at once there. (The demo's out-of-range Modbus
# register is a warning-level check: it only warns, there is no twin.) Both
# are inhibited: the warning by its critical twin, and both by local-mongo's
# ReadinessProbeDown (connect fails), the one page for that probe.
INHIBITED_PAIR = ("ReadinessHealthCheckFailing", "local-mongo")
UNREACHABLE = ("ReadinessProbeDown", "critical", "local-mongo")
MONGO_PORT = 27017
# postgres-backups answers but its critical backup_fresh check fails: its runs
# fail with reason "check" and probe_up is 0, yet the target is not down.
STALE_BACKUPS = "postgres-backups"


@dataclass(frozen=True)
class AllowedEmpty:
    """A panel query that cannot have data on the demo estate, and why."""

    dashboard: str
    panel: str
    metric: str
    why: str


MONGO_ABSENT = "no MongoDB on the demo/CI machine: local-mongo fails to connect"
NO_BULLMQ = "the demo's Redis probe configures no BullMQ queues"
RECONNECT_ONLY = (
    "connect time is exported only by runs that open a connection; the probe"
    " keeps its connection, so the series goes stale after the first run"
)
IDLE_REDIS = (
    "hit ratio is absent while nobody else looks keys up between runs, as on"
    " the idle CI Redis"
)
NO_MAXMEMORY = (
    "the local Redis runs without maxmemory (the demo's failing maxmemory_set"
    " check); the panel divides by maxmemory > 0, so it is empty by design"
)
DATASTORES = "readiness-datastores.json"
ALLOWED_EMPTY = (
    AllowedEmpty(
        DATASTORES,
        "Connections in use vs max",
        "readiness_mongodb_connections",
        MONGO_ABSENT,
    ),
    AllowedEmpty(
        DATASTORES, "Connections", "readiness_mongodb_connections", MONGO_ABSENT
    ),
    AllowedEmpty(
        DATASTORES,
        "Replica lag",
        "readiness_mongodb_replset_member_lag_seconds",
        MONGO_ABSENT,
    ),
    AllowedEmpty(
        DATASTORES,
        "MongoDB replica-set members",
        "readiness_mongodb_replset_member_healthy",
        MONGO_ABSENT,
    ),
    AllowedEmpty(
        DATASTORES, "Round trips", "readiness_mongodb_ping_seconds", MONGO_ABSENT
    ),
    AllowedEmpty(
        DATASTORES, "Round trips", "readiness_mongodb_connect_seconds", MONGO_ABSENT
    ),
    AllowedEmpty(
        DATASTORES, "Round trips", "readiness_postgres_connect_seconds", RECONNECT_ONLY
    ),
    AllowedEmpty(
        DATASTORES, "Round trips", "readiness_redis_connect_seconds", RECONNECT_ONLY
    ),
    AllowedEmpty(
        DATASTORES,
        "BullMQ queues paused",
        "readiness_redis_bullmq_queue_paused",
        NO_BULLMQ,
    ),
    AllowedEmpty(
        DATASTORES, "BullMQ queue depths", "readiness_redis_bullmq_jobs", NO_BULLMQ
    ),
    AllowedEmpty(
        DATASTORES,
        "Redis memory used / maxmemory",
        "readiness_redis_maxmemory_bytes",
        NO_MAXMEMORY,
    ),
    AllowedEmpty(
        DATASTORES, "Redis keyspace hit ratio", "readiness_redis_hit_ratio", IDLE_REDIS
    ),
)


# --- the stack --------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    exporter_url: str
    prometheus: Prometheus
    alertmanager: Alertmanager
    sink: WebhookSink
    alertmanager_config: JSON


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start_demo(workdir: Path) -> tuple[ManagedProcess, str]:
    """The demo from a copy of config/demo.yml, its estate on free ports."""
    (workdir / "config").mkdir(parents=True)
    (workdir / "config" / "demo.yml").write_text(
        (ROOT / "config" / "demo.yml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    port = free_port()
    demo = ManagedProcess.spawn(
        "exporter demo",
        [
            sys.executable,
            "-m",
            "demo",
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ],
        workdir / "demo.log",
        cwd=workdir,
        env={**demo_environment(), "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    demo.wait_ready(f"{url}/-/ready", timeout=DEMO_READY_WAIT)
    return demo, url


def _require_tools() -> None:
    try:
        for tool in (PROMETHEUS, PROMTOOL, ALERTMANAGER):
            find_tool(tool)
    except ToolMissing as missing:
        pytest.fail(str(missing))


def _target_up(prometheus: Prometheus) -> JSON | None:
    for target in prometheus.targets():
        if target["labels"].get("job") == JOB and target["health"] == "up":
            found: JSON = target
            return found
    return None


def _wait_for_target(prometheus: Prometheus, exporter_url: str) -> None:
    try:
        wait_for(
            lambda: _target_up(prometheus),
            PROPAGATION_WAIT,
            f"Prometheus scraping the exporter at {exporter_url}",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{prometheus.process.log_tail()}") from None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _require_tools()
    workdir = tmp_path_factory.mktemp("e2e")
    with contextlib.ExitStack() as cleanup:
        sink = WebhookSink.start()
        cleanup.callback(sink.stop)
        am_config = write_alertmanager_config(
            ALERTMANAGER_CONFIG, workdir / "alertmanager.yml", sink.port
        )
        alertmanager = Alertmanager.start(workdir, workdir / "alertmanager.yml")
        cleanup.callback(alertmanager.stop)
        demo, exporter_url = _start_demo(workdir / "demo")
        cleanup.callback(demo.stop, signal.SIGINT)
        # The shipped `for:` durations (2m to 1h) would keep every alert
        # pending for longer than a test may run; the copies fire on the
        # first evaluation. Expressions and thresholds are as shipped.
        rules = write_rules_without_for(RULES_DIR.glob("*.yml"), workdir / "rules")
        write_prometheus_config(
            workdir / "prometheus.yml",
            JOB,
            exporter_url.removeprefix("http://"),
            rules,
            alertmanager.address,
        )
        prometheus = Prometheus.start(workdir, workdir / "prometheus.yml")
        cleanup.callback(prometheus.stop)
        _wait_for_target(prometheus, exporter_url)
        yield Stack(exporter_url, prometheus, alertmanager, sink, am_config)


# --- helpers ----------------------------------------------------------------------


def _receiver_path(am_config: JSON, severity: str) -> str:
    """URL path of the webhook the shipped routes pick for *severity*."""
    matcher = f'severity="{severity}"'
    route = next(r for r in am_config["route"]["routes"] if matcher in r["matchers"])
    receiver = next(r for r in am_config["receivers"] if r["name"] == route["receiver"])
    url: str = receiver["webhook_configs"][0]["url"]
    return urllib.parse.urlsplit(url).path


def _firing(prometheus: Prometheus) -> list[JSON]:
    return [a for a in prometheus.alerts() if a["state"] == "firing"]


def _key(alert: JSON) -> tuple[str, str, str]:
    labels = alert["labels"]
    return labels["alertname"], labels["severity"], labels.get("probe", "")


def _twin_labels(labels: dict[str, str]) -> frozenset[tuple[str, str]]:
    """The labels that make a warning and its critical twin the same alert."""
    return frozenset((k, v) for k, v in labels.items() if k != "severity")


def _active_at(alert: JSON) -> datetime.datetime:
    """When Prometheus saw the alert's condition start (RFC 3339, ns digits)."""
    return datetime.datetime.fromisoformat(alert["activeAt"])


def _warnings_with_critical_twin(firing: list[JSON]) -> list[JSON]:
    """Firing warnings whose critical twin (same labels) fired no later.

    A twin that started later leaves a window in which the warning was
    rightly delivered, so only twins active from the start must inhibit.
    """
    criticals = {
        _twin_labels(a["labels"]): _active_at(a)
        for a in firing
        if a["labels"]["severity"] == "critical"
    }
    twins = []
    for alert in firing:
        if alert["labels"]["severity"] != "warning":
            continue
        critical_since = criticals.get(_twin_labels(alert["labels"]))
        if critical_since is not None and critical_since <= _active_at(alert):
            twins.append(alert)
    return twins


def _get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


# --- scraping ---------------------------------------------------------------------


def test_named_families_are_ones_the_exporter_exposes() -> None:
    # No stack needed: a renamed metric fails here, not after a minute's run.
    named = {*SPEC_FAMILIES, REDIS_FAMILY, *(e.metric for e in ALLOWED_EMPTY)}
    assert not named - exposed_metric_names()


def test_prometheus_scrapes_the_exporter(stack: Stack) -> None:
    target = _target_up(stack.prometheus)
    assert target is not None
    assert target["scrapeUrl"] == f"{stack.exporter_url}/metrics"
    assert target["lastError"] == ""


def _stored_families(prometheus: Prometheus) -> set[str]:
    result = prometheus.query('count by (__name__) ({__name__=~"readiness_.+"})')
    return {sample["metric"]["__name__"] for sample in result}


def test_every_spec_metric_family_is_stored(stack: Stack) -> None:
    def missing() -> set[str]:
        return set(SPEC_FAMILIES) - _stored_families(stack.prometheus)

    # The first scrape may hold only some probes' results: give it a few.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not missing(), 10, "every spec family")
    assert not missing(), f"families missing in Prometheus: {sorted(missing())}"


def test_redis_memory_family_is_stored(stack: Stack) -> None:
    if not _port_open(REDIS_PORT):
        pytest.skip(
            f"no Redis on 127.0.0.1:{REDIS_PORT} here (CI has one): cannot"
            f" check {REDIS_FAMILY}"
        )
    assert REDIS_FAMILY in _stored_families(stack.prometheus)


def _settle(prometheus: Prometheus, evaluations: int = SETTLE_EVALUATIONS) -> None:
    """Wait until every rule group was evaluated *evaluations* more times:
    the window in which an alert that must not fire would have fired. A
    condition on Prometheus, not a sleep, so a slow machine waits longer."""
    seen: dict[str, set[str]] = {}

    def enough() -> bool:
        for group in prometheus.api("rules")["groups"]:
            seen.setdefault(group["name"], set()).add(group["lastEvaluation"])
        return bool(seen) and all(len(s) > evaluations for s in seen.values())

    wait_for(enough, PROPAGATION_WAIT, f"{evaluations} more rule evaluations", 0.1)


def test_every_bundled_rule_loads_and_evaluates(stack: Stack) -> None:
    def evaluated() -> list[JSON] | None:
        groups: list[JSON] = stack.prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        done = all(r["lastEvaluation"] > "0001-01-01T00:00:00Z" for r in rules)
        return rules if rules and done else None

    rules = wait_for(evaluated, PROPAGATION_WAIT, "every rule evaluated once")
    files = {group_file.name for group_file in RULES_DIR.glob("*.yml")}
    groups = stack.prometheus.api("rules")["groups"]
    assert {Path(group["file"]).name for group in groups} == files
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not broken


def test_promtool_accepts_the_exposition(stack: Stack) -> None:
    checked = promtool_check_metrics(_get_text(f"{stack.exporter_url}/metrics"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- alerts -----------------------------------------------------------------------


def test_demo_failures_fire_alerts_in_prometheus(stack: Stack) -> None:
    def all_firing() -> set[tuple[str, str, str]] | None:
        keys = {_key(a) for a in _firing(stack.prometheus)}
        return keys if set(EXPECTED_FIRING) <= keys else None

    keys = wait_for(all_firing, PROPAGATION_WAIT, f"alerts {EXPECTED_FIRING} firing")
    # 20 days left is above the shipped critical threshold (7 days).
    assert ("ReadinessTlsCertificateExpiring", "critical", "api-cert") not in keys


@pytest.mark.parametrize(("alertname", "severity", "probe"), EXPECTED_FIRING)
def test_alert_reaches_the_receiver_of_its_severity(
    stack: Stack, alertname: str, severity: str, probe: str
) -> None:
    path = _receiver_path(stack.alertmanager_config, severity)

    def delivered() -> JSON | None:
        for alert in stack.sink.alerts(path):
            if _key(alert) == (alertname, severity, probe):
                found: JSON = alert
                return found
        return None

    alert = wait_for(delivered, PROPAGATION_WAIT, f"{alertname} at {path}")
    assert alert["status"] == "firing"
    assert alert["labels"]["job"] == JOB
    annotations = alert["annotations"]
    assert annotations["summary"]
    assert probe in annotations["description"]
    assert "{{" not in annotations["description"]
    assert annotations["runbook_url"].endswith("#" + alertname.lower())


def test_no_alert_reaches_the_receiver_of_another_severity(stack: Stack) -> None:
    pager = _receiver_path(stack.alertmanager_config, "critical")
    ticket = _receiver_path(stack.alertmanager_config, "warning")
    wait_for(
        lambda: stack.sink.alerts(pager) and stack.sink.alerts(ticket),
        PROPAGATION_WAIT,
        "notifications on both receivers",
    )
    assert {a["labels"]["severity"] for a in stack.sink.alerts(pager)} == {"critical"}
    assert {a["labels"]["severity"] for a in stack.sink.alerts(ticket)} == {"warning"}


def _skip_if_mongo_answers() -> None:
    if _port_open(MONGO_PORT):
        pytest.skip(
            f"a MongoDB answers on 127.0.0.1:{MONGO_PORT}: local-mongo reaches its"
            " target, so it is neither down nor failing its reachable check"
        )


def _stale_backups_fail_on_a_check(prometheus: Prometheus) -> bool:
    """postgres-backups is damped down, its last run failing on a check."""
    probe = f'probe="{STALE_BACKUPS}"'
    return bool(
        prometheus.query(f"readiness_probe_up{{{probe}}} == 0")
        and prometheus.query(
            f'readiness_probe_failure_info{{{probe},reason="check"}} == 1'
        )
    )


def test_probe_down_fires_for_unreachable_targets_only(stack: Stack) -> None:
    prometheus = stack.prometheus
    wait_for(
        lambda: _stale_backups_fail_on_a_check(prometheus),
        PROPAGATION_WAIT,
        f"{STALE_BACKUPS} down with reason check",
    )
    stale = ("ReadinessBackupTooOld", "critical", STALE_BACKUPS)
    wait_for(
        lambda: stale in {_key(a) for a in _firing(prometheus)},
        PROPAGATION_WAIT,
        f"{stale} firing",
    )
    # Several 1 s evaluations in which a wrong ProbeDown would have fired.
    _settle(prometheus)
    keys = {_key(a) for a in prometheus.alerts()}
    assert ("ReadinessProbeDown", "critical", STALE_BACKUPS) not in keys
    if not _port_open(MONGO_PORT):
        assert UNREACHABLE in {_key(a) for a in _firing(prometheus)}


def _suppressed(stack: Stack, alertname: str, probe: str, severity: str) -> bool:
    return any(
        alert["status"]["state"] == "suppressed" and alert["status"]["inhibitedBy"]
        for alert in stack.alertmanager.alerts(
            alertname=alertname, probe=probe, severity=severity
        )
    )


def test_warning_with_firing_critical_twin_is_inhibited(stack: Stack) -> None:
    _skip_if_mongo_answers()
    alertname, probe = INHIBITED_PAIR
    ticket = _receiver_path(stack.alertmanager_config, "warning")
    wait_for(
        lambda: _suppressed(stack, alertname, probe, "warning"),
        PROPAGATION_WAIT,
        f"{INHIBITED_PAIR} warning inhibited",
    )
    _settle(stack.prometheus)
    twins = _warnings_with_critical_twin(_firing(stack.prometheus))
    assert (alertname, "warning", probe) in {_key(a) for a in twins}
    inhibited = {_twin_labels(a["labels"]) for a in twins}
    leaked = [
        a for a in stack.sink.alerts(ticket) if _twin_labels(a["labels"]) in inhibited
    ]
    assert not leaked, f"warnings delivered despite a firing critical twin: {leaked}"


def test_unreachable_target_pages_once_as_probe_down(stack: Stack) -> None:
    _skip_if_mongo_answers()
    alertname, probe = INHIBITED_PAIR
    pager = _receiver_path(stack.alertmanager_config, "critical")
    wait_for(
        lambda: UNREACHABLE in {_key(a) for a in stack.sink.alerts(pager)},
        PROPAGATION_WAIT,
        f"{UNREACHABLE} at {pager}",
    )
    # The critical health check says "unreachable" again: ProbeDown mutes it.
    wait_for(
        lambda: _suppressed(stack, alertname, probe, "critical"),
        PROPAGATION_WAIT,
        f"{INHIBITED_PAIR} critical inhibited by ReadinessProbeDown",
    )
    _settle(stack.prometheus)
    delivered = {_key(a) for a in stack.sink.alerts(pager)}
    assert (alertname, "critical", probe) not in delivered


# --- dashboards -------------------------------------------------------------------


def _allowed_empty(dashboard: str, panel: str, expr: str) -> AllowedEmpty | None:
    names = metric_names(expr)
    for entry in ALLOWED_EMPTY:
        same_panel = (entry.dashboard, entry.panel) == (dashboard, panel)
        if same_panel and entry.metric in names:
            return entry
    return None


def _absent_local_servers() -> tuple[str, ...]:
    """Metric prefixes of the local servers (CI has both) missing here."""
    absent = []
    for port, prefix in (
        (POSTGRES_PORT, "readiness_postgres_"),
        (REDIS_PORT, "readiness_redis_"),
    ):
        if not _port_open(port):
            warnings.warn(
                f"nothing on 127.0.0.1:{port}: {prefix}* panels not checked",
                stacklevel=2,
            )
            absent.append(prefix)
    return tuple(absent)


def _query_problem(prometheus: Prometheus, expr: str) -> str | None:
    try:
        result = prometheus.query(expr)
    except (ValueError, OSError) as error:
        return f"query failed: {error}"
    return None if result else "no data"


def test_allow_list_names_existing_panel_queries() -> None:
    queries = {
        (path.name, title, name)
        for path in dashboard_files()
        for title, expr in panel_queries(path)
        for name in metric_names(expr)
    }
    stale = [
        e for e in ALLOWED_EMPTY if (e.dashboard, e.panel, e.metric) not in queries
    ]
    assert not stale, f"allow-list entries matching no panel query: {stale}"


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    prometheus = stack.prometheus
    # rate() and increase() over [1m] need two samples in the window.
    wait_for(
        lambda: prometheus.query("rate(readiness_probe_runs_total[1m])"),
        PROPAGATION_WAIT,
        "two scrapes for rate()",
    )
    absent_prefixes = _absent_local_servers()
    problems = []
    for path in dashboard_files():
        for title, expr in panel_queries(path):
            if _allowed_empty(path.name, title, expr):
                continue
            if any(n.startswith(absent_prefixes) for n in metric_names(expr)):
                continue
            problem = _query_problem(prometheus, expr)
            if problem:
                problems.append(f"{path.name} / {title}: {problem}: {expr}")
    assert not problems, "\n".join(problems)
