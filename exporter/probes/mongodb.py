"""Probe a MongoDB server or replica set with PyMongo's AsyncMongoClient.

Each run pings, reads serverStatus (connections, version), optionally reads
replSetGetStatus (primary, member health, lag), checks that a client with
no credentials is refused and that the probe's own connection is
encrypted. One client lives across runs and is rebuilt after a failed run.
The user needs the `clusterMonitor` role for serverStatus and
replSetGetStatus.

readiness_mongodb_ping_seconds{probe="db"} 0.0009
readiness_mongodb_connections{probe="db",state="current"} 12
readiness_mongodb_server_info{probe="db",version="7.0.12"} 1
readiness_mongodb_replset_member_lag_seconds{member="db2:27017",probe="db"} 2
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import pymongo
from pydantic import Field, SecretStr, model_validator
from pymongo import AsyncMongoClient, ReadPreference, errors as mongo_errors
from pymongo.uri_parser import parse_uri, split_options

from exporter.probes.base import (
    AuthError,
    BaseProbeConfig,
    Category,
    CheckDef,
    Checks,
    Duration,
    MetricSpec,
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
from exporter.probes.shared.secrets import has_secret, resolve_secret
from exporter.probes.shared.tls import TlsClientConfig
from exporter.redact import redact

Client = AsyncMongoClient[dict[str, Any]]

METRICS = (
    MetricSpec(
        "mongodb_connections",
        "Incoming connections of the server the probe talks to (serverStatus).",
        labels=("state",),
    ),
    MetricSpec(
        "mongodb_connect_seconds",
        "Time to discover the server, authenticate and answer a first ping;"
        " only from runs that (re)connected.",
    ),
    MetricSpec("mongodb_ping_seconds", "Round trip of a ping command, last run."),
    MetricSpec(
        "mongodb_server_info",
        "Server version from serverStatus.",
        type="info",
        labels=("version",),
    ),
    MetricSpec(
        "mongodb_replset_member_state",
        "Replica-set member state number (1 primary, 2 secondary, 7 arbiter,"
        " 8 down, ...).",
        labels=("member",),
    ),
    MetricSpec(
        "mongodb_replset_member_healthy",
        "1 if the member is reachable and primary, secondary or arbiter.",
        labels=("member",),
    ),
    MetricSpec(
        "mongodb_replset_member_lag_seconds",
        "How far the member's last applied operation trails the primary's.",
        labels=("member",),
    ),
    MetricSpec("mongodb_replset_has_primary", "1 if the replica set has a primary."),
)

# Replica-set member states (https://www.mongodb.com/docs/manual/reference/replica-states/)
_PRIMARY, _SECONDARY, _ARBITER = 1, 2, 7
_SERVING_STATES = frozenset({_PRIMARY, _SECONDARY, _ARBITER})
_MAX_MEMBERS = 50  # MongoDB's own limit on replica-set size bounds the label set
_MEMBER_NAME = re.compile(r"^[A-Za-z0-9._\-\[\]:]{1,255}$")
_VERSION = re.compile(r"^[0-9A-Za-z.+\-]{1,40}$")
_NOT_A_REPLICA_SET = frozenset({76, 94})  # NoReplicationEnabled, NotYetInitialized
_UNAUTHORIZED, _AUTHENTICATION_FAILED = 13, 18
_TIMEOUTS_TAIL = re.compile(r"\s*\(configured timeouts:[^)]*\)")

# Shares of the run's budget given to the driver, so that the driver's own
# timeouts fire first and a refused port ends well before the runner gives up.
_SELECTION_SHARE = 0.5
_CONNECT_SHARE = 0.4
_COMMAND_SHARE = 0.8
_CLOSE_BUDGET = 1.0  # seconds; endSessions on close must not hang on a dead peer

# Any server will do: a set without a primary must still report its members.
_ANY_MEMBER = ReadPreference.PRIMARY_PREFERRED


class MongodbConfig(BaseProbeConfig):
    """Where the server is, how to log in, and what counts as ready."""

    SECRETS = ("password",)
    RENAMED: ClassVar[dict[str, str]] = {
        "ca_file": "tls_config.ca_file",
        "insecure_skip_verify": "tls_config.insecure_skip_verify",
    }

    kind: Literal["mongodb"] = "mongodb"
    uri: str = Field(min_length=1, repr=False)
    password: SecretStr | None = None
    password_file: Path | None = None
    expect_auth: bool = False
    replica_set: bool = False
    replica_lag_max: Duration = 30.0
    connections_ratio_max: float = Field(default=0.80, gt=0, le=1)
    fresh_connection: bool = False
    tls_config: TlsClientConfig | None = None
    require_tls: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(
                "uri must start with mongodb:// or mongodb+srv://,"
                " e.g. mongodb://app@db.example:27017/?authSource=admin"
            )
        if self.tls_config is not None:
            # PyMongo takes file names, not a context: it cannot set the
            # server name or the lowest version, and wants the client key in
            # the certificate's file (tlsCertificateKeyFile).
            self.tls_config.refuse("mongodb", "server_name", "min_version", "key_file")
            # PyMongo lets keyword options win over the uri's without a word.
            in_uri = _uri_tls_options(self.uri)
            if in_uri:
                raise ValueError(
                    f"TLS is set both in the uri ({', '.join(in_uri)}) and in"
                    " tls_config; keep one"
                )
        user, uri_password = _userinfo(self.uri)
        # An empty password (`${VAR:-}` with VAR unset) means none.
        given = has_secret(self, "password")
        if given and uri_password is not None:
            raise ValueError(
                "the uri already holds a password; drop it from the uri"
                " (mongodb://USER@host) or drop password/password_file"
            )
        if given and not user:
            raise ValueError(
                "password/password_file need a user name in the uri:"
                " mongodb://USER@host:27017"
            )
        if self.uri.startswith("mongodb://"):
            # mongodb+srv would need DNS here; the driver checks it at run time.
            try:
                parse_uri(self.uri)
            except (mongo_errors.ConfigurationError, ValueError) as error:
                raise ValueError(
                    f"uri is not a valid MongoDB connection string: "
                    f"{redact(str(error))[:160]}"
                ) from None
        return self


def _uri_tls_options(uri: str) -> list[str]:
    """The TLS options (tls, ssl, tlsCAFile, ...) in *uri*'s query."""
    query = uri.partition("?")[2]
    names = {option.partition("=")[0] for option in query.split("&") if option}
    return sorted(n for n in names if n.lower().startswith(("tls", "ssl")))


