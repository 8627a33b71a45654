"""Probe that connects to PostgreSQL, runs a readiness query and judges the server.

One connection per probe is kept between runs (re-made when the server
dropped it); each run executes the configured `query`, then one catalogue
query (`FACTS_SQL`) whose answer feeds every check and metric, then the
judged `queries` (migrations applied, hypertables present) in a read-only
transaction, each a check `query_<name>`:

    readiness_postgres_query_seconds{probe="orders-db"} 0.0009
    readiness_postgres_backends{probe="orders-db"} 12
    readiness_postgres_max_connections_usable{probe="orders-db"} 97
    readiness_postgres_server_info{probe="orders-db",version="15.20"} 1
    readiness_check_passed{probe="orders-db",check="connections_under_limit",...} 1
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, Self
from urllib.parse import parse_qsl, urlsplit

import asyncpg
from asyncpg import exceptions as pg_errors
from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from exporter.probes.base import (
    AuthError,
    BaseProbeConfig,
    Category,
    CheckDef,
    Checks,
    Duration,
    MetricSpec,
    Model,
    ProbeError,
    ProbeResult,
    ProtocolError,
    Reason,
    Sample,
    Severity,
    TargetConfigError,
    first_line,
)
from exporter.probes.context import Deadline, ProbeContext
from exporter.probes.shared.jsonpath import Condition, parse_condition
from exporter.probes.shared.secrets import has_secret, resolve_secret
from exporter.probes.shared.tls import TlsClientConfig

APPLICATION_NAME = "readiness-exporter"

# Everything the checks need in one round trip, readable by any role.
# Without pg_read_all_stats (or pg_monitor) the backend_type of other roles'
# sessions is hidden; those rows are counted when they belong to a user and a
# database, which is what client sessions look like.
FACTS_SQL = """
SELECT
    pg_is_in_recovery() AS in_recovery,
    current_database() AS database,
    current_setting('server_version') AS server_version,
    current_setting('max_connections')::int AS max_connections,
    current_setting('superuser_reserved_connections')::int
        + COALESCE(current_setting('reserved_connections', true)::int, 0)
        AS reserved_connections,
    (SELECT count(*) FROM pg_stat_activity
      WHERE backend_type = 'client backend'
         OR (backend_type IS NULL AND datid IS NOT NULL AND usesysid IS NOT NULL)
    )::int AS backends,
    (SELECT setting::float8 / 1000 FROM pg_settings
      WHERE name = 'statement_timeout') AS statement_timeout_seconds,
    (SELECT version FROM pg_stat_ssl
      WHERE pid = pg_backend_pid() AND ssl) AS tls_version,
    ARRAY(SELECT extname::text FROM pg_extension) AS extensions,
    CASE WHEN NOT pg_is_in_recovery() THEN 0::float8
         WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
         ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8
    END AS replica_lag_seconds
"""

METRICS = (
    MetricSpec(
        "postgres_connect_seconds",
        "Time to connect and authenticate, for runs that opened a connection.",
    ),
    MetricSpec("postgres_query_seconds", "Time the readiness query took, last run."),
    MetricSpec(
        "postgres_backends",
        "Client connections in use (pg_stat_activity client backends).",
    ),
    MetricSpec(
        "postgres_max_connections_usable",
        "max_connections minus the connections reserved for superusers.",
    ),
    MetricSpec("postgres_in_recovery", "1 when the server is a standby in recovery."),
    MetricSpec(
        "postgres_replica_lag_seconds",
        "Age of the last replayed transaction on a standby; 0 on a primary;"
        " absent while unknown.",
    ),
    MetricSpec(
        "postgres_server_info",
        "Server version, as reported by server_version.",
        type="info",
        labels=("version",),
    ),
    MetricSpec(
        "postgres_statement_timeout_seconds",
        "statement_timeout of the probe's session; 0 means no limit.",
    ),
)

ExtensionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")]

# What a judged query may start with, after comments: statements that only
# read. The read-only transaction it runs in is the guard; this is the
# early, clear error for a statement that would write.
_READING = re.compile(
    r"^(?:\s|\(|--[^\n]*(?:\n|$)|/\*.*?\*/)*(?P<word>[A-Za-z]+)?", re.DOTALL
)
_READING_WORDS = frozenset({"select", "with", "values", "table", "show"})


def _reads_only(sql: str) -> str:
    match = _READING.match(sql)  # always matches: every part is optional
    word = (match.group("word") if match else None) or ""
    if word.lower() not in _READING_WORDS:
        shown = f"starts with {word.upper()}" if word else "has no statement"
        raise ValueError(
            f"the query {shown}: a judged query runs in a read-only transaction"
            " and must be SELECT, WITH, VALUES, TABLE or SHOW"
        )
    return sql


def _condition(text: str) -> str:
    parse_condition(text)
    return text


class JudgedQuery(Model):
    """A read-only query and the condition its first row must meet."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,60}$")
    sql: Annotated[str, AfterValidator(_reads_only)]
    expect: Annotated[str, AfterValidator(_condition)]

    def condition(self) -> Condition:
        """`expect`, compiled (it was checked when the config loaded)."""
        return parse_condition(self.expect)


