"""Checklist 003, the Parallax control plane: config/examples/parallax.yml
against a simulated estate of the system (tests/seeds/parallax_estate.py),
healthy and with each fault the checklist names.

Each case runs every probe once as the daemon does and once more through
`check --system parallax`, and asserts exactly which (probe, check) pairs
fail and that the status document, /metrics and the gate agree. A
dependency that goes down fails its own probe and, as in the real system,
`/health/ready`, which names it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.seeds.common import EXAMPLES, judge
from tests.seeds.parallax_estate import FAULTS, ParallaxEstate

# The estate lives on the module's event loop, and so do the tests.
module_loop = pytest.mark.asyncio(loop_scope="module")

CONFIG = EXAMPLES / "parallax.yml"
SYSTEM = "parallax"
NOT_READY = {("parallax-ready", "status_ok"), ("parallax-ready", "condition_deps_up")}
# A probe that cannot reach its target fails every check it would have made.
POSTGRES = {
    ("parallax-postgres", check)
    for check in (
        "reachable",
        "connections_under_limit",
        "extension_timescaledb",
        "replica_lag",
        "query_migrations_applied",
        "query_hypertables_present",
    )
}
REDIS = {
    ("parallax-redis", check)
    for check in (
        "reachable",
        "auth_required",
        "maxmemory_set",
        "eviction_policy",
        "persistence",
        "memory_usage_warning",
        "memory_usage_critical",
        "hit_ratio",
    )
}

# The fault -> the (probe, check) pairs it must fail, and the verdict.
EXPECTED: dict[str, tuple[set[tuple[str, str]], str]] = {
    # "PostgreSQL running and accessible": it is stopped; /health/ready
    # says the database is down.
    "postgres_down": (POSTGRES | NOT_READY, "not_ready"),
    # "TimescaleDB extension installed": dropped, its information views
    # with it, so the hypertables query fails too.
    "timescaledb_missing": (
        {
            ("parallax-postgres", "extension_timescaledb"),
            ("parallax-postgres", "query_hypertables_present"),
        },
        "not_ready",
    ),
    # "Time-series data optimized": ConfidenceMetric is a plain table.
    "hypertable_missing": (
        {("parallax-postgres", "query_hypertables_present")},
        "not_ready",
    ),
    # "Database migrations applied": one started and did not finish.
    "migration_pending": (
        {("parallax-postgres", "query_migrations_applied")},
        "not_ready",
    ),
    # "Redis running and accessible": the container crashed.
    "redis_down": (REDIS | NOT_READY, "not_ready"),
    # "etcd cluster healthy": no leader; its gateway refuses reads, so the
    # registrations cannot be listed either.
    "etcd_unhealthy": (
        {
            ("parallax-etcd", "status_ok"),
            ("parallax-etcd", "condition_healthy"),
            ("parallax-etcd-registry", "status_ok"),
            ("parallax-etcd-registry", "condition_agents_registered"),
            *NOT_READY,
        },
        "not_ready",
    ),
    # "GET /health/ready shows all deps healthy": the pattern engine has no
    # patterns loaded.
    "dependency_down": (NOT_READY, "not_ready"),
    # "Response time < 100ms (p95)" (500 ms here): every API answer is 0.6 s late.
    "api_slow": (
        {("parallax-health", "latency_p95"), ("parallax-patterns", "latency_p95")},
        "ready",
    ),
    # "WebSocket /ws accepts connections": 403 instead of 101.
    "websocket_refused": (
        {("parallax-ws", "upgrade_accepted"), ("parallax-ws", "expect_matched")},
        "not_ready",
    ),
    # A port that must be closed: etcd's client port answers publicly.
    "etcd_port_exposed": (
        {("parallax-etcd-not-public", "port_closed")},
        "not_ready",
    ),
    # Metrics (Prometheus): not ready (its API answers 503 too) ...
    "prometheus_not_ready": (
        {
            ("parallax-prometheus", "status_ok"),
            ("parallax-prometheus-targets", "status_ok"),
            ("parallax-prometheus-targets", "condition_targets_up"),
        },
        "not_ready",
    ),
    # ... or ready with a target down: "All targets UP".
    "prometheus_target_down": (
        {("parallax-prometheus-targets", "condition_targets_up")},
        "not_ready",
    ),
    # Dashboards (Grafana): its database fails, /api/health answers 503.
    "grafana_not_ready": (
        {("parallax-grafana", "status_ok"), ("parallax-grafana", "condition_database")},
        "not_ready",
    ),
    # Tracing (Jaeger): v2's /status answers 200 with a recoverable error.
    "jaeger_not_ready": ({("parallax-jaeger", "condition_status")}, "not_ready"),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def estate(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ParallaxEstate]:
    running = await ParallaxEstate.start(tmp_path_factory.mktemp("parallax"))
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in running.env.items():
                patch.setenv(name, value)
            yield running
    finally:
        await running.stop()


def test_every_fault_has_a_case() -> None:
    assert set(EXPECTED) == set(FAULTS)


@module_loop
async def test_healthy_estate_is_ready(estate: ParallaxEstate) -> None:
    verdict = await judge(CONFIG, SYSTEM)

    assert verdict.failing == set(), verdict.details
    assert verdict.verdict == "ready"
    assert verdict.score == 1.0
    assert verdict.gate_exit == 0
    assert verdict.agree()
    system = next(s for s in verdict.document["systems"] if s["name"] == SYSTEM)
    checks = {
        (probe["name"], check["check"])
        for probe in system["probes"]
        for check in probe["checks"]
    }
    # The checklist's items are all judged (and passed), not left out.
    assert {
        ("parallax-ready", "condition_deps_up"),
        ("parallax-patterns", "condition_patterns_listed"),
        ("parallax-patterns", "latency_p95"),
        ("parallax-patterns", "csp_header"),
        ("parallax-patterns", "cors_not_wildcard"),
        ("parallax-patterns", "rate_limit_headers"),
        ("parallax-ws", "upgrade_accepted"),
        ("parallax-ws", "expect_matched"),
        ("parallax-postgres", "extension_timescaledb"),
        ("parallax-postgres", "query_migrations_applied"),
        ("parallax-postgres", "query_hypertables_present"),
        ("parallax-backups", "backup_integrity"),
        ("parallax-redis", "auth_required"),
        ("parallax-etcd-registry", "condition_agents_registered"),
        ("parallax-etcd-not-public", "port_closed"),
        ("parallax-public-api", "port_open"),
        ("parallax-prometheus-targets", "condition_targets_up"),
        ("parallax-grafana", "condition_database"),
        ("parallax-jaeger", "condition_status"),
    } <= checks
    assert len(system["attestations"]) == 10
    assert all(a["passed"] for a in system["attestations"])


@module_loop
@pytest.mark.parametrize("fault", list(EXPECTED))
async def test_fault_fails_exactly_its_checks(
    estate: ParallaxEstate, fault: str
) -> None:
    expected, verdict_name = EXPECTED[fault]
    async with estate.fault(fault):
        verdict = await judge(CONFIG, SYSTEM)

    assert verdict.failing == expected, verdict.details
    assert verdict.verdict == verdict_name
    assert verdict.agree()


@module_loop
async def test_details_name_the_cause(estate: ParallaxEstate) -> None:
    # Fan-out by key: /health/ready's detail names the dependency.
    async with estate.fault("dependency_down"):
        verdict = await judge(CONFIG, SYSTEM)
    assert verdict.details[("parallax-ready", "condition_deps_up")] == (
        '$.dependencies.patternEngine is "down", wanted == "up"'
    )
    # An unreachable database: its checks were not evaluated, for a reason.
    async with estate.fault("postgres_down"):
        verdict = await judge(CONFIG, SYSTEM)
    assert verdict.causes[("parallax-postgres", "extension_timescaledb")] == "connect"
    assert "not evaluated" in verdict.details[("parallax-postgres", "reachable")]
    assert (
        'dependencies.database is "down"'
        in verdict.details[("parallax-ready", "condition_deps_up")]
    )
    # The judged query names what it read.
    async with estate.fault("hypertable_missing"):
        verdict = await judge(CONFIG, SYSTEM)
    assert (
        "hypertables is 2, wanted == 3"
        in verdict.details[("parallax-postgres", "query_hypertables_present")]
    )


@module_loop
async def test_expired_attestations_fail(
    estate: ParallaxEstate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attested 100 days ago: the 30- and 90-day attestations have expired;
    two of them are critical."""
    monkeypatch.setenv(
        "PARALLAX_ATTESTED_AT",
        f"{dt.datetime.now(dt.UTC).date() - dt.timedelta(days=100)}",
    )
    verdict = await judge(CONFIG, SYSTEM)

    assert verdict.failing == {
        ("attestations", item)
        for item in (
            "point_in_time_recovery_tested",
            "load_test_passed",
            "executions_endpoint_tested",
            "resilience_tested",
            "etcd_authentication",
            "agent_runtime_isolation",
            "security_scan_completed",
        )
    }
    assert "expired" in verdict.details[("attestations", "etcd_authentication")]
    assert verdict.verdict == "not_ready"
    assert verdict.agree()