def _userinfo(uri: str) -> tuple[str, str | None]:
    """User name and password (None when absent) written in *uri*."""
    rest = uri.split("://", 1)[1]
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    if "@" not in authority:
        return "", None
    userinfo = authority.rsplit("@", 1)[0]
    user, colon, password = userinfo.partition(":")
    return user, password if colon else None


def _without_credentials(uri: str) -> str:
    """*uri* with the user, password and auth options removed."""
    scheme, rest = uri.split("://", 1)
    parts = re.split(r"([/?])", rest, maxsplit=1)
    authority, sep, tail = [*parts, "", ""][:3]
    authority = authority.rsplit("@", 1)[-1]
    path, _, query = (sep + tail).partition("?")
    kept = [
        option
        for option in query.split("&")
        if option and not option.lower().startswith("auth")
    ]
    query_text = "?" + "&".join(kept) if kept else ""
    return f"{scheme}://{authority}{path}{query_text}"


CHECKS = (
    CheckDef(
        "reachable",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The server answers `ping`.",
    ),
    CheckDef(
        "auth_required",
        Category.SECURITY,
        Severity.CRITICAL,
        "A client without credentials gets code 13 Unauthorized for listDatabases "
        "(with `expect_auth`).",
        when=lambda config: config.expect_auth,
        formerly=("auth_enforced",),
    ),
    CheckDef(
        "connection_encrypted",
        Category.SECURITY,
        Severity.CRITICAL,
        "The probe's own connection uses TLS: its client has TLS on (`tls_config`, "
        "`tls=true` in the uri, or `mongodb+srv://`) and the server answered over "
        "it (with `require_tls`).",
        when=lambda config: config.require_tls,
    ),
    CheckDef(
        "replset_has_primary",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "A member is PRIMARY (with `replica_set`).",
        when=lambda config: config.replica_set,
    ),
    CheckDef(
        "replset_members_healthy",
        Category.RELIABILITY,
        Severity.WARNING,
        "Every member is reachable and PRIMARY, SECONDARY or ARBITER (with "
        "`replica_set`).",
        when=lambda config: config.replica_set,
    ),
    CheckDef(
        "replica_lag",
        Category.RELIABILITY,
        Severity.WARNING,
        "Every healthy data-bearing member is at most `replica_lag_max` behind the "
        "primary (with `replica_set`).",
        threshold="replica_lag_max",
        when=lambda config: config.replica_set,
        formerly=("replset_lag",),
    ),
    CheckDef(
        "connections_under_limit",
        Category.PERFORMANCE,
        Severity.WARNING,
        "connections.current is under `connections_ratio_max` of current plus "
        "available.",
        threshold="connections_ratio_max",
    ),
)


