"""Checklist 002, Schedgen (NestJS): config/examples/schedgen.yml against a
simulated estate of the system (tests/seeds/schedgen_estate.py), healthy
and with each fault the checklist names.

Each case runs every probe once as the daemon does and once more through
`check --system schedgen`, and asserts exactly which (probe, check) pairs
fail and that the status document, /metrics and the gate agree. A growing
backlog needs several runs to be seen, so that case runs the daemon's
probes run after run and shows what the one-shot gate says of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from exporter.config import load_config
from exporter.scheduler import Scheduler
from exporter.status import status_document
from tests.seeds.common import EXAMPLES, judge
from tests.seeds.schedgen_estate import FAULTS, SchedgenEstate

# The estate lives on the module's event loop, and so do the tests.
module_loop = pytest.mark.asyncio(loop_scope="module")

CONFIG = EXAMPLES / "schedgen.yml"
SYSTEM = "schedgen"
API_DOWN = {
    ("schedgen-api-health", "status_ok"),
    ("schedgen-api-health", "condition_healthy"),
    ("schedgen-api-health", "condition_indicators_up"),
}

# The fault -> the (probe, check) pairs it must fail, and the verdict.
EXPECTED: dict[str, tuple[set[tuple[str, str]], str]] = {
    # PDF Worker Scaling / Health Checks: the pdf-worker service is down:
    # the jobs endpoint reports no worker on pdf-processing, and Terminus'
    # pdf-worker indicator turns /health into a 503.
    "pdf_workers_down": (
        {
            ("schedgen-jobs", "workers_alive"),
            ("schedgen-jobs", "workers_alive_count"),
            ("schedgen-jobs", "condition_pdf_workers"),
            *API_DOWN,
        },
        "not_ready",
    ),
    # "Test with 3 worker instances": one of three died. workers_alive_min
    # sums every queue's workers (2 + calendar-sync's 1 = 3), so only the
    # CEL condition on pdf-processing itself sees it.
    "one_pdf_worker_down": ({("schedgen-jobs", "condition_pdf_workers")}, "not_ready"),
    # Job Queue: 1001 PDF jobs waiting, the queue's maxSize is 1000: the
    # endpoint's reply and BullMQ's keys say the same.
    "queue_over_limit": (
        {
            ("schedgen-jobs", "queue_depth"),
            ("schedgen-queue-redis", "bullmq_pdf-processing_depth"),
        },
        "ready",
    ),
    # Redis Configuration: "Set maxmemory to 2GB" (unset, or too large).
    "redis_maxmemory_unset": ({("schedgen-redis", "maxmemory_set")}, "ready"),
    "redis_maxmemory_4gb": ({("schedgen-redis", "maxmemory_set")}, "ready"),
    # "Configure allkeys-lru eviction policy".
    "redis_eviction_volatile": ({("schedgen-redis", "eviction_policy")}, "ready"),
    # "Enable AOF persistence".
    "redis_aof_off": ({("schedgen-redis", "persistence")}, "ready"),
    # Database Connection Pool: a leaking pool holds 6 more connections,
    # 7 of 8 usable (88 %).
    "postgres_connections_high": (
        {("schedgen-postgres", "connections_under_limit")},
        "ready",
    ),
    # "Add MinIO health check": MinIO answers 503, and so does /health.
    "minio_down": ({("schedgen-minio", "status_ok"), *API_DOWN}, "not_ready"),
    # Traefik "Dashboard secured": it answers without credentials.
    "dashboard_open": ({("schedgen-traefik-dashboard", "status_ok")}, "not_ready"),
    # "SSL/TLS certificates ready (auto via Traefik)": the ACME renewal
    # stopped; 20 days left is a warning, 3 days a critical.
    "cert_expiring": ({("schedgen-tls", "cert_expiry_warning")}, "ready"),
    "cert_expiring_soon": (
        {
            ("schedgen-tls", "cert_expiry_warning"),
            ("schedgen-tls", "cert_expiry_critical"),
        },
        "not_ready",
    ),
    # "Daily database backups configured": last night's run failed, so
    # nothing was uploaded either.
    "backup_stale": (
        {
            ("schedgen-backups", "backup_fresh"),
            ("schedgen-backups-offsite", "backup_fresh"),
        },
        "not_ready",
    ),
    # "7-day retention policy set": the prune kept 3 days.
    "backup_retention_short": ({("schedgen-backups", "backup_retention")}, "ready"),
    # "Backup verification automated": last night's dump is cut short, as a
    # gzip stream, or as a pg_dump that lost its \unrestrict line.
    "backup_truncated": ({("schedgen-backups", "backup_integrity")}, "not_ready"),
    "backup_without_unrestrict": (
        {("schedgen-backups", "backup_integrity")},
        "not_ready",
    ),
    # The off-site copy: last night's upload failed.
    "offsite_upload_stopped": (
        {("schedgen-backups-offsite", "backup_fresh")},
        "not_ready",
    ),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def estate(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SchedgenEstate]:
    running = await SchedgenEstate.start(tmp_path_factory.mktemp("schedgen"))
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
async def test_healthy_estate_is_ready(estate: SchedgenEstate) -> None:
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
        ("schedgen-api-health", "condition_indicators_up"),
        ("schedgen-api-health", "rate_limit_headers"),
        ("schedgen-tls", "cert_expiry_warning"),
        ("schedgen-tls", "legacy_tls_refused"),
        ("schedgen-jobs", "workers_alive_count"),
        ("schedgen-jobs", "queue_depth"),
        ("schedgen-jobs", "growth_waiting"),
        ("schedgen-postgres", "connections_under_limit"),
        ("schedgen-postgres", "statement_timeout"),
        ("schedgen-redis", "maxmemory_set"),
        ("schedgen-redis", "eviction_policy"),
        ("schedgen-redis", "persistence"),
        ("schedgen-queue-redis", "bullmq_eviction_policy"),
        ("schedgen-queue-redis", "bullmq_pdf-processing_backlog"),
        ("schedgen-backups", "backup_integrity"),
        ("schedgen-backups", "backup_retention"),
        ("schedgen-backups-offsite", "backup_encrypted"),
    } <= checks
    items = {a["item"] for a in system["attestations"] if a["passed"]}
    assert {"database_restore_tested", "load_tests_passed"} <= items
    # The current pg_dump's footer is read to its \unrestrict line.
    probe = next(p for p in system["probes"] if p["name"] == "schedgen-backups")
    integrity = next(c for c in probe["checks"] if c["check"] == "backup_integrity")
    assert "pg_dump.sql.gz read to the end" in integrity["detail"]


@module_loop
@pytest.mark.parametrize("fault", list(EXPECTED))
async def test_fault_fails_exactly_its_checks(
    estate: SchedgenEstate, fault: str
) -> None:
    expected, verdict_name = EXPECTED[fault]
    async with estate.fault(fault):
        verdict = await judge(CONFIG, SYSTEM)

    assert verdict.failing == expected, verdict.details
    assert verdict.verdict == verdict_name
    assert verdict.agree()


@module_loop
async def test_details_name_the_cause(estate: SchedgenEstate) -> None:
    async with estate.fault("minio_down"):
        verdict = await judge(CONFIG, SYSTEM)
    # Fan-out by key: the indicator that is down names itself.
    assert (
        'k = "minio"'
        in verdict.details[("schedgen-api-health", "condition_indicators_up")]
    )
    async with estate.fault("queue_over_limit"):
        verdict = await judge(CONFIG, SYSTEM)
    assert (
        "pdf-processing 1001 of 1000"
        in verdict.details[("schedgen-jobs", "queue_depth")]
    )
    async with estate.fault("backup_without_unrestrict"):
        verdict = await judge(CONFIG, SYSTEM)
    assert (
        "without its \\unrestrict line"
        in verdict.details[("schedgen-backups", "backup_integrity")]
    )


@module_loop
async def test_a_growing_backlog_is_seen_by_the_daemon(
    estate: SchedgenEstate,
) -> None:
    """Job Queue, "Test queue under load": 50 more PDF jobs waiting at every
    run, never over maxSize. Both the jobs endpoint (`growth: {waiting: 5}`
    of the preset) and BullMQ's keys (`backlog_growth_runs: 5`) see it once
    it rose on five runs in a row: on the sixth run of the daemon."""
    growth = {
        ("schedgen-jobs", "growth_waiting"),
        ("schedgen-queue-redis", "bullmq_pdf-processing_backlog"),
    }
    scheduler = Scheduler(load_config(CONFIG))
    seen: list[set[tuple[str, str]]] = []
    system: dict[str, Any] = {}
    try:
        for _ in range(6):
            await estate.grow_backlog(50)
            await scheduler.run_all_once()
            document = status_document(scheduler)
            system = next(s for s in document["systems"] if s["name"] == SYSTEM)
            seen.append({(c["probe"], c["check"]) for c in system["failing_checks"]})
    finally:
        await scheduler.stop()
    try:
        assert seen[:5] == [set()] * 5
        assert seen[5] == growth
        # Two warnings: the system is still ready, with a lower score.
        assert (system["verdict"], system["score"]) == (
            "ready",
            pytest.approx(0.98, abs=0.01),
        )
        # The gate runs once: it has nothing to compare, so it passes. Both
        # verdicts are "ready"; the daemon alone names the growth.
        gate = await judge(CONFIG, SYSTEM)
        assert gate.failing == set()
        assert gate.gate_exit == 0 and gate.agree()
    finally:
        await estate.heal_queues()
