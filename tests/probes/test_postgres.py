"""The postgres probe against a real, throwaway PostgreSQL cluster.

One cluster for the module (tests/servers/postgres.py): scram-sha-256 over
TCP, TLS on, max_connections 8 with 2 reserved for superusers. Every test
closes its probe contexts, so connections never leak from one test to another.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
import trustme
import yaml

from exporter.config import parse_config
from exporter.kinds import PROBES
from exporter.probes.base import ProbeResult, Reason, Severity
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.postgres import (
    APPLICATION_NAME,
    Answer,
    JudgedQuery,
    PostgresConfig,
    judge_answer,
    plain,
)
from tests.conftest import StartServer, free_port
from tests.helpers import (
    config_problems,
    detail,
    eventually,
    failing,
    probe_config,
    run_once,
    sample,
    verdicts,
    wait_for_value,
)
from tests.servers.postgres import (
    BinariesMissing,
    PostgresCluster,
    start_cluster,
    start_standby,
)

pytestmark = pytest.mark.integration

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


Contexts = Callable[[], ProbeContext]


@pytest.fixture
async def contexts() -> AsyncIterator[Contexts]:
    """Factory of probe contexts, all closed when the test ends: a context
    keeps its connection, and the cluster has six usable slots."""
    made: list[ProbeContext] = []

    def make() -> ProbeContext:
        made.append(ProbeContext("db", SharedResources()))
        return made[-1]

    yield make
    for context in made:
        await context.aclose()


@pytest.fixture
def ctx(contexts: Contexts) -> ProbeContext:
    """One probe context for the test."""
    return contexts()


def make_config(dsn: str, **fields: Any) -> PostgresConfig:
    """The module's usual probe: name `db`, timeout 5 s."""
    fields.setdefault("timeout", 5)
    fields.setdefault("interval", max(10, fields["timeout"] * 2))
    config: PostgresConfig = probe_config("postgres", name="db", dsn=dsn, **fields)
    return config


def app_dsn(cluster: PostgresCluster, **params: str) -> str:
    return cluster.dsn("app", APP_PASSWORD, **params)


def postgres_problems(**fields: Any) -> str:
    """The config problems of one postgres probe entry with *fields*."""
    entry = {"kind": "postgres", "name": "db", **fields}
    return config_problems(yaml.safe_dump({"probes": [entry]}))


def assert_secret_hidden(result: ProbeResult, *secrets: str) -> None:
    texts = [result.error, *(c.detail for c in result.checks)]
    texts += [value for s in result.samples for _, value in s.labels]
    for secret in {*secrets, *(quote(secret, safe="") for secret in secrets)}:
        assert all(secret not in text for text in texts), texts


def the_runners_own_timeout(config: PostgresConfig, result: ProbeResult) -> bool:
    """Whether *result* was cut off by the runner's hard timeout rather than
    ended by the probe's deadline (the runner's text for a bare timeout)."""
    return result.error == f"no answer within {config.timeout:g}s"


async def count_backends(admin: Any, user: str) -> int:
    count: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE usename = $1 AND application_name = $2",
        user,
        APPLICATION_NAME,
    )
    return count


async def wait_for_backends(admin: Any, user: str, expected: int) -> int:
    """The probe's backends of *user* once there are *expected*: a closed
    client's backend exits a moment after the goodbye."""
    return await wait_for_value(
        lambda: count_backends(admin, user), lambda count: count == expected
    )


# --- healthy server ---------------------------------------------------------------