# --- clients and their lifetime -------------------------------------------------


@dataclass
class _Clients:
    """The probe's own client, and one without credentials for auth_required."""

    main: Client
    anonymous: Client | None

    def all(self) -> list[Client]:
        return [self.main] + ([self.anonymous] if self.anonymous else [])


@dataclass
class MongoState:
    """The clients kept between runs, and retired ones still closing."""

    clients: _Clients | None = None
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    def retire(self) -> None:
        """Drop the clients and close them in the background.

        Called from `finally` blocks of cancelled runs too, so it must not
        await; closing sends endSessions, which may wait on a sick server.
        """
        clients, self.clients = self.clients, None
        if clients is None:
            return
        task = asyncio.create_task(_close(clients))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        self.retire()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _close(clients: _Clients) -> None:
    for client in clients.all():
        with (
            contextlib.suppress(mongo_errors.PyMongoError),
            pymongo.timeout(_CLOSE_BUDGET),
        ):
            await client.close()


def _millis(seconds: float) -> int:
    # PyMongo reads 0 as "no timeout".
    return max(1, int(seconds * 1000))


def _client_options(config: MongodbConfig, deadline: Deadline) -> dict[str, Any]:
    # The clients live across runs: their timeouts are shares of one run's
    # budget, so the driver's own timeouts fire before the runner's.
    options: dict[str, Any] = {
        "appname": "readiness-exporter",
        "serverSelectionTimeoutMS": _millis(deadline.share(_SELECTION_SHARE)),
        "connectTimeoutMS": _millis(deadline.share(_CONNECT_SHARE)),
        # Per command. Not pymongo.timeout() around the run: under it the
        # driver ignores serverSelectionTimeoutMS, and a refused port would
        # take the whole budget instead of reading as connect early.
        "socketTimeoutMS": _millis(deadline.share(_COMMAND_SHARE)),
    }
    tls = config.tls_config
    if tls is not None:
        options["tls"] = True
        if tls.ca_file is not None:
            options["tlsCAFile"] = str(tls.ca_file)
        if tls.cert_file is not None:
            options["tlsCertificateKeyFile"] = str(tls.cert_file)
        if tls.insecure_skip_verify:
            options["tlsInsecure"] = True
    return options


def _open_clients(
    config: MongodbConfig, password: str | None, deadline: Deadline
) -> _Clients:
    if config.tls_config is not None:
        # PyMongo reads the files itself and reports a missing one as a
        # socket error (connect): load them as every kind does first, so a
        # bad ca_file or cert_file is a config failure that names the field.
        # Contexts are cached: this costs a stat per file when clients are made.
        config.tls_config.context()
    options = _client_options(config, deadline)
    # The password goes to the client, never into a URI that could be logged.
    credentials: dict[str, Any] = {} if password is None else {"password": password}
    main: Client = AsyncMongoClient(config.uri, **options, **credentials)
    anonymous: Client | None = None
    if config.expect_auth:
        anonymous = AsyncMongoClient(_without_credentials(config.uri), **options)
    return _Clients(main, anonymous)


# --- driver errors -> reasons ----------------------------------------------------


def translate_error(error: Exception, config: object) -> BaseException | None:
    """PyMongo's exceptions in the runner's terms; None for others."""
    if not isinstance(error, mongo_errors.PyMongoError):
        return None
    return _translate(error)


@contextlib.contextmanager
def _selection_explained(client: Client) -> Iterator[None]:
    """A failed server selection, told by what the client's monitors saw:
    only the client knows why no server could be selected."""
    try:
        yield
    except mongo_errors.ServerSelectionTimeoutError as error:
        raise _selection_failure(client) from error