def _unique_names(queries: list[JudgedQuery]) -> list[JudgedQuery]:
    names = [q.name for q in queries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"query names {twice} are used more than once")
    return queries


DEFAULT_QUERY = "SELECT 1"


class PostgresConfig(BaseProbeConfig):
    """Which server to reach, as whom, and the limits it must keep."""

    SECRETS = ("password",)
    RENAMED: ClassVar[dict[str, str]] = {
        "max_connections_ratio": "connections_ratio_max"
    }

    kind: Literal["postgres"] = "postgres"
    dsn: str = Field(min_length=1, repr=False)
    password: SecretStr | None = None
    password_file: Path | None = None
    query: str = Field(default=DEFAULT_QUERY, min_length=1)
    connections_ratio_max: float = Field(default=0.80, gt=0, le=1)
    statement_timeout_max: Duration = 10.0
    check_statement_timeout: bool = True
    required_extensions: tuple[ExtensionName, ...] = ()
    require_tls: bool = False
    tls_config: TlsClientConfig | None = None
    replica_lag_max: Duration = 30.0
    fresh_connection: bool = False
    queries: Annotated[list[JudgedQuery], AfterValidator(_unique_names)] = Field(
        default_factory=list
    )

    @field_validator("dsn")
    @classmethod
    def _dsn_is_a_url(cls, dsn: str) -> str:
        # The DSN is never echoed: it may hold a password.
        if not dsn.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "dsn must be a URL such as postgresql://user@host:5432/dbname"
                " (libpq key=value strings are not supported)"
            )
        return dsn

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.statement_timeout_max <= 0:
            raise ValueError(
                "statement_timeout_max must be above zero; to skip the check"
                " write check_statement_timeout: false"
            )
        if len(set(self.required_extensions)) != len(self.required_extensions):
            raise ValueError("required_extensions lists an extension twice")
        if _dsn_has_password(self.dsn) and has_secret(self, "password"):
            raise ValueError(
                "the dsn holds a password and password/password_file is set too;"
                " keep one (password_file keeps it out of the config)"
            )
        if self.tls_config is not None:
            # asyncpg sends the host it connects to as the server name.
            self.tls_config.refuse("postgres", "server_name")
            in_dsn = _dsn_tls_options(self.dsn)
            if in_dsn:
                raise ValueError(
                    f"TLS is set both in the dsn ({', '.join(in_dsn)}) and in"
                    " tls_config; keep one"
                )
        return self


def _dsn_has_password(dsn: str) -> bool:
    """Whether *dsn* carries `user:password@` (a password may hold `/`)."""
    rest = dsn.split("://", 1)[1]
    return "@" in rest and ":" in rest.rsplit("@", 1)[0]


# The dsn's TLS options that asyncpg ignores when given a context of ours.
_DSN_TLS_OPTIONS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
    }
)


def _dsn_tls_options(dsn: str) -> list[str]:
    """The TLS options (sslmode, sslrootcert, ...) in *dsn*'s query."""
    names = {name for name, _ in parse_qsl(urlsplit(dsn).query)}
    return sorted(names & _DSN_TLS_OPTIONS)


