"""The postgres probe against a real, throwaway PostgreSQL cluster.

One cluster for the module (tests/servers/postgres.py): scram-sha-256 over
TCP, TLS on, max_connections 8 with 2 reserved for superusers. Every test
closes its probe context, so connections never leak from one test to another.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
import trustme

from exporter.config import ConfigError, parse_config
from exporter.kinds import config_adapter
from exporter.probes.base import ProbeResult, Reason, Severity
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.postgres import APPLICATION_NAME, PostgresConfig
from exporter.runner import run_probe
from tests.conftest import StartServer, free_port
from tests.servers.postgres import (
    BinariesMissing,
    PostgresCluster,
    start_cluster,
    start_standby,
)

APP_PASSWORD = "app-pw:with@odd/chars"
BOUNDED_PASSWORD = "bounded-pw-4711"
COUNTED_PASSWORD = "counted-pw-0815"
WRONG_PASSWORD = "definitely-wrong-pw-9931"

ROLES_SQL = f"""
CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}';
CREATE ROLE bounded LOGIN PASSWORD '{BOUNDED_PASSWORD}';
ALTER ROLE bounded SET statement_timeout = '5s';
CREATE ROLE counted LOGIN PASSWORD '{COUNTED_PASSWORD}';
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    try:
        started = start_cluster(max_connections=8, superuser_reserved=2)
    except BinariesMissing as missing:
        pytest.skip(str(missing))
    try:
        asyncio.run(_execute_as_admin(started, ROLES_SQL))
        yield started
    finally:
        started.destroy()


@pytest.fixture(scope="module")
def standby(cluster: PostgresCluster) -> Iterator[PostgresCluster]:
    replica = start_standby(cluster)
    try:
        yield replica
    finally:
        replica.destroy()


async def _execute_as_admin(cluster: PostgresCluster, sql: str) -> None:
    admin = await asyncpg.connect(cluster.admin_dsn(), timeout=10)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture
async def admin(cluster: PostgresCluster) -> AsyncIterator[Any]:
    """A superuser connection over the unix socket, for looking behind the probe."""
    connection = await asyncpg.connect(cluster.admin_dsn(), timeout=10)
    yield connection
    await connection.close()


@pytest.fixture
async def ctx() -> AsyncIterator[ProbeContext]:
    context = ProbeContext("db", SharedResources())
    yield context
    await context.aclose()


def make_config(dsn: str, **fields: Any) -> PostgresConfig:
    raw = {"kind": "postgres", "name": "db", "dsn": dsn, "timeout": 5, **fields}
    raw.setdefault("interval", max(10, raw["timeout"] * 2))
    config = config_adapter().validate_python(raw)
    assert isinstance(config, PostgresConfig)
    return config


async def run_once(config: PostgresConfig) -> ProbeResult:
    """One run in a context of its own, closed afterwards."""
    context = ProbeContext(config.name, SharedResources())
    try:
        return await run_probe(config, context)
    finally:
        await context.aclose()


def app_dsn(cluster: PostgresCluster, **params: str) -> str:
    return cluster.dsn("app", APP_PASSWORD, **params)


def checks_of(result: ProbeResult) -> dict[str, Any]:
    return {check.name: check for check in result.checks}


def samples_of(result: ProbeResult) -> dict[str, float]:
    return {sample.name: sample.value for sample in result.samples}


def assert_secret_hidden(result: ProbeResult, *secrets: str) -> None:
    texts = [result.error, *(c.detail for c in result.checks)]
    texts += [value for s in result.samples for _, value in s.labels]
    for secret in {*secrets, *(quote(secret, safe="") for secret in secrets)}:
        assert all(secret not in text for text in texts), texts


async def count_backends(admin: Any, user: str) -> int:
    count: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE usename = $1 AND application_name = $2",
        user,
        APPLICATION_NAME,
    )
    return count


async def wait_for_backends(admin: Any, user: str, expected: int) -> int:
    """Poll: a closed client's backend exits a moment after the goodbye."""
    count = -1
    for _ in range(100):
        count = await count_backends(admin, user)
        if count == expected:
            break
        await asyncio.sleep(0.05)
    return count


# --- healthy server ---------------------------------------------------------------