def _translate(error: mongo_errors.PyMongoError) -> Exception:
    text = _short(error)
    if isinstance(error, mongo_errors.ServerSelectionTimeoutError):
        return TimeoutError("no MongoDB server answered in time")
    if isinstance(error, mongo_errors.NetworkTimeout | mongo_errors.ExecutionTimeout):
        return TimeoutError(text)
    if isinstance(error, mongo_errors.WaitQueueTimeoutError):
        return TimeoutError(text)
    if isinstance(error, mongo_errors.ConnectionFailure):
        if _looks_like_tls(str(error)):
            return ProbeError(text, reason=Reason.TLS)
        return ProbeError(text, reason=Reason.CONNECT)
    if isinstance(error, mongo_errors.OperationFailure):
        return _operation_failure(error)
    if isinstance(error, mongo_errors.ConfigurationError):
        return TargetConfigError(text)
    return ProtocolError(text)


def _selection_failure(client: Client) -> Exception:
    """Why no server could be selected: refused reads as connect, silence as
    timeout. The monitors keep the last error per server."""
    descriptions = client.topology_description.server_descriptions()
    errors = [sd.error for sd in descriptions.values() if sd.error is not None]
    if not errors:
        return TimeoutError("no MongoDB server answered in time")
    cause = errors[0]
    if isinstance(cause, mongo_errors.ServerSelectionTimeoutError):
        return TimeoutError("no MongoDB server answered in time")
    if not isinstance(cause, mongo_errors.PyMongoError):
        return ProbeError(_short(cause), reason=Reason.CONNECT)
    return _translate(cause)


def _short(error: BaseException) -> str:
    """The driver's message without its timeout settings tail (first_line
    redacts it)."""
    text = first_line(str(error), limit=400)
    return _TIMEOUTS_TAIL.sub("", text)[:160] or type(error).__name__


def _looks_like_tls(text: str) -> bool:
    # PyMongo folds ssl errors into AutoReconnect text without a cause chain.
    return "[SSL" in text or "SSL handshake" in text or "certificate verify" in text


def _operation_failure(error: mongo_errors.OperationFailure) -> Exception:
    details = error.details or {}
    name = str(details.get("codeName", ""))[:60]
    text = f"server refused: code {error.code}" + (f" ({name})" if name else "")
    if error.code in (_UNAUTHORIZED, _AUTHENTICATION_FAILED):
        return AuthError(text)
    return ProtocolError(text)


# --- encryption -------------------------------------------------------------------

# TLS options of a uri that switch TLS on by being there at all, whatever
# their value, as PyMongo reads them (tlsInsecure expands to the second one).
_IMPLIES_TLS = (
    "tlscertificatekeyfile",
    "tlscertificatekeyfilepassword",
    "tlscafile",
    "tlscrlfile",
    "tlsallowinvalidcertificates",
    "tlsallowinvalidhostnames",
    "tlsdisableocspendpointcheck",
)


def encryption(config: MongodbConfig) -> tuple[bool, str]:
    """`connection_encrypted`: whether the probe's client talks TLS, and
    what says so, for a run whose commands were answered.

    PyMongo tells no connection's TLS state through its public API (not in
    the topology, not on a server description). But a client with TLS on
    never falls back to plain text (a failed handshake fails the command),
    so the client's TLS setting and an answered command together say that
    the answer came over TLS. The setting is read as PyMongo reads it:
    tls_config (this probe's own), else the uri's `tls`/`ssl`, else any
    other `tls*` option, else TLS by default for `mongodb+srv://`.
    """
    if config.tls_config is not None:
        return _encrypted("tls_config", config.tls_config.insecure_skip_verify)
    query = config.uri.partition("?")[2]
    options = split_options(query) if query else {}
    insecure = bool(options.get("tlsallowinvalidcertificates"))
    tls = options.get("tls")
    if tls is True:
        return _encrypted("tls=true in the uri", insecure)
    if tls is False:
        return False, "plain text: the uri says tls=false"
    implied = [name for name in _IMPLIES_TLS if name in options]
    if implied:
        return _encrypted("the uri's TLS options", insecure)
    if config.uri.startswith("mongodb+srv://"):
        return _encrypted("mongodb+srv:// (TLS by default)", insecure)
    return False, "plain text: no tls_config and no tls=true in the uri"


def _encrypted(source: str, insecure: bool) -> tuple[bool, str]:
    unverified = "; the server's certificate is not verified" if insecure else ""
    return True, f"TLS on ({source}) and the server answered over it{unverified}"