CHECKS = (
    CheckDef(
        "reachable",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The probe connected, authenticated and ran `query`.",
    ),
    CheckDef(
        "connections_under_limit",
        Category.PERFORMANCE,
        Severity.WARNING,
        "Client connections in use over usable connections (max_connections less the "
        "reserved ones) are at most `connections_ratio_max`.",
        threshold="connections_ratio_max",
    ),
    CheckDef(
        "statement_timeout",
        Category.PERFORMANCE,
        Severity.WARNING,
        "The session's statement_timeout is set (not 0) and at most "
        "`statement_timeout_max` (with `check_statement_timeout`, on by default).",
        threshold="statement_timeout_max",
        when=lambda config: config.check_statement_timeout,
    ),
    CheckDef(
        "extension_{item}",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The extension is installed (pg_extension): one check per entry of "
        "`required_extensions`.",
        items=lambda config: config.required_extensions,
    ),
    CheckDef(
        "connection_encrypted",
        Category.SECURITY,
        Severity.CRITICAL,
        "The probe's own connection uses TLS, as pg_stat_ssl says (with "
        "`require_tls`).",
        when=lambda config: config.require_tls,
    ),
    CheckDef(
        "replica_lag",
        Category.DATA,
        Severity.WARNING,
        "On a standby, replay lag is at most `replica_lag_max` (fails while it has "
        "replayed nothing yet); a primary passes.",
        threshold="replica_lag_max",
    ),
    CheckDef(
        "query_{item}",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The first row the query returns, run read-only, meets its `expect` "
        "condition: one check per entry of `queries`, named after it "
        "(`query_migrations_applied`).",
        items=lambda config: [query.name for query in config.queries],
    ),
)


# --- talking to the server ------------------------------------------------------


class _Connection(Protocol):
    """The part of asyncpg.Connection this probe uses (asyncpg's signatures)."""

    def is_closed(self) -> bool: ...
    def is_in_transaction(self) -> bool: ...
    def terminate(self) -> None: ...
    async def close(self, *, timeout: float | None = None) -> None: ...  # noqa: ASYNC109
    async def execute(self, query: str, *, timeout: float | None = None) -> str: ...  # noqa: ASYNC109
    async def fetchrow(self, query: str, *, timeout: float | None = None) -> Any: ...  # noqa: ASYNC109
    async def reset(self, *, timeout: float | None = None) -> None: ...  # noqa: ASYNC109


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """The answer to FACTS_SQL."""

    in_recovery: bool
    database: str
    server_version: str
    max_connections: int
    reserved_connections: int
    backends: int
    statement_timeout_seconds: float
    tls_version: str | None
    extensions: frozenset[str]
    replica_lag_seconds: float | None


@dataclass(frozen=True, slots=True)
class Answer:
    """What a judged query returned: its first row as a JSON-like document
    (None when it returned no row), or the error the server gave."""

    row: dict[str, Any] | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """What one run saw; *connect_seconds* is None when it reused a connection."""

    facts: ServerFacts
    query_seconds: float
    connect_seconds: float | None
    answers: Mapping[str, Answer] = field(default_factory=dict)


async def _connect(
    config: PostgresConfig, deadline: Deadline
) -> tuple[_Connection, float]:
    # No password: from the DSN, PGPASSWORD or ~/.pgpass, as libpq does.
    password = await resolve_secret(config, "password")
    tls: dict[str, Any] = (
        {} if config.tls_config is None else {"ssl": config.tls_config.context()}
    )
    started = time.perf_counter()
    with _naming_what_hung("connect and log in", deadline):
        connection: _Connection = await asyncpg.connect(
            config.dsn,
            password=password,
            timeout=deadline.remaining(),  # asyncpg's own default is 60 s
            statement_cache_size=0,  # nothing to reuse, and safe behind PgBouncer
            server_settings={"application_name": APPLICATION_NAME},
            **tls,
        )
    return connection, time.perf_counter() - started


@contextlib.contextmanager
def _naming_what_hung(step: str, deadline: Deadline) -> Iterator[None]:
    """asyncpg's timeouts carry no text; say which step ran out of time, so
    the failure does not read like the runner's own hard timeout."""
    try:
        yield
    except TimeoutError as error:
        if str(error):
            raise
        raise TimeoutError(f"{step}: no answer within {deadline.budget:g}s") from error