async def test_healthy_server_passes_every_check(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    config = make_config(
        cluster.dsn("bounded", BOUNDED_PASSWORD), required_extensions=["plpgsql"]
    )
    result = await run_probe(config, ctx)
    assert result.success, result
    checks = checks_of(result)
    assert list(checks) == [
        "reachable",
        "connections_under_limit",
        "statement_timeout",
        "extension_plpgsql",
        "replica_lag",
    ]
    assert all(check.passed for check in checks.values()), checks
    samples = samples_of(result)
    assert samples["postgres_max_connections_usable"] == 6  # 8 minus 2 reserved
    assert 1 <= samples["postgres_backends"] <= 6
    assert samples["postgres_in_recovery"] == 0
    assert samples["postgres_replica_lag_seconds"] == 0
    assert samples["postgres_statement_timeout_seconds"] == 5
    assert samples["postgres_connect_seconds"] > 0
    assert samples["postgres_query_seconds"] > 0
    info = next(s for s in result.samples if s.name == "postgres_server_info")
    assert dict(info.labels)["version"].split(".")[0].isdigit()
    assert "primary" in checks["replica_lag"].detail


async def test_backends_include_other_roles_sessions(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    """A non-superuser probe also counts sessions whose details it cannot see."""
    result = await run_probe(make_config(app_dsn(cluster)), ctx)
    exact = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    )
    assert samples_of(result)["postgres_backends"] == exact
    assert exact >= 2  # the probe's session and the admin's


# --- failures the probe must name ---------------------------------------------------


async def test_wrong_password_is_auth_and_never_shown(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    in_dsn = await run_probe(make_config(cluster.dsn("app", WRONG_PASSWORD)), ctx)
    as_field = await run_probe(
        make_config(cluster.dsn("app", None), password=WRONG_PASSWORD), ctx
    )
    for result in (in_dsn, as_field):
        assert not result.success
        assert result.reason is Reason.AUTH
        assert "28P01" in result.error
        assert not checks_of(result)["reachable"].passed
        assert_secret_hidden(result, WRONG_PASSWORD)


async def test_unknown_role_is_auth(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    result = await run_probe(make_config(cluster.dsn("ghost", "x-pw")), ctx)
    assert result.reason is Reason.AUTH


async def test_unknown_database_is_a_config_error(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    dsn = cluster.dsn("app", APP_PASSWORD, database="no_such_db")
    result = await run_probe(make_config(dsn), ctx)
    assert result.reason is Reason.CONFIG
    assert "3D000" in result.error
    assert_secret_hidden(result, APP_PASSWORD)


async def fill_connection_slots(dsn: str, at_most: int) -> list[Any]:
    """Connect as *dsn* until the server says 53300; the caller closes them."""
    held: list[Any] = []
    for _ in range(at_most):
        try:
            held.append(await asyncpg.connect(dsn, timeout=5))
        except asyncpg.TooManyConnectionsError:
            return held
    for connection in held:
        await connection.close()
    raise AssertionError(f"the server took {at_most} connections without 53300")


async def test_full_server_is_protocol_then_recovers(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    held = await fill_connection_slots(app_dsn(cluster), cluster.max_connections)
    try:
        result = await run_probe(make_config(app_dsn(cluster)), ctx)
        assert result.reason is Reason.PROTOCOL
        assert "53300" in result.error
    finally:
        for connection in held:
            await connection.close()
    assert (await run_probe(make_config(app_dsn(cluster)), ctx)).success


async def test_connections_over_ratio_fail_a_warning(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    held = [await asyncpg.connect(app_dsn(cluster), timeout=5) for _ in range(4)]
    try:
        result = await run_probe(make_config(app_dsn(cluster)), ctx)
    finally:
        for connection in held:
            await connection.close()
    check = checks_of(result)["connections_under_limit"]
    assert not check.passed  # at least 5 of 6 usable slots: above 80 %
    assert check.severity is Severity.WARNING
    assert "of 6 usable" in check.detail
    assert result.success  # a warning does not fail the probe


async def test_refused_port_is_connect(ctx: ProbeContext) -> None:
    password = quote(APP_PASSWORD, safe="")
    dsn = f"postgresql://app:{password}@127.0.0.1:{free_port()}/postgres"
    result = await run_probe(make_config(dsn), ctx)
    assert result.reason is Reason.CONNECT
    assert "Connect call failed" in result.error  # not a DNS error: DSN parsed
    assert all(not check.passed for check in result.checks)
    assert_secret_hidden(result, APP_PASSWORD)


async def test_silent_peer_is_timeout_within_the_deadline(
    tcp_server: StartServer, ctx: ProbeContext
) -> None:
    port = await tcp_server()
    config = make_config(f"postgresql://app@127.0.0.1:{port}/db", timeout=1)
    result = await run_probe(config, ctx)
    assert result.reason is Reason.TIMEOUT
    assert result.duration_seconds < config.timeout + 0.5


async def test_garbage_reply_is_protocol(
    tcp_server: StartServer, ctx: ProbeContext
) -> None:
    async def http_server(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(8)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        writer.close()

    port = await tcp_server(http_server)
    dsn = f"postgresql://app@127.0.0.1:{port}/db?sslmode=disable"
    result = await run_probe(make_config(dsn), ctx)
    assert result.reason is Reason.PROTOCOL


async def test_server_without_tls_is_tls_when_required_by_sslmode(
    tcp_server: StartServer, ctx: ProbeContext
) -> None:
    async def refuses_tls(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(8)  # the SSLRequest
        writer.write(b"N")
        await writer.drain()
        await reader.read()

    port = await tcp_server(refuses_tls)
    dsn = f"postgresql://app@127.0.0.1:{port}/db?sslmode=require"
    result = await run_probe(make_config(dsn), ctx)
    assert result.reason is Reason.TLS


async def test_bad_query_is_a_config_error(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    result = await run_probe(make_config(app_dsn(cluster), query="SELEC 1"), ctx)
    assert result.reason is Reason.CONFIG
    assert "42601" in result.error


# --- checks ---------------------------------------------------------------------------


async def test_missing_extension_fails_critical_present_one_passes(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    config = make_config(
        app_dsn(cluster), required_extensions=["plpgsql", "timescaledb"]
    )
    result = await run_probe(config, ctx)
    checks = checks_of(result)
    assert checks["extension_plpgsql"].passed
    assert not checks["extension_timescaledb"].passed
    assert (
        "not installed in database postgres" in checks["extension_timescaledb"].detail
    )
    assert result.reason is Reason.CHECK
    assert "extension_timescaledb" in result.error


async def test_statement_timeout_unset_set_and_above_limit(
    cluster: PostgresCluster,
) -> None:
    unset = await run_once(make_config(app_dsn(cluster)))
    check = checks_of(unset)["statement_timeout"]
    assert not check.passed
    assert "not set" in check.detail
    assert unset.success  # a warning
    assert samples_of(unset)["postgres_statement_timeout_seconds"] == 0

    bounded_dsn = cluster.dsn("bounded", BOUNDED_PASSWORD)
    within = await run_once(make_config(bounded_dsn))
    assert checks_of(within)["statement_timeout"].passed

    above = await run_once(make_config(bounded_dsn, statement_timeout_max="1s"))
    assert not checks_of(above)["statement_timeout"].passed
    assert "5s, limit 1s" in checks_of(above)["statement_timeout"].detail

    off = await run_once(make_config(app_dsn(cluster), check_statement_timeout=False))
    assert "statement_timeout" not in checks_of(off)


async def test_require_tls_passes_encrypted_and_fails_plain(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    verified = app_dsn(cluster, sslmode="verify-full", sslrootcert=str(cluster.ca_file))
    encrypted = await run_probe(make_config(verified, require_tls=True), ctx)
    check = checks_of(encrypted)["connection_encrypted"]
    assert check.passed, check
    assert "TLSv1" in check.detail
    assert encrypted.success

    plain = await run_once(
        make_config(app_dsn(cluster, sslmode="disable"), require_tls=True)
    )
    assert not checks_of(plain)["connection_encrypted"].passed
    assert plain.reason is Reason.CHECK


async def test_untrusted_server_certificate_is_tls(
    cluster: PostgresCluster, ctx: ProbeContext, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    dsn = app_dsn(cluster, sslmode="verify-full", sslrootcert=str(other_ca))
    result = await run_probe(make_config(dsn), ctx)
    assert result.reason is Reason.TLS


async def _replayed(standby_admin: Any, primary_admin: Any) -> None:
    """Commit on the primary; wait until the standby has replayed it."""
    await primary_admin.execute("CREATE TABLE IF NOT EXISTS ticks (at timestamptz)")
    await primary_admin.execute("INSERT INTO ticks VALUES (now())")
    target = await primary_admin.fetchval("SELECT pg_current_wal_insert_lsn()")
    for _ in range(200):
        if await standby_admin.fetchval(
            "SELECT pg_last_wal_replay_lsn() >= $1", target
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the standby did not replay the primary's commit")


async def test_standby_is_in_recovery_and_judges_replay_lag(
    standby: PostgresCluster, admin: Any, ctx: ProbeContext
) -> None:
    standby_admin = await asyncpg.connect(standby.admin_dsn(), timeout=10)
    try:
        await _replayed(standby_admin, admin)
        caught_up = await run_probe(make_config(app_dsn(standby)), ctx)
        await standby_admin.execute("SELECT pg_wal_replay_pause()")
        try:
            await admin.execute("INSERT INTO ticks VALUES (now())")
            await asyncio.sleep(0.3)  # the last replayed commit ages
            behind = await run_probe(
                make_config(app_dsn(standby), replica_lag_max="100ms"), ctx
            )
        finally:
            await standby_admin.execute("SELECT pg_wal_replay_resume()")
    finally:
        await standby_admin.close()
    assert caught_up.success, caught_up
    assert samples_of(caught_up)["postgres_in_recovery"] == 1
    assert checks_of(caught_up)["replica_lag"].passed
    lag = checks_of(behind)["replica_lag"]
    assert not lag.passed, lag
    assert "limit 0.1s" in lag.detail
    assert samples_of(behind)["postgres_replica_lag_seconds"] > 0.1
    assert behind.success  # replica_lag is a warning


# --- connections across runs ----------------------------------------------------------


async def test_reuses_one_connection_over_many_runs(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    config = make_config(cluster.dsn("counted", COUNTED_PASSWORD))
    results = [await run_probe(config, ctx) for _ in range(20)]
    assert all(result.success for result in results)
    assert await count_backends(admin, "counted") == 1
    connected = ["postgres_connect_seconds" in samples_of(r) for r in results]
    assert connected == [True] + [False] * 19
    await ctx.aclose()
    assert await wait_for_backends(admin, "counted", 0) == 0


async def test_fresh_connection_leaves_no_backend(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    config = make_config(
        cluster.dsn("counted", COUNTED_PASSWORD), fresh_connection=True
    )
    results = [await run_probe(config, ctx) for _ in range(5)]
    assert all(result.success for result in results)
    assert all("postgres_connect_seconds" in samples_of(r) for r in results)
    assert await wait_for_backends(admin, "counted", 0) == 0


async def test_failed_run_closes_its_connection(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    config = make_config(
        cluster.dsn("counted", COUNTED_PASSWORD), query="SELECT pg_sleep(30)", timeout=1
    )
    result = await run_probe(config, ctx)
    assert result.reason is Reason.TIMEOUT
    # Gone long before pg_sleep(30) ends: the query was cancelled, not orphaned.
    assert await wait_for_backends(admin, "counted", 0) == 0


async def test_open_transaction_is_not_kept(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    config = make_config(
        cluster.dsn("counted", COUNTED_PASSWORD), query="BEGIN; SELECT 1"
    )
    assert (await run_probe(config, ctx)).success
    state = await admin.fetchval(
        "SELECT state FROM pg_stat_activity WHERE usename = 'counted'"
    )
    assert state == "idle"


async def test_terminated_backend_is_replaced_within_the_run(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    config = make_config(cluster.dsn("counted", COUNTED_PASSWORD))
    assert (await run_probe(config, ctx)).success
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE usename = 'counted'"
    )
    result = await run_probe(config, ctx)
    assert result.success, result
    assert "postgres_connect_seconds" in samples_of(result)
    assert await count_backends(admin, "counted") == 1


async def test_server_restart_is_connect_then_recovers(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    config = make_config(app_dsn(cluster), timeout=3)
    assert (await run_probe(config, ctx)).success
    cluster.stop("fast")
    try:
        down = await run_probe(config, ctx)
    finally:
        cluster.start()
    assert down.reason is Reason.CONNECT
    assert not checks_of(down)["reachable"].passed
    up = await run_probe(config, ctx)
    assert up.success, up
    assert "postgres_connect_seconds" in samples_of(up)


# --- config -----------------------------------------------------------------------------


async def test_password_file_is_read_at_run_time(
    cluster: PostgresCluster, ctx: ProbeContext, tmp_path: Path
) -> None:
    secret = tmp_path / "pg-password"
    config = make_config(cluster.dsn("app", None), password_file=str(secret))
    missing = await run_probe(config, ctx)
    assert missing.reason is Reason.CONFIG
    assert "password_file" in missing.error
    secret.write_text(APP_PASSWORD + "\n")
    assert (await run_probe(config, ctx)).success


async def test_env_reference_in_dsn(
    cluster: PostgresCluster, ctx: ProbeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_TEST_DSN_PASSWORD", BOUNDED_PASSWORD)
    config = parse_config(
        textwrap.dedent(
            f"""
            probes:
              - kind: postgres
                name: db
                dsn: postgresql://bounded:${{PG_TEST_DSN_PASSWORD}}@127.0.0.1:{cluster.port}/postgres
            """
        )
    ).probes[0]
    assert (await run_probe(config, ctx)).success


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"dsn": "host=db password=hunter2-secret"},
            "dsn must be a URL such as postgresql://",
        ),
        (
            {"dsn": "postgresql://db/x", "password": "a", "password_file": "/p"},
            "set either password or password_file, not both",
        ),
        (
            {"dsn": "postgresql://db/x", "statement_timeout_max": 0},
            "check_statement_timeout: false",
        ),
        (
            {"dsn": "postgresql://db/x", "required_extensions": ["bad name"]},
            "required_extensions",
        ),
        (
            {"dsn": "postgresql://db/x", "max_connections_ratio": 1.5},
            "max_connections_ratio",
        ),
    ],
)
def test_bad_config_says_what_to_write(fields: dict[str, Any], message: str) -> None:
    import yaml

    entry = {"kind": "postgres", "name": "db", **fields}
    with pytest.raises(ConfigError) as raised:
        parse_config(yaml.safe_dump({"probes": [entry]}))
    assert message in str(raised.value)
    assert "hunter2-secret" not in str(raised.value)