# --- the run ------------------------------------------------------------------


async def probe(config: MongodbConfig, ctx: ProbeContext) -> ProbeResult:
    """Ping, read serverStatus (and replSetGetStatus), try an anonymous login."""
    state = ctx.state(MongoState)
    completed = False
    deadline = ctx.deadline
    try:
        # The clients' own timeouts are shares of a budget, per command: a
        # chain of slow commands is bounded by the run's budget as a whole.
        async with asyncio.timeout_at(deadline.loop_time()):
            result = await _run(config, state, deadline)
        completed = True
    except TimeoutError as error:
        if str(error):
            raise
        raise TimeoutError(
            f"the server's answers took the whole budget ({deadline.budget:g}s)"
        ) from None
    finally:
        # fresh_connection closes in the background too: close() sends
        # endSessions and may take up to its budget per client, which would
        # push a good run past its timeout.
        if config.fresh_connection or not completed:
            state.retire()
    return result


async def _run(
    config: MongodbConfig, state: MongoState, deadline: Deadline
) -> ProbeResult:
    checks = Checks(CHECKS, config)
    samples = []
    if state.clients is None:
        password = await resolve_secret(config, "password")
        state.clients = _open_clients(config, password, deadline)
        connect_seconds = await _timed_ping(state.clients.main)
        samples.append(Sample("mongodb_connect_seconds", connect_seconds))
    clients = state.clients
    ping_seconds = await _timed_ping(clients.main)
    checks.record("reachable", True, f"ping answered in {ping_seconds:.3f}s")
    samples.append(Sample("mongodb_ping_seconds", ping_seconds))
    if config.require_tls:
        checks.record("connection_encrypted", *encryption(config))

    status = await _command(clients.main, "serverStatus")
    samples += _judge_connections(config, checks, status)
    version = status.get("version")
    if isinstance(version, str):
        shown = version if _VERSION.match(version) else "unknown"
        samples.append(Sample.of("mongodb_server_info", 1, version=shown))

    if config.replica_set:
        samples += await _judge_replica_set(config, checks, clients.main)
    if clients.anonymous is not None:
        await _judge_auth(checks, clients.anonymous)
    return ProbeResult(checks=checks.finish(), samples=tuple(samples))


async def _timed_ping(client: Client) -> float:
    started = time.perf_counter()
    await _command(client, "ping")
    return time.perf_counter() - started


async def _command(client: Client, name: str) -> Mapping[str, Any]:
    with _selection_explained(client):
        reply: Mapping[str, Any] = await client.admin.command(
            name, read_preference=_ANY_MEMBER
        )
    return reply


def _judge_connections(
    config: MongodbConfig, checks: Checks, status: Mapping[str, Any]
) -> list[Sample]:
    connections = status.get("connections")
    current = _number(connections, "current")
    available = _number(connections, "available")
    if current is None or available is None:
        raise ProtocolError(
            "serverStatus reply has no numeric connections.current/available"
        )
    total = current + available
    share = current / total if total else 1.0
    checks.record(
        "connections_under_limit",
        current < config.connections_ratio_max * total,
        f"{current:g} of {total:g} connections in use ({share:.0%},"
        f" limit {config.connections_ratio_max:.0%})",
    )
    return [
        Sample.of("mongodb_connections", current, state="current"),
        Sample.of("mongodb_connections", available, state="available"),
    ]


def _number(document: object, key: str) -> float | None:
    if not isinstance(document, Mapping):
        return None
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# --- replica set ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    state: int
    state_text: str
    reachable: bool
    optime: datetime | None

    @property
    def healthy(self) -> bool:
        return self.reachable and self.state in _SERVING_STATES


def _parse_members(reply: Mapping[str, Any]) -> list[_Member]:
    raw_members = reply.get("members")
    if not isinstance(raw_members, list):
        raise ProtocolError("replSetGetStatus reply has no members list")
    members = []
    for index, raw in enumerate(raw_members[:_MAX_MEMBERS]):
        if not isinstance(raw, Mapping):
            raise ProtocolError("replSetGetStatus member is not a document")
        name = raw.get("name")
        state = raw.get("state")
        optime = raw.get("optimeDate")
        members.append(
            _Member(
                name=name
                if isinstance(name, str) and _MEMBER_NAME.match(name)
                # a member name we cannot use as a label falls back to its index
                else f"member{index}",
                state=state if isinstance(state, int) else -1,
                state_text=str(raw.get("stateStr", "?"))[:40],
                reachable=_number(raw, "health") == 1.0,
                # Down members report the epoch; that is no optime at all.
                optime=optime
                if isinstance(optime, datetime) and optime.year > 1970
                else None,
            )
        )
    return members