def _facts_from(row: Any) -> ServerFacts:
    lag = row["replica_lag_seconds"]
    return ServerFacts(
        in_recovery=bool(row["in_recovery"]),
        database=str(row["database"]),
        server_version=str(row["server_version"]).split(" ", 1)[0],
        max_connections=int(row["max_connections"]),
        reserved_connections=int(row["reserved_connections"]),
        backends=int(row["backends"]),
        statement_timeout_seconds=float(row["statement_timeout_seconds"]),
        tls_version=row["tls_version"],
        extensions=frozenset(row["extensions"]),
        replica_lag_seconds=None if lag is None else float(lag),
    )


async def _observe(
    connection: _Connection,
    config: PostgresConfig,
    deadline: Deadline,
    connect_seconds: float | None,
) -> Observation:
    started = time.perf_counter()
    with _naming_what_hung("the readiness query", deadline):
        await connection.execute(config.query, timeout=deadline.remaining())
    query_seconds = time.perf_counter() - started
    with _naming_what_hung("the server's settings and statistics", deadline):
        if connection.is_in_transaction():
            # A query that opens a transaction must not hold it until the
            # next run.
            await connection.execute("ROLLBACK", timeout=deadline.remaining())
        row = await connection.fetchrow(FACTS_SQL, timeout=deadline.remaining())
    answers = await _ask(connection, config.queries, deadline)
    if config.queries or config.query != DEFAULT_QUERY:
        # Queries of the user's own may leave session state a rollback does
        # not undo (a session advisory lock, SET, LISTEN, an open cursor):
        # the kept connection starts every run as a new one would.
        with _naming_what_hung("resetting the session", deadline):
            await connection.reset(timeout=deadline.remaining())
    return Observation(_facts_from(row), query_seconds, connect_seconds, answers)


