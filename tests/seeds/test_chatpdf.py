"""Checklist 001, the ChatPDF-style FastAPI app: config/examples/chatpdf.yml
against a simulated estate of the app (tests/seeds/chatpdf_estate.py),
healthy and with each fault the checklist names; then both seed systems
of this pair (chatpdf and mcp-threading) in one estate, where a fault in
one leaves the other's verdict as it was.

Each case runs every probe once as the daemon does and once more through
`check --system`, and asserts exactly which (probe, check) pairs fail and
that the status document, /metrics and the gate agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from tests.seeds.chatpdf_estate import FAULTS, ChatpdfEstate
from tests.seeds.common import EXAMPLES, judge
from tests.seeds.mcp_threading_estate import McpEstate

# The estate lives on the module's event loop, and so do the tests.
module_loop = pytest.mark.asyncio(loop_scope="module")

CONFIG = EXAMPLES / "chatpdf.yml"
SYSTEM = "chatpdf"
MCP = "mcp-threading"
HEADERS = {
    ("chatpdf-frontend", "hsts_header"),
    ("chatpdf-frontend", "x_frame_options_header"),
    ("chatpdf-frontend", "x_content_type_options_header"),
    ("chatpdf-frontend", "csp_header"),
}

# The fault -> the (probe, check) pairs it must fail, and the verdict.
EXPECTED: dict[str, tuple[set[tuple[str, str]], str]] = {
    # Health Checks: /health answers 503 {"status": "unhealthy"}.
    "backend_unhealthy": (
        {
            ("chatpdf-backend-health", "status_ok"),
            ("chatpdf-backend-health", "condition_healthy"),
        },
        "not_ready",
    ),
    # ... or 200 {"status": "degraded"}: not {"status": "healthy"} either.
    "backend_degraded": (
        {("chatpdf-backend-health", "condition_healthy")},
        "not_ready",
    ),
    # "Security headers configured (CSP, HSTS, X-Frame-Options)": the
    # frontend's nginx block is gone. Each header is one checklist item
    # that the backend still passes (1 of 2 probes), and a warning: the
    # score drops (0.978) and the system stays ready.
    "frontend_headers_dropped": (HEADERS, "ready"),
    # "CORS configured with specific origins (no wildcards)".
    "cors_wildcard": ({("chatpdf-backend-health", "cors_not_wildcard")}, "ready"),
    # HTTPSRedirectMiddleware: plain http answers instead of redirecting.
    "https_redirect_missing": ({("chatpdf-backend-health", "https_redirect")}, "ready"),
    # "Certificate expiration < 30 days": one certificate serves both sites.
    "cert_expiring": (
        {
            ("chatpdf-api-cert", "cert_expiry_warning"),
            ("chatpdf-frontend-cert", "cert_expiry_warning"),
        },
        "ready",
    ),
    # "MongoDB authentication enabled": mongod without --auth.
    "mongodb_without_auth": ({("chatpdf-mongodb", "auth_required")}, "not_ready"),
    # "Automated Daily Backups": last night's dump is missing, here and in S3.
    "backup_stale": (
        {
            ("chatpdf-mongodb-backups", "backup_fresh"),
            ("chatpdf-mongodb-backups-s3", "backup_fresh"),
        },
        "not_ready",
    ),
    # RETENTION_DAYS=30: the script ran with 7, eight nights are left.
    "backup_retention_short": (
        {("chatpdf-mongodb-backups", "backup_retention")},
        "ready",
    ),
    # The newest archive was cut short (and uploaded so).
    "backup_truncated": (
        {
            ("chatpdf-mongodb-backups", "backup_integrity"),
            ("chatpdf-mongodb-backups-s3", "backup_integrity"),
        },
        "not_ready",
    ),
    # ... or mongodump died mid-dump inside a complete gzip stream.
    "backup_dump_cut": (
        {
            ("chatpdf-mongodb-backups", "backup_integrity"),
            ("chatpdf-mongodb-backups-s3", "backup_integrity"),
        },
        "not_ready",
    ),
}
# What the detail of a failing check says, for some of them.
DETAILS: dict[str, tuple[tuple[str, str], str]] = {
    "backend_unhealthy": (
        ("chatpdf-backend-health", "condition_healthy"),
        '$.status is "unhealthy", wanted == "healthy"',
    ),
    "cors_wildcard": (
        ("chatpdf-backend-health", "cors_not_wildcard"),
        "Access-Control-Allow-Origin is *",
    ),
    "cert_expiring": (("chatpdf-api-cert", "cert_expiry_warning"), "limit 30"),
    "backup_stale": (("chatpdf-mongodb-backups", "backup_fresh"), "max 26.0h"),
    "backup_truncated": (
        ("chatpdf-mongodb-backups", "backup_integrity"),
        "gz: truncated",
    ),
    "backup_dump_cut": (
        ("chatpdf-mongodb-backups-s3", "backup_integrity"),
        "mongodump archive does not end with its terminator",
    ),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def estate(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ChatpdfEstate]:
    running = await ChatpdfEstate.start(tmp_path_factory.mktemp("chatpdf"))
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
async def test_healthy_estate_is_ready(estate: ChatpdfEstate) -> None:
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
    assert {
        ("chatpdf-backend-health", "condition_healthy"),
        ("chatpdf-backend-health", "latency_p95"),
        ("chatpdf-backend-health", "cors_not_wildcard"),
        ("chatpdf-backend-health", "https_redirect"),
        *HEADERS,
        ("chatpdf-api-cert", "cert_expiry_warning"),
        ("chatpdf-mongodb", "auth_required"),
        ("chatpdf-mongodb", "connection_encrypted"),
        ("chatpdf-mongodb-backups", "backup_fresh"),
        ("chatpdf-mongodb-backups", "backup_retention"),
        ("chatpdf-mongodb-backups", "backup_integrity"),
        ("chatpdf-mongodb-backups-s3", "backup_integrity"),
    } <= checks


@module_loop
@pytest.mark.parametrize("fault", list(EXPECTED))
async def test_fault_fails_exactly_its_checks(
    estate: ChatpdfEstate, fault: str
) -> None:
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
async def test_healthy_again_after_the_faults(estate: ChatpdfEstate) -> None:
    verdict = await judge(CONFIG, SYSTEM)
    assert (verdict.verdict, verdict.failing, verdict.gate_exit) == ("ready", set(), 0)


# --- both systems in one estate --------------------------------------------------------


def combined_config(path: Path, *sources: Path) -> Path:
    """One config file holding the systems and probes of *sources*, each
    probe keeping its file's defaults (system, interval, timeout)."""
    systems: dict[str, Any] = {}
    probes: list[dict[str, Any]] = []
    for source in sources:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        systems.update(data["systems"])
        for probe in data["probes"]:
            probes.append({**data["defaults"], **probe})
    path.write_text(
        yaml.safe_dump({"systems": systems, "probes": probes}, sort_keys=False),
        encoding="utf-8",
    )
    return path