async def _judge_replica_set(
    config: MongodbConfig, checks: Checks, client: Client
) -> list[Sample]:
    with _selection_explained(client):
        try:
            reply = await client.admin.command(
                "replSetGetStatus", read_preference=_ANY_MEMBER
            )
        except mongo_errors.OperationFailure as refusal:
            if refusal.code not in _NOT_A_REPLICA_SET:
                raise
            _record_not_a_replica_set(checks, _operation_failure(refusal))
            return [Sample("mongodb_replset_has_primary", 0)]
    members = _parse_members(reply)
    primary = next((m for m in members if m.state == _PRIMARY), None)
    checks.record(
        "replset_has_primary",
        primary is not None,
        f"primary is {primary.name}" if primary else "no member is primary",
    )
    unhealthy = [f"{m.name} {m.state_text}" for m in members if not m.healthy]
    checks.record(
        "replset_members_healthy",
        not unhealthy,
        "unhealthy: " + ", ".join(unhealthy)
        if unhealthy
        else f"all {len(members)} members healthy",
    )
    lags = _lags(members, primary)
    _judge_lag(config, checks, lags, primary)
    samples = [Sample("mongodb_replset_has_primary", 1 if primary else 0)]
    for member in members:
        samples += [
            Sample.of("mongodb_replset_member_state", member.state, member=member.name),
            Sample.of(
                "mongodb_replset_member_healthy",
                1 if member.healthy else 0,
                member=member.name,
            ),
        ]
    samples += [
        Sample.of("mongodb_replset_member_lag_seconds", lag, member=name)
        for name, lag in lags.items()
    ]
    return samples


def _record_not_a_replica_set(checks: Checks, why: Exception) -> None:
    detail = f"not a replica set ({why})"
    for name in ("replset_has_primary", "replset_members_healthy", "replica_lag"):
        checks.record(name, False, detail)


def _lags(members: list[_Member], primary: _Member | None) -> dict[str, float]:
    """Seconds each healthy, data-bearing member trails the reference optime:
    the primary's, or without a primary the newest one in the set."""
    candidates = [m for m in members if m.healthy and m.optime is not None]
    reference = primary.optime if primary and primary.optime else None
    if reference is None and candidates:
        reference = max(m.optime for m in candidates if m.optime is not None)
    if reference is None:
        return {}
    return {
        m.name: max(0.0, (reference - m.optime).total_seconds())
        for m in candidates
        if m.optime is not None
    }


def _judge_lag(
    config: MongodbConfig,
    checks: Checks,
    lags: dict[str, float],
    primary: _Member | None,
) -> None:
    if not lags:
        checks.record("replica_lag", False, "no member reports an optime")
        return
    behind = {name: lag for name, lag in lags.items() if lag > config.replica_lag_max}
    worst = max(lags.values())
    against = "primary" if primary else "newest member (no primary)"
    detail = (
        "behind: " + ", ".join(f"{n} {lag:g}s" for n, lag in behind.items())
        if behind
        else f"max lag {worst:g}s behind the {against}"
    )
    checks.record("replica_lag", not behind, detail)


# --- auth ------------------------------------------------------------------------


async def _judge_auth(checks: Checks, anonymous: Client) -> None:
    """A client with no credentials must get code 13 for listDatabases."""
    with _selection_explained(anonymous):
        try:
            await anonymous.admin.command(
                "listDatabases", nameOnly=True, read_preference=_ANY_MEMBER
            )
        except mongo_errors.ExecutionTimeout:
            raise
        except mongo_errors.OperationFailure as refusal:
            enforced = refusal.code == _UNAUTHORIZED
            checks.record(
                "auth_required",
                enforced,
                "unauthenticated listDatabases refused (Unauthorized)"
                if enforced
                else f"listDatabases refused with code {refusal.code},"
                " expected 13 Unauthorized",
            )
            return
    checks.record("auth_required", False, "listDatabases allowed without credentials")