async def test_healthy_server_passes_every_check(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    config = make_config(
        cluster.dsn("bounded", BOUNDED_PASSWORD), required_extensions=["plpgsql"]
    )
    result = await run_once(config, ctx=ctx)
    assert result.success, result
    assert [check.name for check in result.checks] == [
        "reachable",
        "connections_under_limit",
        "statement_timeout",
        "extension_plpgsql",
        "replica_lag",
    ]
    assert not failing(result), result.checks
    assert sample(result, "postgres_max_connections_usable") == 6  # 8 minus 2
    assert 1 <= (sample(result, "postgres_backends") or 0) <= 6
    assert sample(result, "postgres_in_recovery") == 0
    assert sample(result, "postgres_replica_lag_seconds") == 0
    assert sample(result, "postgres_statement_timeout_seconds") == 5
    assert (sample(result, "postgres_connect_seconds") or 0) > 0
    assert (sample(result, "postgres_query_seconds") or 0) > 0
    info = next(s for s in result.samples if s.name == "postgres_server_info")
    assert dict(info.labels)["version"].split(".")[0].isdigit()
    assert "primary" in detail(result, "replica_lag")


async def test_backends_include_other_roles_sessions(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    """A non-superuser probe also counts sessions whose details it cannot see."""
    result = await run_once(make_config(app_dsn(cluster)), ctx=ctx)
    exact = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    )
    assert sample(result, "postgres_backends") == exact
    assert exact >= 2  # the probe's session and the admin's


# --- failures the probe must name ---------------------------------------------------


async def test_wrong_password_is_auth_and_never_shown(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    in_dsn = await run_once(make_config(cluster.dsn("app", WRONG_PASSWORD)), ctx=ctx)
    as_field = await run_once(
        make_config(cluster.dsn("app", None), password=WRONG_PASSWORD), ctx=ctx
    )
    for result in (in_dsn, as_field):
        assert not result.success
        assert result.reason is Reason.AUTH
        assert "28P01" in result.error
        assert not verdicts(result)["reachable"]
        assert_secret_hidden(result, WRONG_PASSWORD)


async def test_unknown_role_is_auth(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    result = await run_once(make_config(cluster.dsn("ghost", "x-pw")), ctx=ctx)
    assert result.reason is Reason.AUTH


async def test_unknown_database_is_a_config_error(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    dsn = cluster.dsn("app", APP_PASSWORD, database="no_such_db")
    result = await run_once(make_config(dsn), ctx=ctx)
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
        result = await run_once(make_config(app_dsn(cluster)), ctx=ctx)
        assert result.reason is Reason.PROTOCOL
        assert "53300" in result.error
    finally:
        for connection in held:
            await connection.close()
    assert (await run_once(make_config(app_dsn(cluster)), ctx=ctx)).success


async def test_connections_over_ratio_fail_a_warning(
    cluster: PostgresCluster, contexts: Contexts
) -> None:
    held = [await asyncpg.connect(app_dsn(cluster), timeout=5) for _ in range(4)]
    try:
        result = await run_once(make_config(app_dsn(cluster)), ctx=contexts())
        roomy = await run_once(
            make_config(app_dsn(cluster), connections_ratio_max=1.0), ctx=contexts()
        )
    finally:
        for connection in held:
            await connection.close()
    # at least 5 of 6 usable slots: above the default 80 %
    assert not verdicts(result)["connections_under_limit"]
    severity = {check.name: check.severity for check in result.checks}
    assert severity["connections_under_limit"] is Severity.WARNING
    assert "of 6 usable" in detail(result, "connections_under_limit")
    assert "limit 80%" in detail(result, "connections_under_limit")
    assert result.success  # a warning does not fail the probe
    assert verdicts(roomy)["connections_under_limit"]
    assert "limit 100%" in detail(roomy, "connections_under_limit")


async def test_refused_port_is_connect(ctx: ProbeContext) -> None:
    password = quote(APP_PASSWORD, safe="")
    dsn = f"postgresql://app:{password}@127.0.0.1:{free_port()}/postgres"
    result = await run_once(make_config(dsn), ctx=ctx)
    assert result.reason is Reason.CONNECT
    assert "Connect call failed" in result.error  # not a DNS error: DSN parsed
    assert not any(verdicts(result).values())
    assert_secret_hidden(result, APP_PASSWORD)


async def test_silent_peer_is_timeout_on_the_probes_deadline_and_hung_up(
    tcp_server: StartServer, ctx: ProbeContext
) -> None:
    hung_up = asyncio.Event()

    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the probe closes its end
        hung_up.set()
        writer.close()

    port = await tcp_server(silent)
    config = make_config(f"postgresql://app@127.0.0.1:{port}/db", timeout=1)
    result = await run_once(config, ctx=ctx)
    assert result.reason is Reason.TIMEOUT
    # asyncpg's timeout from ctx.deadline fired, not the runner's.
    assert not the_runners_own_timeout(config, result), result.error
    assert "connect and log in: no answer within" in result.error
    await eventually(hung_up.is_set)


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
    result = await run_once(make_config(dsn), ctx=ctx)
    assert result.reason is Reason.PROTOCOL


async def refuses_tls(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A server that answers the SSLRequest with N (no TLS here)."""
    await reader.read(8)  # the SSLRequest
    writer.write(b"N")
    await writer.drain()
    await reader.read()


async def test_server_without_tls_is_tls_when_required(
    tcp_server: StartServer, ctx: ProbeContext, tmp_path: Path
) -> None:
    port = await tcp_server(refuses_tls)
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))

    by_sslmode = await run_once(
        make_config(f"postgresql://app@127.0.0.1:{port}/db?sslmode=require"), ctx=ctx
    )
    by_tls_config = await run_once(
        make_config(
            f"postgresql://app@127.0.0.1:{port}/db", tls_config={"ca_file": ca_file}
        ),
        ctx=ctx,
    )

    for result in (by_sslmode, by_tls_config):
        assert result.reason is Reason.TLS, result.error
        assert "does not offer TLS" in result.error


async def test_bad_query_is_a_config_error(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    result = await run_once(make_config(app_dsn(cluster), query="SELEC 1"), ctx=ctx)
    assert result.reason is Reason.CONFIG
    assert "42601" in result.error


# --- judged queries (queries: query_<name>) ----------------------------------------------

# A schema as a TimescaleDB application leaves it: a migrations table and a
# table the migrations turn into a hypertable (here a plain table: the
# fixture has no TimescaleDB, and the check reads what is present).
SCHEMA_SQL = """
CREATE SCHEMA estate;
CREATE TABLE estate.schema_migrations (version text PRIMARY KEY);
INSERT INTO estate.schema_migrations
    VALUES ('20240101'), ('20240201'), ('20240301');
CREATE TABLE estate.conditions (time timestamptz NOT NULL, value float8);
CREATE TABLE estate.probe_writes (at timestamptz DEFAULT now());
GRANT USAGE ON SCHEMA estate TO app;
GRANT SELECT ON ALL TABLES IN SCHEMA estate TO app;
GRANT INSERT, DELETE ON estate.probe_writes, estate.schema_migrations TO app;
"""

MIGRATIONS = {
    "name": "migrations_applied",
    "sql": "SELECT count(*) AS applied FROM estate.schema_migrations",
    "expect": "applied >= 3",
}
LATEST = {
    "name": "latest_migration",
    "sql": "SELECT max(version) AS latest FROM estate.schema_migrations",
    "expect": 'latest == "20240301"',
}
HYPERTABLE = {
    "name": "hypertable_present",
    "sql": "SELECT to_regclass('estate.conditions') IS NOT NULL AS present",
    "expect": "present == true",
}


@pytest.fixture
async def estate(admin: Any) -> AsyncIterator[None]:
    await admin.execute(SCHEMA_SQL)
    yield
    # A probe that left a transaction open holds locks: fail, do not hang.
    await admin.execute("SET lock_timeout = '5s'; DROP SCHEMA estate CASCADE")


async def test_judged_queries_pass_and_show_the_row(
    cluster: PostgresCluster, ctx: ProbeContext, estate: None
) -> None:
    config = make_config(app_dsn(cluster), queries=[MIGRATIONS, LATEST, HYPERTABLE])

    result = await run_once(config, ctx=ctx)

    assert result.success, result.error
    assert [c.name for c in result.checks][-3:] == [
        "query_migrations_applied",
        "query_latest_migration",
        "query_hypertable_present",
    ]
    assert detail(result, "query_migrations_applied") == (
        'applied >= 3 holds: {"applied": 3}'
    )
    assert detail(result, "query_latest_migration") == (
        'latest == "20240301" holds: {"latest": "20240301"}'
    )
    assert detail(result, "query_hypertable_present") == (
        'present == true holds: {"present": true}'
    )


async def test_each_fault_fails_its_own_query_and_names_the_value(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any, estate: None
) -> None:
    config = make_config(app_dsn(cluster), queries=[MIGRATIONS, LATEST, HYPERTABLE])
    await admin.execute(
        "DELETE FROM estate.schema_migrations WHERE version = '20240301';"
        " DROP TABLE estate.conditions"
    )

    result = await run_once(config, ctx=ctx)

    assert result.reason is Reason.CHECK
    assert {name for name in failing(result) if name.startswith("query_")} == {
        "query_migrations_applied",
        "query_latest_migration",
        "query_hypertable_present",
    }
    # The condition's words (shared with http): the column, what it held.
    assert detail(result, "query_migrations_applied").endswith(
        "applied is 2, wanted >= 3"
    )
    assert detail(result, "query_latest_migration").endswith(
        'latest is "20240201", wanted == "20240301"'
    )
    assert detail(result, "query_hypertable_present").endswith(
        "present is false, wanted == true"
    )
    # The rest of the probe is judged as ever.
    assert verdicts(result)["reachable"] and verdicts(result)["replica_lag"]


async def test_a_refused_query_fails_its_check_and_the_next_still_runs(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any, estate: None
) -> None:
    config = make_config(app_dsn(cluster), queries=[MIGRATIONS, HYPERTABLE])
    await admin.execute("DROP TABLE estate.schema_migrations")

    result = await run_once(config, ctx=ctx)

    assert result.reason is Reason.CHECK, result.error
    assert detail(result, "query_migrations_applied") == (
        "the query failed: UndefinedTableError: relation"
        ' "estate.schema_migrations" does not exist (SQLSTATE 42P01)'
    )
    # The failed statement aborted the transaction; the next query got a new one.
    assert verdicts(result)["query_hypertable_present"] is True


async def test_a_judged_query_cannot_write(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any, estate: None
) -> None:
    # A data-modifying WITH starts with WITH, so only the read-only
    # transaction stops it.
    sneaky = {
        "name": "sneaky",
        "sql": "WITH gone AS (DELETE FROM estate.schema_migrations RETURNING 1)"
        " SELECT count(*) AS n FROM gone",
        "expect": "n == 0",
    }
    config = make_config(app_dsn(cluster), queries=[sneaky])

    result = await run_once(config, ctx=ctx)

    # The server names the statement's own tag, SELECT.
    assert detail(result, "query_sneaky") == (
        "the query failed: ReadOnlySQLTransactionError: cannot execute SELECT in"
        " a read-only transaction (SQLSTATE 25006)"
    )
    assert await admin.fetchval("SELECT count(*) FROM estate.schema_migrations") == 3


async def test_judged_queries_leave_the_session_as_they_found_it(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any, estate: None
) -> None:
    # The readiness query may write (a heartbeat row): the read-only
    # transaction of the judged queries ends with every run.
    config = make_config(
        app_dsn(cluster),
        query="INSERT INTO estate.probe_writes DEFAULT VALUES",
        queries=[MIGRATIONS],
    )
    for _ in range(2):
        result = await run_once(config, ctx=ctx)
        assert result.success, result.error
    assert await admin.fetchval("SELECT count(*) FROM estate.probe_writes") == 2
    states = await admin.fetch(
        "SELECT state FROM pg_stat_activity WHERE usename = 'app'"
        " AND application_name = $1",
        APPLICATION_NAME,
    )
    assert [row["state"] for row in states] == ["idle"]


async def test_session_state_of_a_query_does_not_outlive_its_run(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any, estate: None
) -> None:
    # A session advisory lock survives ROLLBACK; the kept connection is
    # reset, so the lock is not held until the daemon stops.
    config = make_config(
        app_dsn(cluster),
        queries=[
            {
                "name": "locked",
                "sql": "SELECT pg_advisory_lock(4242) IS NULL AS n",
                "expect": "n == false",
            }
        ],
    )
    result = await run_once(config, ctx=ctx)
    assert result.success, result.error
    assert await admin.fetchval("SELECT pg_try_advisory_lock(4242)") is True
    await admin.execute("SELECT pg_advisory_unlock(4242)")
    again = await run_once(config, ctx=ctx)  # the same connection, reset
    assert again.success, again.error


async def test_a_query_without_a_row_or_without_the_column_says_so(
    cluster: PostgresCluster, ctx: ProbeContext, estate: None
) -> None:
    config = make_config(
        app_dsn(cluster),
        queries=[
            {
                "name": "no_row",
                "sql": "SELECT version FROM estate.schema_migrations WHERE false",
                "expect": "version exists",
            },
            {
                "name": "unnamed_column",
                "sql": "SELECT count(*) FROM estate.schema_migrations",
                "expect": "applied >= 3",
            },
        ],
    )

    result = await run_once(config, ctx=ctx)

    assert detail(result, "query_no_row") == (
        "the query returned no row; version exists needs one"
    )
    # The condition's own words name the columns the row has.
    assert "count" in detail(result, "query_unnamed_column")
    assert verdicts(result)["query_unnamed_column"] is False


async def test_a_hanging_judged_query_is_timeout_and_says_which(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    slow = {
        "name": "slow",
        "sql": "SELECT pg_sleep(30) AS slept",
        "expect": "slept exists",
    }
    config = make_config(
        cluster.dsn("counted", COUNTED_PASSWORD), queries=[slow], timeout=1
    )

    result = await run_once(config, ctx=ctx)

    assert result.reason is Reason.TIMEOUT
    assert "query slow: no answer within 0.9s" in result.error
    assert await wait_for_backends(admin, "counted", 0) == 0


def test_values_are_compared_as_json() -> None:
    import datetime
    import decimal
    import uuid

    assert plain(decimal.Decimal("3")) == 3
    assert plain(decimal.Decimal("0.25")) == 0.25
    assert plain(datetime.date(2024, 3, 1)) == "2024-03-01"
    assert plain([decimal.Decimal("1"), None]) == [1, None]
    assert plain(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    ratio = JudgedQuery(name="r", sql="SELECT 1", expect="ratio < 0.5")
    assert judge_answer(ratio, Answer(row={"ratio": 0.25})) == (
        True,
        'ratio < 0.5 holds: {"ratio": 0.25}',
    )


def test_queries_plan_one_check_each() -> None:
    config = make_config("postgresql://db/x", queries=[MIGRATIONS, HYPERTABLE])
    plan = PROBES["postgres"].plan(config)
    assert [(s.name, s.category, s.severity) for s in plan][-2:] == [
        ("query_migrations_applied", "reliability", "critical"),
        ("query_hypertable_present", "reliability", "critical"),
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            {"name": "bad", "sql": "DELETE FROM schema_migrations", "expect": "n == 0"},
            "the query starts with DELETE: a judged query runs in a read-only"
            " transaction and must be SELECT, WITH, VALUES, TABLE or SHOW",
        ),
        (
            {"name": "bad", "sql": "SELECT 1 AS n", "expect": "n is 1"},
            "invalid condition 'n is 1'",
        ),
        (
            {"name": "Bad Name", "sql": "SELECT 1 AS n", "expect": "n == 1"},
            "queries[0].name",
        ),
        ({"name": "bad", "sql": "SELECT 1 AS n"}, "queries[0].expect"),
    ],
)
def test_bad_queries_say_what_to_write(query: dict[str, str], message: str) -> None:
    problems = postgres_problems(dsn="postgresql://db/x", queries=[query])
    assert message in problems


def test_query_names_are_unique() -> None:
    problems = postgres_problems(dsn="postgresql://db/x", queries=[MIGRATIONS] * 2)
    assert "query names ['migrations_applied'] are used more than once" in problems


# --- checks ---------------------------------------------------------------------------


async def test_missing_extension_fails_critical_present_one_passes(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    config = make_config(
        app_dsn(cluster), required_extensions=["plpgsql", "timescaledb"]
    )
    result = await run_once(config, ctx=ctx)
    assert verdicts(result)["extension_plpgsql"]
    assert not verdicts(result)["extension_timescaledb"]
    assert "not installed in database postgres" in detail(
        result, "extension_timescaledb"
    )
    assert result.reason is Reason.CHECK
    assert "extension_timescaledb" in result.error


async def test_statement_timeout_unset_set_and_above_limit(
    cluster: PostgresCluster, contexts: Contexts
) -> None:
    unset = await run_once(make_config(app_dsn(cluster)), ctx=contexts())
    assert not verdicts(unset)["statement_timeout"]
    assert "not set" in detail(unset, "statement_timeout")
    assert unset.success  # a warning
    assert sample(unset, "postgres_statement_timeout_seconds") == 0

    bounded_dsn = cluster.dsn("bounded", BOUNDED_PASSWORD)
    within = await run_once(make_config(bounded_dsn), ctx=contexts())
    assert verdicts(within)["statement_timeout"]

    above = await run_once(
        make_config(bounded_dsn, statement_timeout_max="1s"), ctx=contexts()
    )
    assert not verdicts(above)["statement_timeout"]
    assert "5s, limit 1s" in detail(above, "statement_timeout")

    off = await run_once(
        make_config(app_dsn(cluster), check_statement_timeout=False), ctx=contexts()
    )
    assert "statement_timeout" not in verdicts(off)


async def test_require_tls_passes_encrypted_and_fails_plain(
    cluster: PostgresCluster, contexts: Contexts
) -> None:
    verified = app_dsn(cluster, sslmode="verify-full", sslrootcert=str(cluster.ca_file))
    encrypted = await run_once(make_config(verified, require_tls=True), ctx=contexts())
    assert verdicts(encrypted)["connection_encrypted"], encrypted.checks
    assert "TLSv1" in detail(encrypted, "connection_encrypted")
    assert encrypted.success

    plain = await run_once(
        make_config(app_dsn(cluster, sslmode="disable"), require_tls=True),
        ctx=contexts(),
    )
    assert not verdicts(plain)["connection_encrypted"]
    assert "plain text" in detail(plain, "connection_encrypted")
    assert plain.reason is Reason.CHECK


async def test_untrusted_server_certificate_is_tls(
    cluster: PostgresCluster, ctx: ProbeContext, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    dsn = app_dsn(cluster, sslmode="verify-full", sslrootcert=str(other_ca))
    result = await run_once(make_config(dsn), ctx=ctx)
    assert result.reason is Reason.TLS


# --- TLS through tls_config --------------------------------------------------------------


async def test_tls_config_ca_file_verifies_and_encrypts(
    cluster: PostgresCluster, contexts: Contexts
) -> None:
    config = make_config(
        app_dsn(cluster),
        require_tls=True,
        tls_config={"ca_file": str(cluster.ca_file), "min_version": "TLS13"},
    )

    result = await run_once(config, ctx=contexts())

    assert result.success, result.error
    assert verdicts(result)["connection_encrypted"]
    assert "TLSv1.3" in detail(result, "connection_encrypted")


async def test_tls_config_with_a_wrong_ca_is_tls(
    cluster: PostgresCluster, contexts: Contexts, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))

    wrong_ca = await run_once(
        make_config(app_dsn(cluster), tls_config={"ca_file": str(other_ca)}),
        ctx=contexts(),
    )
    system_store = await run_once(
        make_config(app_dsn(cluster), tls_config={}), ctx=contexts()
    )
    skipped = await run_once(
        make_config(
            app_dsn(cluster),
            require_tls=True,
            tls_config={"ca_file": str(other_ca), "insecure_skip_verify": True},
        ),
        ctx=contexts(),
    )

    for refused in (wrong_ca, system_store):
        assert refused.reason is Reason.TLS, refused.error
        assert "certificate verify failed" in refused.error
        assert_secret_hidden(refused, APP_PASSWORD)
    assert skipped.success, skipped.error
    assert verdicts(skipped)["connection_encrypted"]


async def test_tls_config_unreadable_ca_file_is_a_config_failure(
    cluster: PostgresCluster, ctx: ProbeContext, tmp_path: Path
) -> None:
    config = make_config(
        app_dsn(cluster), tls_config={"ca_file": str(tmp_path / "absent.pem")}
    )

    result = await run_once(config, ctx=ctx)

    assert result.reason is Reason.CONFIG
    assert "cannot read ca_file" in result.error


async def _replayed(standby_admin: Any, primary_admin: Any) -> None:
    """Commit on the primary; wait until the standby has replayed it."""
    await primary_admin.execute("CREATE TABLE IF NOT EXISTS ticks (at timestamptz)")
    await primary_admin.execute("INSERT INTO ticks VALUES (now())")
    target = await primary_admin.fetchval("SELECT pg_current_wal_insert_lsn()")

    async def caught_up() -> bool:
        done: bool = await standby_admin.fetchval(
            "SELECT pg_last_wal_replay_lsn() >= $1", target
        )
        return done

    await eventually(caught_up)


async def _lagging(standby_admin: Any, more_than: float) -> None:
    """Wait until the standby has received WAL it has not replayed, and its
    last replayed commit is more than *more_than* seconds old: the lag the
    probe measures."""

    async def lag() -> float | None:
        seconds: float | None = await standby_admin.fetchval(
            "SELECT EXTRACT(EPOCH FROM clock_timestamp()"
            " - pg_last_xact_replay_timestamp())::float8"
            " WHERE pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"
        )
        return seconds

    await wait_for_value(
        lag, lambda seconds: seconds is not None and seconds > more_than
    )


async def test_standby_is_in_recovery_and_judges_replay_lag(
    standby: PostgresCluster, admin: Any, contexts: Contexts
) -> None:
    ctx = contexts()
    standby_admin = await asyncpg.connect(standby.admin_dsn(), timeout=10)
    try:
        await _replayed(standby_admin, admin)
        caught_up = await run_once(make_config(app_dsn(standby)), ctx=ctx)
        await standby_admin.execute("SELECT pg_wal_replay_pause()")
        try:
            await admin.execute("INSERT INTO ticks VALUES (now())")
            await _lagging(standby_admin, more_than=0.1)
            behind = await run_once(
                make_config(app_dsn(standby), replica_lag_max="100ms"), ctx=ctx
            )
        finally:
            await standby_admin.execute("SELECT pg_wal_replay_resume()")
    finally:
        await standby_admin.close()
    assert caught_up.success, caught_up
    assert sample(caught_up, "postgres_in_recovery") == 1
    assert verdicts(caught_up)["replica_lag"]
    assert not verdicts(behind)["replica_lag"], behind.checks
    assert "limit 0.1s" in detail(behind, "replica_lag")
    assert (sample(behind, "postgres_replica_lag_seconds") or 0) > 0.1
    assert behind.success  # replica_lag is a warning


# --- connections across runs ----------------------------------------------------------


async def test_reuses_one_connection_over_many_runs(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    config = make_config(cluster.dsn("counted", COUNTED_PASSWORD))
    results = [await run_once(config, ctx=ctx) for _ in range(20)]
    assert all(result.success for result in results)
    assert await count_backends(admin, "counted") == 1
    connected = [sample(r, "postgres_connect_seconds") is not None for r in results]
    assert connected == [True] + [False] * 19
    await ctx.aclose()
    assert await wait_for_backends(admin, "counted", 0) == 0


async def test_fresh_connection_leaves_no_backend(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    config = make_config(
        cluster.dsn("counted", COUNTED_PASSWORD), fresh_connection=True
    )
    results = [await run_once(config, ctx=ctx) for _ in range(5)]
    assert all(result.success for result in results)
    assert all(sample(r, "postgres_connect_seconds") is not None for r in results)
    assert await wait_for_backends(admin, "counted", 0) == 0


async def test_hanging_query_is_timeout_on_the_probes_deadline_and_cancelled(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    config = make_config(
        cluster.dsn("counted", COUNTED_PASSWORD), query="SELECT pg_sleep(30)", timeout=1
    )
    result = await run_once(config, ctx=ctx)
    assert result.reason is Reason.TIMEOUT
    assert not the_runners_own_timeout(config, result), result.error
    assert "the readiness query: no answer within" in result.error
    # Gone long before pg_sleep(30) ends: the query was cancelled, not orphaned.
    assert await wait_for_backends(admin, "counted", 0) == 0


async def test_open_transaction_is_not_kept(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    config = make_config(
        cluster.dsn("counted", COUNTED_PASSWORD), query="BEGIN; SELECT 1"
    )
    assert (await run_once(config, ctx=ctx)).success
    state = await admin.fetchval(
        "SELECT state FROM pg_stat_activity WHERE usename = 'counted'"
    )
    assert state == "idle"


async def test_terminated_backend_is_replaced_within_the_run(
    cluster: PostgresCluster, ctx: ProbeContext, admin: Any
) -> None:
    config = make_config(cluster.dsn("counted", COUNTED_PASSWORD))
    assert (await run_once(config, ctx=ctx)).success
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE usename = 'counted'"
    )
    result = await run_once(config, ctx=ctx)
    assert result.success, result
    assert sample(result, "postgres_connect_seconds") is not None
    assert await count_backends(admin, "counted") == 1


async def test_server_restart_is_connect_then_recovers(
    cluster: PostgresCluster, ctx: ProbeContext
) -> None:
    config = make_config(app_dsn(cluster), timeout=3)
    assert (await run_once(config, ctx=ctx)).success
    cluster.stop("fast")
    try:
        down = await run_once(config, ctx=ctx)
    finally:
        cluster.start()
    assert down.reason is Reason.CONNECT
    assert not verdicts(down)["reachable"]
    up = await run_once(config, ctx=ctx)
    assert up.success, up
    assert sample(up, "postgres_connect_seconds") is not None


# --- config -----------------------------------------------------------------------------


async def test_password_file_is_read_at_run_time(
    cluster: PostgresCluster, ctx: ProbeContext, tmp_path: Path
) -> None:
    secret = tmp_path / "pg-password"
    config = make_config(cluster.dsn("app", None), password_file=str(secret))
    missing = await run_once(config, ctx=ctx)
    assert missing.reason is Reason.CONFIG
    assert "password_file" in missing.error
    secret.write_text(APP_PASSWORD + "\n")
    assert (await run_once(config, ctx=ctx)).success


async def test_empty_inline_password_leaves_the_file(
    cluster: PostgresCluster, ctx: ProbeContext, tmp_path: Path
) -> None:
    # `password: ${PG_PASSWORD:-}` with the variable unset.
    secret = tmp_path / "pg-password"
    secret.write_text(APP_PASSWORD + "\n")
    config = make_config(
        cluster.dsn("app", None), password="", password_file=str(secret)
    )

    result = await run_once(config, ctx=ctx)

    assert result.success, result.error


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
    assert (await run_once(config, ctx=ctx)).success


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"dsn": "host=db password=hunter2-secret"},
            "dsn must be a URL such as postgresql://",
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
            {"dsn": "postgresql://db/x", "connections_ratio_max": 1.5},
            "field 'connections_ratio_max': expected at most 1.0, got 1.5",
        ),
        (
            {"dsn": "postgresql://db/x", "max_connections_ratio": 0.5},
            "field 'max_connections_ratio' is now 'connections_ratio_max'"
            " (renamed in 0.2.0",
        ),
        (
            {
                "dsn": "postgresql://db/x?sslmode=verify-full",
                "tls_config": {"ca_file": "/ca.pem"},
            },
            "TLS is set both in the dsn (sslmode) and in tls_config; keep one",
        ),
        (
            {
                "dsn": "postgresql://db/x?sslrootcert=/ca.pem&sslcert=/c.pem",
                "tls_config": {},
            },
            "TLS is set both in the dsn (sslcert, sslrootcert) and in tls_config",
        ),
        (
            {"dsn": "postgresql://db/x", "tls_config": {"server_name": "db.example"}},
            "tls_config.server_name: not supported by the postgres kind; remove it",
        ),
        (
            {"dsn": "postgresql://db/x", "tls_config": {"key_file": "/k.pem"}},
            "key_file needs cert_file",
        ),
    ],
)
def test_bad_config_says_what_to_write(fields: dict[str, Any], message: str) -> None:
    problems = postgres_problems(**fields)
    assert message in problems
    assert "hunter2-secret" not in problems


def test_password_and_password_file_together_is_one_error() -> None:
    problems = postgres_problems(
        dsn="postgresql://db/x", password="hunter2-secret", password_file="/p"
    )

    assert problems.splitlines() == [
        "probe 'db' (probes[0]): set either password or password_file, not both"
        " (password_file is read at every use, so rotation needs no reload)"
    ]


@pytest.mark.parametrize(
    "dsn", ["postgresql://app:s3cr3t@db/x", "postgresql://app:ab/c+d=@db/x"]
)
def test_a_password_in_the_dsn_and_in_a_field_is_refused(dsn: str) -> None:
    problems = postgres_problems(dsn=dsn, password_file="/p")

    assert problems.splitlines() == [
        "probe 'db' (probes[0]): the dsn holds a password and password/"
        "password_file is set too; keep one (password_file keeps it out of the"
        " config)"
    ]
    assert "s3cr3t" not in problems and "ab/c" not in problems


def test_tls_config_without_tls_options_in_the_dsn_loads() -> None:
    config = make_config(
        "postgresql://db/x?application_name=x&sslnegotiation=postgres",
        tls_config={"ca_file": "/ca.pem", "cert_file": "/c.pem", "key_file": "/k.pem"},
    )
    assert config.tls_config is not None
    assert config.tls_config.ca_file == Path("/ca.pem")