@pytest_asyncio.fixture(loop_scope="module")
async def mcp(
    estate: ChatpdfEstate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[McpEstate]:
    """The mcp-threading estate beside this one, sharing its S3 server (moto
    keeps one store per process)."""
    running = await McpEstate.start(tmp_path / "mcp", s3=estate.s3)
    try:
        for name, value in running.env.items():
            monkeypatch.setenv(name, value)
        yield running
    finally:
        await running.stop()


def seen(document: dict[str, Any], system: str) -> tuple[str, float, set[Any]]:
    """*system*'s verdict, score and failing (probe, check) pairs in a
    status document."""
    entry = next(s for s in document["systems"] if s["name"] == system)
    failing = {(c["probe"], c["check"]) for c in entry["failing_checks"]}
    return entry["verdict"], entry["score"], failing


@module_loop
async def test_a_fault_in_one_system_leaves_the_other_as_it_was(
    estate: ChatpdfEstate, mcp: McpEstate, tmp_path: Path
) -> None:
    path = combined_config(
        tmp_path / "estate.yml", CONFIG, EXAMPLES / "mcp-threading.yml"
    )
    # Each judge runs the whole estate once as the daemon does (the status
    # document holds both systems), then the gate of the system it names.
    healthy = (await judge(path, SYSTEM)).document
    assert seen(healthy, SYSTEM) == ("ready", 1.0, set())
    assert seen(healthy, MCP) == ("ready", 1.0, set())
    assert healthy["estate"]["verdict"] == "ready"

    async with estate.fault("backend_unhealthy"):
        other = await judge(path, MCP)
    assert (other.verdict, other.score, other.failing) == ("ready", 1.0, set())
    assert other.gate_exit == 0 and other.agree()
    verdict, _, failing = seen(other.document, SYSTEM)
    assert (verdict, failing) == ("not_ready", EXPECTED["backend_unhealthy"][0])
    assert other.document["estate"]["verdict"] == "not_ready"  # its worst system's

    async with mcp.fault("worker_stopped"):
        chatpdf = await judge(path, SYSTEM)
    assert (chatpdf.verdict, chatpdf.score, chatpdf.failing) == ("ready", 1.0, set())
    assert chatpdf.gate_exit == 0 and chatpdf.agree()
    verdict, _, failing = seen(chatpdf.document, MCP)
    assert (verdict, failing) == ("not_ready", {("mcp-worker", "workers_alive")})
