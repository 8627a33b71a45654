"""Checklist 000, the MCP Threading System: config/examples/mcp-threading.yml
against a simulated estate of the system (tests/seeds/mcp_threading_estate.py),
healthy and with each fault the checklist names.

Each case runs every probe once as the daemon does and once more through
`check --system mcp-threading`, and asserts exactly which (probe, check)
pairs fail and that the status document, /metrics and the gate agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.seeds.common import EXAMPLES, judge
from tests.seeds.mcp_threading_estate import FAULTS, McpEstate

# The estate lives on the module's event loop, and so do the tests.
module_loop = pytest.mark.asyncio(loop_scope="module")

CONFIG = EXAMPLES / "mcp-threading.yml"
SYSTEM = "mcp-threading"

# The fault -> the (probe, check) pairs it must fail, and the verdict. A
# failing critical check makes the system not ready; a failing warning
# only lowers its score (to about 0.97 here), and it stays ready.
EXPECTED: dict[str, tuple[set[tuple[str, str]], str]] = {
    # "Worker thread health and status": worker.isRunning false.
    "worker_stopped": ({("mcp-worker", "workers_alive")}, "not_ready"),
    # "Set appropriate memory limits (WORKER_MAX_MEMORY_MB)": 600 MiB of 512
    # (a warning).
    "worker_over_memory": ({("mcp-worker", "worker_memory")}, "ready"),
    # "Configure message queue sizes appropriately": 250 pending of 100 (a
    # warning).
    "message_backlog": ({("mcp-worker", "queue_depth")}, "ready"),
    # "Error rates and recovery": the restart circuit breaker gave up.
    "circuit_breaker_open": (
        {("mcp-worker", "condition_circuit_breaker_closed")},
        "not_ready",
    ),
    # "Configure health check endpoints": /api/health answers 500.
    "api_health_failing": (
        {
            ("mcp-api-health", "status_ok"),
            ("mcp-api-health", "condition_database_connected"),
            ("mcp-api-health", "condition_db_pool_headroom"),
        },
        "not_ready",
    ),
    # "Network access to MongoDB": nothing listens. The probe fails every
    # check it would have made, and the backend's /api/health reports its
    # database disconnected (while still answering 200).
    "mongodb_down": (
        {
            ("mcp-mongodb", "reachable"),
            ("mcp-mongodb", "auth_required"),
            ("mcp-mongodb", "replset_has_primary"),
            ("mcp-mongodb", "replset_members_healthy"),
            ("mcp-mongodb", "replica_lag"),
            ("mcp-mongodb", "connections_under_limit"),
            ("mcp-api-health", "condition_database_connected"),
        },
        "not_ready",
    ),
    # "Change default MongoDB credentials": a server started without --auth.
    "mongodb_without_auth": ({("mcp-mongodb", "auth_required")}, "not_ready"),
    # "Configure firewall rules (only expose necessary ports)".
    "mongodb_port_exposed": ({("mcp-mongodb-not-public", "port_closed")}, "not_ready"),
    # "Network access to Modbus devices": the meter reads requests and
    # never answers.
    "modbus_device_silent": (
        {
            ("mcp-energy-meter", "device_answers"),
            ("mcp-energy-meter", "registers_readable"),
            ("mcp-energy-meter", "values_in_range"),
        },
        "not_ready",
    ),
    # A reading outside its range: 264.8 V on a 207..253 V register (a
    # warning, as the modbus page says; make it critical where it must
    # stop a deploy).
    "register_out_of_range": ({("mcp-energy-meter", "values_in_range")}, "ready"),
}
# What the detail of a failing check says, for some of them.
DETAILS: dict[str, tuple[tuple[str, str], str]] = {
    "worker_stopped": (("mcp-worker", "workers_alive"), "0 of 1 alive"),
    "worker_over_memory": (("mcp-worker", "worker_memory"), "600.0 MiB of 512.0 MiB"),
    "message_backlog": (("mcp-worker", "queue_depth"), "250 of 100"),
    "mongodb_without_auth": (
        ("mcp-mongodb", "auth_required"),
        "listDatabases allowed without credentials",
    ),
    "register_out_of_range": (
        ("mcp-energy-meter", "values_in_range"),
        "voltage_volts=264.8 outside 207..253",
    ),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def estate(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[McpEstate]:
    running = await McpEstate.start(tmp_path_factory.mktemp("mcp-threading"))
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
async def test_healthy_estate_is_ready(estate: McpEstate) -> None:
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
    # Every checklist item the config covers was judged.
    assert {
        ("mcp-worker", "workers_alive"),
        ("mcp-worker", "worker_memory"),
        ("mcp-worker", "queue_depth"),
        ("mcp-api-health", "hsts_header"),
        ("mcp-api-health", "cors_not_wildcard"),
        ("mcp-api-health", "rate_limit_headers"),
        ("mcp-public-cert", "cert_expiry_warning"),
        ("mcp-metrics", "body_matches"),
        ("mcp-mongodb-not-public", "port_closed"),
        ("mcp-mongodb", "auth_required"),
        ("mcp-mongodb", "replset_has_primary"),
        ("mcp-energy-meter", "values_in_range"),
        ("mcp-mongodb-backups", "backup_integrity"),
        ("mcp-mongodb-backups-offsite", "backup_retention"),
    } <= checks
    assert {a["item"] for a in system["attestations"]} == {
        "backup_restore_tested",
        "disaster_recovery_tested",
        "load_test_completed",
        "runbooks_created",
        "alerting_configured",
        "security_audit_completed",
        "secrets_and_env_reviewed",
    }


@module_loop
@pytest.mark.parametrize("fault", list(EXPECTED))
async def test_fault_fails_exactly_its_checks(estate: McpEstate, fault: str) -> None:
    expected, verdict_name = EXPECTED[fault]
    async with estate.fault(fault):
        verdict = await judge(CONFIG, SYSTEM)

    assert verdict.failing == expected, verdict.details
    assert verdict.verdict == verdict_name
    assert verdict.agree()
    if fault in DETAILS:
        pair, text = DETAILS[fault]
        assert text in verdict.details[pair]


@module_loop
async def test_healthy_again_after_the_faults(estate: McpEstate) -> None:
    verdict = await judge(CONFIG, SYSTEM)
    assert (verdict.verdict, verdict.failing, verdict.gate_exit) == ("ready", set(), 0)