def plain(value: Any) -> Any:
    """*value*, as a condition compares it: numbers, text, booleans, null
    and lists as they are; a numeric as an int or float; times and dates in
    ISO 8601; anything else as its text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


async def _ask(
    connection: _Connection, queries: Sequence[JudgedQuery], deadline: Deadline
) -> dict[str, Answer]:
    """Run the judged *queries* in one read-only transaction, each within
    what is left of *deadline*, and roll it back. A query the server
    refuses (a missing table, no privilege, a write) is that query's
    answer; a timeout or a dropped connection ends the run."""
    if not queries:
        return {}
    answers: dict[str, Answer] = {}
    await connection.execute("BEGIN READ ONLY", timeout=deadline.remaining())
    for query in queries:
        with _naming_what_hung(f"query {query.name}", deadline):
            try:
                row = await connection.fetchrow(query.sql, timeout=deadline.remaining())
            except _DROPPED_CONNECTION_ERRORS:
                raise
            except pg_errors.PostgresError as refusal:
                answers[query.name] = Answer(error=_describe(refusal))
                # The failed statement aborted the transaction: start another.
                await connection.execute(
                    "ROLLBACK; BEGIN READ ONLY", timeout=deadline.remaining()
                )
                continue
        document = None if row is None else {k: plain(v) for k, v in row.items()}
        answers[query.name] = Answer(row=document)
    await connection.execute("ROLLBACK", timeout=deadline.remaining())
    return answers


# A reused connection that fails with one of these was dropped by the server
# (restart, pg_terminate_backend, idle timeout): a new one gets the verdict.
# InternalClientError: a query sent just as the server's goodbye arrives.
_DROPPED_CONNECTION_ERRORS = (
    pg_errors.InterfaceError,
    pg_errors.InternalClientError,
    pg_errors.PostgresConnectionError,
    pg_errors.AdminShutdownError,
    ConnectionError,
)


class PostgresSession:
    """The probe's connection, kept between runs unless `fresh_connection`."""

    def __init__(self) -> None:
        self._connection: _Connection | None = None

    async def observe(self, config: PostgresConfig, deadline: Deadline) -> Observation:
        """Run the probe's queries, reusing or (re)making the connection."""
        if config.fresh_connection:
            connection, connect_seconds = await _connect(config, deadline)
            observation = await _observe_or_release(
                connection, config, deadline, connect_seconds
            )
            # The goodbye may use the grace the runner leaves after the budget.
            await _close_politely(connection, deadline.grace)
            return observation
        # Held outside the state while in use: a run cut short releases it.
        kept, self._connection = self._connection, None
        if kept is not None and not kept.is_closed():
            with contextlib.suppress(*_DROPPED_CONNECTION_ERRORS):
                observation = await _observe_or_release(kept, config, deadline, None)
                self._connection = kept
                return observation
        elif kept is not None:
            kept.terminate()  # closed by the server; frees asyncpg's side
        connection, connect_seconds = await _connect(config, deadline)
        observation = await _observe_or_release(
            connection, config, deadline, connect_seconds
        )
        self._connection = connection
        return observation

    async def aclose(self) -> None:
        """Close the kept connection (the probe was removed or reconfigured)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await _close_politely(connection, 2.0)


async def _observe_or_release(
    connection: _Connection,
    config: PostgresConfig,
    deadline: Deadline,
    connect_seconds: float | None,
) -> Observation:
    """`_observe`, closing *connection* if the run fails: a failed run keeps
    nothing open."""
    try:
        return await _observe(connection, config, deadline, connect_seconds)
    except TimeoutError:
        # asyncpg has asked the server to cancel the query; a polite close
        # lets that request go out, so the backend stops now and not when
        # the query ends. The runner cancels the run deadline.grace later.
        await _close_politely(connection, deadline.grace)
        raise
    except BaseException:
        connection.terminate()
        raise


async def _close_politely(connection: _Connection, grace: float) -> None:
    """Say goodbye so the server logs a clean exit; cut the line if it hangs."""
    closed = False
    try:
        await connection.close(timeout=grace)
        closed = True
    except (
        OSError,
        pg_errors.PostgresError,
        pg_errors.InterfaceError,
        pg_errors.InternalClientError,
    ):
        pass  # cut below
    finally:
        if not closed:
            connection.terminate()


# --- driver errors -> reasons ------------------------------------------------------


def _describe(error: BaseException) -> str:
    sqlstate = getattr(error, "sqlstate", None)
    text = first_line(error)
    return f"{text} (SQLSTATE {sqlstate})" if sqlstate else text


def translate_error(error: Exception, config: object) -> BaseException | None:
    """asyncpg's exceptions in the runner's terms. OSError (refused,
    unreachable, reset) and TimeoutError need no translation."""
    if isinstance(error, pg_errors.InvalidAuthorizationSpecificationError):
        return AuthError(_describe(error))  # 28000, 28P01
    if isinstance(error, pg_errors.InvalidCatalogNameError):
        return TargetConfigError(_describe(error))  # 3D000: the DSN is wrong
    if isinstance(error, pg_errors.SyntaxOrAccessError):  # class 42: query
        return TargetConfigError(f"the query failed: {_describe(error)}")
    if isinstance(error, pg_errors.ClientConfigurationError):
        return TargetConfigError(_describe(error))  # bad sslmode, no CA file
    if isinstance(
        error,
        pg_errors.PostgresError  # 53300, 57P03, 08xxx, ...
        | pg_errors.InterfaceError
        | pg_errors.InternalClientError,
    ):
        return ProtocolError(_describe(error))
    if isinstance(error, ConnectionError) and "rejected SSL upgrade" in str(error):
        # sslmode=require against ssl=off
        return ProbeError("the server does not offer TLS", reason=Reason.TLS)
    return None


# --- verdicts ------------------------------------------------------------------------


def _judge_connections(
    checks: Checks, config: PostgresConfig, facts: ServerFacts
) -> None:
    usable = facts.max_connections - facts.reserved_connections
    if usable <= 0:
        checks.record("connections_under_limit", False, "no usable connection slots")
        return
    ratio = facts.backends / usable
    checks.record(
        "connections_under_limit",
        ratio <= config.connections_ratio_max,
        f"{facts.backends} of {usable} usable connections in use ({ratio:.0%},"
        f" limit {config.connections_ratio_max:.0%})",
    )


def _judge_statement_timeout(
    checks: Checks, config: PostgresConfig, facts: ServerFacts
) -> None:
    if not checks.planned("statement_timeout"):
        return
    seconds, limit = facts.statement_timeout_seconds, config.statement_timeout_max
    if seconds <= 0:
        checks.record("statement_timeout", False, "statement_timeout is not set (0)")
    else:
        checks.record(
            "statement_timeout",
            seconds <= limit,
            f"statement_timeout {seconds:g}s, limit {limit:g}s",
        )


def _judge_extensions(
    checks: Checks, extensions: Sequence[str], facts: ServerFacts
) -> None:
    for name in extensions:
        installed = name in facts.extensions
        checks.record(
            f"extension_{name}",
            installed,
            f"{name} {'is' if installed else 'is not'} installed in"
            f" database {facts.database}",
        )


def _judge_tls(checks: Checks, facts: ServerFacts) -> None:
    if checks.planned("connection_encrypted"):
        checks.record(
            "connection_encrypted",
            facts.tls_version is not None,
            f"encrypted with {facts.tls_version}"
            if facts.tls_version
            else "plain text",
        )


def _judge_replica_lag(
    checks: Checks, config: PostgresConfig, facts: ServerFacts
) -> None:
    lag = facts.replica_lag_seconds
    if not facts.in_recovery:
        checks.record("replica_lag", True, "primary: nothing to replay")
    elif lag is None:
        checks.record("replica_lag", False, "standby has replayed no transaction yet")
    else:
        checks.record(
            "replica_lag",
            lag <= config.replica_lag_max,
            f"replay lag {lag:.1f}s, limit {config.replica_lag_max:g}s",
        )


def judge_answer(query: JudgedQuery, answer: Answer) -> tuple[bool, str]:
    """`query_<name>`: the first row meets `expect`; the detail names the
    values seen."""
    if answer.error:
        return False, f"the query failed: {answer.error}"
    if answer.row is None:
        return False, f"the query returned no row; {query.expect} needs one"
    shown = json.dumps(answer.row, default=str)[:120]
    passed, why = query.condition().evaluate(answer.row)
    return passed, f"{query.expect} holds: {shown}" if passed else why


def _judge_queries(
    checks: Checks, queries: Sequence[JudgedQuery], answers: Mapping[str, Answer]
) -> None:
    for query in queries:
        answer = answers.get(query.name, Answer(error="not run"))
        checks.record(f"query_{query.name}", *judge_answer(query, answer))


def _samples(observation: Observation) -> tuple[Sample, ...]:
    facts = observation.facts
    samples = [
        Sample("postgres_query_seconds", observation.query_seconds),
        Sample("postgres_backends", facts.backends),
        Sample(
            "postgres_max_connections_usable",
            facts.max_connections - facts.reserved_connections,
        ),
        Sample("postgres_in_recovery", float(facts.in_recovery)),
        Sample.of("postgres_server_info", 1, version=facts.server_version),
        Sample("postgres_statement_timeout_seconds", facts.statement_timeout_seconds),
    ]
    if observation.connect_seconds is not None:
        samples.insert(
            0, Sample("postgres_connect_seconds", observation.connect_seconds)
        )
    if facts.replica_lag_seconds is not None:
        samples.append(
            Sample("postgres_replica_lag_seconds", facts.replica_lag_seconds)
        )
    return tuple(samples)


async def probe(config: PostgresConfig, ctx: ProbeContext) -> ProbeResult:
    """Run the readiness query and judge connections, settings and replication."""
    checks = Checks(CHECKS, config)
    session = ctx.state(PostgresSession)
    observation = await session.observe(config, ctx.deadline)
    facts = observation.facts
    how = (
        f"connected in {observation.connect_seconds:.3f}s, "
        if observation.connect_seconds is not None
        else ""
    )
    checks.record(
        "reachable", True, f"{how}query took {observation.query_seconds:.3f}s"
    )
    _judge_connections(checks, config, facts)
    _judge_statement_timeout(checks, config, facts)
    _judge_extensions(checks, config.required_extensions, facts)
    _judge_tls(checks, facts)
    _judge_replica_lag(checks, config, facts)
    _judge_queries(checks, config.queries, observation.answers)
    return ProbeResult(checks=checks.finish(), samples=_samples(observation))
