"""Probe that judges a Redis server: reachable, memory limits, policy, persistence.

Each run sends one pipeline on the probe's one kept connection (named
`readiness-exporter` in CLIENT LIST): PING, INFO, a few CONFIG GETs (a server
that refuses CONFIG falls back to INFO fields) and, when configured, the
BullMQ queue reads of `redis_bullmq.py`. Retries are off: a run is one attempt.

    readiness_redis_memory_used_bytes{probe="cache"} 1.2e+06
    readiness_redis_maxmemory_bytes{probe="cache"} 2.147483648e+09
    readiness_redis_keyspace_hits_total{probe="cache"} 4711
    readiness_redis_eviction_policy_info{probe="cache",policy="allkeys-lru"} 1
    readiness_redis_hit_ratio{probe="cache"} 0.93
    readiness_check_passed{probe="cache",check="eviction_policy",...} 1
"""

from __future__ import annotations

import asyncio
import builtins
import os
import re
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, cast
from urllib.parse import unquote, urlsplit

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ConnectionError as RedisConnectionError,
    NoPermissionError,
    RedisError,
    ResponseError,
    TimeoutError as RedisTimeoutError,
)

from exporter.probes import redis_bullmq
from exporter.probes.base import (
    AuthError,
    BaseProbeConfig,
    Category,
    Checks,
    CheckSpec,
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
from exporter.probes.context import ProbeContext
from exporter.redact import redact

CLIENT_NAME = "readiness-exporter"

EVICTION_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
EvictionPolicy = Literal[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]

METRICS = (
    MetricSpec(
        "redis_connect_seconds",
        "Time to connect and authenticate, for runs that opened a connection.",
    ),
    MetricSpec("redis_memory_used_bytes", "used_memory from INFO memory."),
    MetricSpec("redis_maxmemory_bytes", "maxmemory; 0 means no limit."),
    MetricSpec("redis_connected_clients", "Client connections, ours included."),
    MetricSpec("redis_maxclients", "Most client connections the server accepts."),
    MetricSpec(
        "redis_evicted_keys_total", "Keys evicted since start (INFO).", "counter"
    ),
    MetricSpec(
        "redis_keyspace_hits_total", "Key lookups that found a key (INFO).", "counter"
    ),
    MetricSpec(
        "redis_keyspace_misses_total",
        "Key lookups that found no key (INFO).",
        "counter",
    ),
    MetricSpec(
        "redis_hit_ratio",
        "Share of key lookups that hit since the previous run (others' lookups"
        " only); absent when there were none.",
    ),
    MetricSpec(
        "redis_role_info",
        "Replication role: master, replica or other.",
        "info",
        ("role",),
    ),
    MetricSpec("redis_aof_enabled", "1 when the append-only file is on."),
    MetricSpec("redis_rdb_last_save_ok", "1 when the last RDB snapshot succeeded."),
    MetricSpec(
        "redis_eviction_policy_info",
        "maxmemory-policy (other for names this exporter does not know).",
        "info",
        ("policy",),
    ),
    *redis_bullmq.METRICS,
)


# --- config ------------------------------------------------------------------

_SIZE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]*)$")
# Redis's own convention: k/m/g are powers of 1000, kb/mb/gb powers of 1024.
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1024**4,
    "tib": 1024**4,
}


def parse_size(value: object) -> int:
    """Bytes from `2gb`, `512MB`, `1g` (10^9, as Redis reads it) or an int."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 2gb, 512mb or a number of bytes")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.match(value.strip().lower())
        if match is None or match["unit"] not in _SIZE_UNITS:
            raise ValueError(
                f"invalid size {value!r}: write a number of bytes or a number"
                " with kb, mb, gb (powers of 1024) or k, m, g (powers of 1000)"
            )
        size = int(float(match["number"]) * _SIZE_UNITS[match["unit"]])
    else:
        raise ValueError("expected a size such as 2gb, 512mb or a number of bytes")
    if size <= 0:
        raise ValueError("a size must be above zero")
    return size


Bytes = Annotated[int, BeforeValidator(parse_size)]


@dataclass(frozen=True, slots=True)
class Target:
    """The parts of a redis:// or rediss:// URL the probe uses."""

    host: str
    port: int
    db: int
    tls: bool
    username: str | None
    password: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """host:port, safe to show (no credentials)."""
        return f"{self.host}:{self.port}"


def parse_url(url: str) -> Target:
    """Split *url*; errors never repeat the URL, which may hold a password."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("url must start with redis:// or rediss:// (TLS)")
    if not parts.hostname:
        raise ValueError("url has no host; write redis://host:6379/0")
    if parts.query or parts.fragment:
        raise ValueError(
            "url query options are not supported; use the probe's fields"
            " (timeout, username, password, ca_file, ...)"
        )
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("url has an invalid port") from None
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError("the url path must be a database number, as in /0")
    return Target(
        host=parts.hostname,
        port=port,
        db=int(database or 0),
        tls=parts.scheme == "rediss",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class RedisConfig(BaseProbeConfig):
    """Which server, as whom, and what its settings and queues must look like."""

    kind: Literal["redis"] = "redis"
    url: str = Field(min_length=1, repr=False)  # may hold a password
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None
    protocol: Literal[2, 3] = 3
    ca_file: Path | None = None
    insecure_skip_verify: bool = False
    maxmemory_max: Bytes | None = None
    eviction_policy: EvictionPolicy | None = "allkeys-lru"
    persistence: Literal["aof", "rdb", "any", "off"] = "aof"
    expect_auth: bool = False
    memory_warning_ratio: float = Field(default=0.85, gt=0, le=1)
    memory_critical_ratio: float = Field(default=0.90, gt=0, le=1)
    hit_ratio_min: float | None = Field(default=0.80, ge=0, le=1)
    fresh_connection: bool = False
    bullmq: redis_bullmq.BullmqConfig | None = None

    @field_validator("url")
    @classmethod
    def _url_parses(cls, url: str) -> str:
        parse_url(url)
        return url

    @model_validator(mode="after")
    def _consistent(self) -> RedisConfig:
        target = parse_url(self.url)
        if self.password is not None and self.password_file is not None:
            raise ValueError("set either password or password_file, not both")
        if target.password and (self.password or self.password_file):
            raise ValueError(
                "the url holds a password and password/password_file is set too;"
                " keep one (password_file keeps it out of the config)"
            )
        if target.username and self.username:
            raise ValueError("set the user either in the url or in username")
        if not target.tls and (self.ca_file or self.insecure_skip_verify):
            raise ValueError(
                "ca_file and insecure_skip_verify apply to TLS only;"
                " use a rediss:// url"
            )
        if self.memory_warning_ratio > self.memory_critical_ratio:
            raise ValueError(
                "memory_warning_ratio must be at most memory_critical_ratio"
            )
        return self


def plan(config: RedisConfig) -> list[CheckSpec]:
    """The checks a run of *config* yields."""
    specs = [
        CheckSpec(
            "reachable",
            Category.RELIABILITY,
            Severity.CRITICAL,
            "Connects, authenticates and answers PING and INFO.",
        )
    ]
    if config.expect_auth:
        specs.append(
            CheckSpec(
                "auth_required",
                Category.SECURITY,
                Severity.CRITICAL,
                "An unauthenticated PING is refused (NOAUTH).",
            )
        )
    specs.append(
        CheckSpec(
            "maxmemory_set",
            Category.PERFORMANCE,
            Severity.WARNING,
            "maxmemory is set, and at most maxmemory_max when configured.",
        )
    )
    if config.eviction_policy is not None:
        specs.append(
            CheckSpec(
                "eviction_policy",
                Category.PERFORMANCE,
                Severity.WARNING,
                f"maxmemory-policy is {config.eviction_policy}.",
            )
        )
    specs += [
        CheckSpec(
            "persistence",
            Category.DATA,
            Severity.WARNING,
            f"Persistence matches `{config.persistence}`.",
        ),
        CheckSpec(
            "memory_usage",
            Category.PERFORMANCE,
            Severity.WARNING,
            f"used_memory is under {config.memory_warning_ratio:.0%} of maxmemory.",
        ),
        CheckSpec(
            "memory_usage_critical",
            Category.PERFORMANCE,
            Severity.CRITICAL,
            f"used_memory is under {config.memory_critical_ratio:.0%} of maxmemory.",
        ),
    ]
    if config.hit_ratio_min is not None:
        specs.append(
            CheckSpec(
                "hit_ratio",
                Category.PERFORMANCE,
                Severity.INFO,
                f"Keyspace hit ratio since the last run is at least"
                f" {config.hit_ratio_min:.0%} (passes without traffic).",
            )
        )
    if config.bullmq is not None:
        specs += redis_bullmq.plan(config.bullmq)
    return specs


# --- talking to the server ---------------------------------------------------


class _Link(Protocol):
    """The part of redis.asyncio.Connection this probe uses.

    A bare Connection, not a Redis client: a client's pipelines borrow a
    second connection from its pool, and its pool reconnects behind our back,
    so neither "one connection" nor "connect time" would hold.
    """

    protocol: int
    socket_timeout: float | None

    @property
    def is_connected(self) -> bool: ...
    async def connect(self) -> None: ...
    async def disconnect(self, nowait: bool = False) -> None: ...
    async def send_command(self, *args: Any, **kwargs: Any) -> None: ...
    async def send_packed_command(
        self, command: list[bytes], check_health: bool = True
    ) -> None: ...
    def pack_commands(self, commands: Iterable[Sequence[str]]) -> list[bytes]: ...
    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (redis-py's own signature)
    ) -> Any: ...


class _Deadline:
    """Inner driver deadline, a little before the runner's hard one."""

    def __init__(self, timeout: float) -> None:
        self._end = time.monotonic() + timeout * 0.9

    def remaining(self) -> float:
        return max(0.01, self._end - time.monotonic())


def _new_link(
    config: RedisConfig,
    target: Target,
    deadline: _Deadline,
    *,
    protocol: int,
    username: str | None,
    password: str | None,
    anonymous: bool = False,
) -> _Link:
    options: dict[str, Any] = {
        "host": target.host,
        "port": target.port,
        "db": 0 if anonymous else target.db,
        "username": username,
        "password": password,
        "protocol": protocol,
        "socket_timeout": deadline.remaining(),
        "socket_connect_timeout": deadline.remaining(),
        "retry": Retry(NoBackoff(), 0),  # redis-py's default retries 10 times
        "decode_responses": True,
        "encoding_errors": "replace",
    }
    if anonymous:
        # Nothing before our PING: no name, no CLIENT SETINFO, no HELLO.
        options["driver_info"] = None
    else:
        options["client_name"] = CLIENT_NAME
    if not target.tls:
        return cast(_Link, Connection(**options))
    return cast(
        _Link,
        SSLConnection(
            ssl_ca_certs=str(config.ca_file) if config.ca_file else None,
            ssl_cert_reqs="none" if config.insecure_skip_verify else "required",
            ssl_check_hostname=not config.insecure_skip_verify,
            **options,
        ),
    )


async def _read_password(config: RedisConfig, target: Target) -> str | None:
    if config.password is not None:
        return config.password.get_secret_value()
    if config.password_file is None:
        return target.password
    try:
        text = await asyncio.to_thread(config.password_file.read_text, "utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8"
        raise TargetConfigError(
            f"password_file {config.password_file} cannot be read: {reason}"
        ) from error
    password = text.rstrip("\r\n")
    if not password:
        raise TargetConfigError(f"password_file {config.password_file} is empty")
    return password


def _hello_rejected(error: ResponseError) -> bool:
    """Redis < 6 answers HELLO with `unknown command 'HELLO'`."""
    text = str(error).lower()
    return "unknown command" in text and "hello" in text


async def _roundtrip(
    link: _Link, commands: Sequence[Sequence[str]], deadline: _Deadline
) -> list[object]:
    """Send *commands* in one write; error replies come back in their place."""
    link.socket_timeout = deadline.remaining()
    await link.send_packed_command(link.pack_commands(commands))
    replies: list[object] = []
    for _ in commands:
        try:
            replies.append(await link.read_response(timeout=deadline.remaining()))
        except ResponseError as error:  # the stream stays in step after these
            replies.append(error)
    return replies


@dataclass(frozen=True, slots=True)
class Exchange:
    """The replies of one run's pipeline and how the connection was had."""

    replies: list[object]
    protocol: int
    connect_seconds: float | None


def _is_dropped(error: BaseException) -> bool:
    """A kept connection the server closed (restart, CLIENT KILL, timeout)."""
    if isinstance(error, AuthenticationError | BusyLoadingError):
        return False
    if isinstance(error, RedisConnectionError):
        return "max number of clients" not in str(error)
    return isinstance(error, OSError) and not isinstance(error, TimeoutError)


class RedisSession:
    """The probe's connection, kept between runs unless `fresh_connection`."""

    def __init__(self) -> None:
        self._link: _Link | None = None
        self._resp2_only = False  # the server rejected HELLO once

    async def exchange(
        self,
        config: RedisConfig,
        target: Target,
        commands: Sequence[Sequence[str]],
        deadline: _Deadline,
    ) -> Exchange:
        """Run *commands*, reusing or (re)making the connection."""
        if config.fresh_connection:
            link, connect_seconds = await self._open(config, target, deadline)
            try:
                replies = await _roundtrip(link, commands, deadline)
            finally:
                await link.disconnect(nowait=True)
            return Exchange(replies, link.protocol, connect_seconds)
        kept = self._link
        if kept is not None and kept.is_connected:
            try:
                replies = await _roundtrip(kept, commands, deadline)
                return Exchange(replies, kept.protocol, None)
            except BaseException as error:
                await self.discard()
                if not _is_dropped(error):
                    raise
        await self.discard()
        link, connect_seconds = await self._open(config, target, deadline)
        self._link = link
        try:
            replies = await _roundtrip(link, commands, deadline)
        except BaseException:
            await self.discard()
            raise
        return Exchange(replies, link.protocol, connect_seconds)

    async def _open(
        self, config: RedisConfig, target: Target, deadline: _Deadline
    ) -> tuple[_Link, float]:
        password = await _read_password(config, target)
        username = config.username or target.username
        protocol = 2 if self._resp2_only else config.protocol
        started = time.perf_counter()
        link = _new_link(
            config,
            target,
            deadline,
            protocol=protocol,
            username=username,
            password=password,
        )
        try:
            await link.connect()
        except ResponseError as error:
            if protocol != 3 or not _hello_rejected(error):
                raise
            self._resp2_only = True
            link = _new_link(
                config,
                target,
                deadline,
                protocol=2,
                username=username,
                password=password,
            )
            await link.connect()
        return link, time.perf_counter() - started

    async def discard(self) -> None:
        """Drop the kept connection at once (after a failure or a timeout)."""
        link, self._link = self._link, None
        if link is not None:
            await link.disconnect(nowait=True)

    async def aclose(self) -> None:
        """Close the kept connection (the probe was removed or reconfigured)."""
        link, self._link = self._link, None
        if link is not None:
            await link.disconnect()


async def _unauthenticated_ping(
    config: RedisConfig, target: Target, deadline: _Deadline
) -> tuple[bool, str]:
    """PING on a separate connection without credentials; refused is good."""
    link = _new_link(
        config,
        target,
        deadline,
        protocol=2,
        username=None,
        password=None,
        anonymous=True,
    )
    try:
        await link.connect()
        await link.send_command("PING")
        reply = await link.read_response(timeout=deadline.remaining())
    except AuthenticationError:
        return True, "unauthenticated PING refused (NOAUTH)"
    except ResponseError as error:
        return False, (
            f"unauthenticated connection accepted; PING answered"
            f" {_error_code(error) or 'an error'}"
        )
    finally:
        await link.disconnect(nowait=True)
    return False, f"unauthenticated PING answered {str(reply)[:20]!r}"


# --- driver errors -> reasons -----------------------------------------------


def _os_error_in(error: BaseException) -> OSError | None:
    """The socket or TLS error redis-py wrapped into its ConnectionError."""
    seen: BaseException | None = error
    for _ in range(5):
        seen = seen.__cause__ or seen.__context__ if seen else None
        if isinstance(seen, OSError):
            return seen
    return None


def _translate(error: RedisError, target: Target, has_password: bool) -> Exception:
    """The runner's reason for a redis-py exception, as a new exception."""
    text = redact(first_line(str(error)))
    where = target.address
    if isinstance(error, RedisTimeoutError):
        return builtins.TimeoutError(f"{where}: {text}")
    if isinstance(error, AuthenticationError):
        if not has_password:
            return AuthError(
                f"{where} requires a password; set password or password_file"
            )
        return AuthError(f"{where} refused the credentials: {text}")
    if isinstance(error, BusyLoadingError):
        return ProtocolError(f"{where} is loading its dataset (LOADING)")
    if isinstance(error, RedisConnectionError):
        return _connection_failure(error, where, text)
    if isinstance(error, NoPermissionError):
        return TargetConfigError(
            f"the probe's user may not run a command it needs: {text}"
            " (grant +ping +info +config|get, and read access to the BullMQ keys)"
        )
    if isinstance(error, ResponseError) and _error_code(error) == "MASTERDOWN":
        return ProtocolError(f"{where}: replica lost its master (MASTERDOWN)")
    return ProtocolError(f"{where}: {type(error).__name__}: {text}")


def _connection_failure(
    error: RedisConnectionError, where: str, text: str
) -> Exception:
    if "max number of clients" in text:
        return ProtocolError(f"{where}: max number of clients reached")
    cause = _os_error_in(error)
    if isinstance(cause, ssl.SSLError | ssl.CertificateError):
        reason = getattr(cause, "verify_message", None) or first_line(cause)
        return ProbeError(f"TLS with {where} failed: {reason}", reason=Reason.TLS)
    if cause is not None and cause.errno:
        # OSError(errno, ...) picks the subclass: ConnectionRefusedError, ...
        return OSError(cause.errno, f"{where}: {os.strerror(cause.errno)}")
    return builtins.ConnectionError(f"{where}: {text}")  # an OSError: connect


def _error_code(error: ResponseError) -> str:
    """`WRONGTYPE`, `MASTERDOWN`, ...: redis-py keeps the codes it knows apart."""
    return error.status_code or (str(error).split(" ", 1)[0] if str(error) else "")


def _raise_if_error(reply: object) -> object:
    if isinstance(reply, RedisError):
        raise reply
    return reply


# --- what the server said ----------------------------------------------------

_CONFIG_PARAMETERS = ("maxmemory", "maxmemory-policy", "maxclients", "save")
_SERVER_COMMANDS = 2 + len(_CONFIG_PARAMETERS)  # PING, INFO, CONFIG GET ...


def _commands(config: RedisConfig) -> list[tuple[str, ...]]:
    commands: list[tuple[str, ...]] = [("PING",), ("INFO",)]
    commands += [("CONFIG", "GET", name) for name in _CONFIG_PARAMETERS]
    if config.bullmq is not None:
        for queue in config.bullmq.queues:
            commands += redis_bullmq.commands(config.bullmq.prefix, queue.name)
    return commands


def parse_info(text: str) -> dict[str, str]:
    """INFO's `field:value` lines; section headers and blanks are skipped."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, value = line.split(":", 1)
            fields[name] = value.strip()
    return fields


def _config_value(reply: object, name: str) -> str | None:
    """One CONFIG GET answer; None when refused (NOPERM, renamed) or unknown."""
    if isinstance(reply, dict):
        value = reply.get(name)
    elif isinstance(reply, list) and len(reply) == 2:
        value = reply[1]
    else:
        return None
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What PING, INFO and CONFIG GET said."""

    role: str
    used_memory: int
    maxmemory: int
    policy: str
    connected_clients: int
    maxclients: int | None
    evicted_keys: int
    hits: int
    misses: int
    aof_enabled: bool
    aof_write_ok: bool
    rdb_save_ok: bool
    rdb_snapshot_taken: bool
    save_schedule: str | None  # None: CONFIG GET was not permitted
    config_readable: bool


def _integer(info: dict[str, str], name: str, default: int | None = None) -> int:
    value = info.get(name)
    if value is None:
        if default is None:
            raise ProtocolError(f"INFO has no {name} field; is this a Redis server?")
        return default
    try:
        return int(float(value))
    except ValueError:
        raise ProtocolError(f"INFO field {name} is not a number") from None


def _facts_from(replies: Sequence[object]) -> ServerFacts:
    pong = _raise_if_error(replies[0])
    if str(pong) != "PONG":
        raise ProtocolError(f"PING answered {str(pong)[:20]!r}, not PONG")
    info_text = _raise_if_error(replies[1])
    if not isinstance(info_text, str):
        raise ProtocolError("INFO did not answer with text")
    info = parse_info(info_text)
    config = {
        name: _config_value(reply, name)
        for name, reply in zip(
            _CONFIG_PARAMETERS, replies[2:_SERVER_COMMANDS], strict=True
        )
    }
    maxmemory = config["maxmemory"] or info.get("maxmemory")
    maxclients = config["maxclients"] or info.get("maxclients")
    return ServerFacts(
        role=info.get("role", ""),
        used_memory=_integer(info, "used_memory"),
        maxmemory=int(maxmemory) if maxmemory and maxmemory.isdigit() else 0,
        policy=config["maxmemory-policy"] or info.get("maxmemory_policy", ""),
        connected_clients=_integer(info, "connected_clients", 0),
        maxclients=int(maxclients) if maxclients and maxclients.isdigit() else None,
        evicted_keys=_integer(info, "evicted_keys", 0),
        hits=_integer(info, "keyspace_hits", 0),
        misses=_integer(info, "keyspace_misses", 0),
        aof_enabled=info.get("aof_enabled") == "1",
        aof_write_ok=info.get("aof_last_write_status", "ok") == "ok",
        rdb_save_ok=info.get("rdb_last_bgsave_status") == "ok",
        rdb_snapshot_taken=_integer(info, "rdb_last_bgsave_time_sec", -1) >= 0,
        save_schedule=config["save"],
        config_readable=any(value is not None for value in config.values()),
    )


def _queue_counts(
    config: redis_bullmq.BullmqConfig, replies: Sequence[object]
) -> dict[str, redis_bullmq.QueueCounts]:
    counts: dict[str, redis_bullmq.QueueCounts] = {}
    width = redis_bullmq.READS_PER_QUEUE
    for position, queue in enumerate(config.queues):
        chunk = replies[position * width : (position + 1) * width]
        for index, reply in enumerate(chunk):
            if isinstance(reply, ResponseError) and _error_code(reply) == "WRONGTYPE":
                key = redis_bullmq.key_of(config.prefix, queue.name, index)
                raise TargetConfigError(
                    f"key {key} is not what BullMQ stores there (WRONGTYPE);"
                    " check bullmq.prefix and the queue name"
                )
            _raise_if_error(reply)
        try:
            counts[queue.name] = redis_bullmq.counts_from(chunk)
        except (TypeError, ValueError) as error:
            raise ProtocolError(
                f"queue {queue.name}: unexpected reply ({error})"
            ) from None
    return counts


# --- state kept between runs -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _HitBaseline:
    """Counters at the previous run, and the lookups that run made itself."""

    hits: int
    misses: int
    own_hits: int
    own_misses: int


class RedisState:
    """Connection, hit-ratio baseline and backlog windows of one probe."""

    def __init__(self) -> None:
        self.session = RedisSession()
        self.baseline: _HitBaseline | None = None
        self.backlogs: dict[str, redis_bullmq.BacklogWindow] = {}

    def backlog(self, queue: redis_bullmq.BullmqQueue) -> redis_bullmq.BacklogWindow:
        runs = queue.backlog_growth_runs or 1
        window = self.backlogs.get(queue.name)
        if window is None or window.runs != runs:
            window = self.backlogs[queue.name] = redis_bullmq.BacklogWindow(runs)
        return window

    async def aclose(self) -> None:
        await self.session.aclose()


# --- verdicts ----------------------------------------------------------------


def _gib(size: int) -> str:
    return (
        f"{size / 1024**3:.2f} GiB" if size >= 1024**3 else f"{size / 1024**2:.1f} MiB"
    )


def _judge_maxmemory(checks: Checks, config: RedisConfig, facts: ServerFacts) -> None:
    if facts.maxmemory <= 0:
        checks.record("maxmemory_set", False, "maxmemory is 0: no memory limit")
    elif config.maxmemory_max is not None and facts.maxmemory > config.maxmemory_max:
        checks.record(
            "maxmemory_set",
            False,
            f"maxmemory {_gib(facts.maxmemory)} is above maxmemory_max"
            f" {_gib(config.maxmemory_max)}",
        )
    else:
        checks.record("maxmemory_set", True, f"maxmemory {_gib(facts.maxmemory)}")


def _judge_policy(checks: Checks, config: RedisConfig, facts: ServerFacts) -> None:
    if config.eviction_policy is not None:
        checks.record(
            "eviction_policy",
            facts.policy == config.eviction_policy,
            f"maxmemory-policy {facts.policy or '?'}, expected"
            f" {config.eviction_policy}",
        )
    if checks.planned("bullmq_eviction_policy"):
        checks.record(
            "bullmq_eviction_policy",
            facts.policy == "noeviction",
            f"maxmemory-policy {facts.policy or '?'}; BullMQ needs noeviction",
        )


def _persistence_verdict(mode: str, facts: ServerFacts) -> tuple[bool, str]:
    aof = facts.aof_enabled and facts.aof_write_ok
    if facts.save_schedule is not None:
        rdb_scheduled = bool(facts.save_schedule.strip())
        how = f"save {facts.save_schedule.strip() or 'off'}"
    else:  # without CONFIG GET the schedule is unknown: judge by a snapshot
        rdb_scheduled = facts.rdb_snapshot_taken
        how = "save schedule unreadable, " + (
            "a snapshot was taken" if rdb_scheduled else "no snapshot since start"
        )
    rdb = rdb_scheduled and facts.rdb_save_ok
    state = (
        f"AOF {'on' if facts.aof_enabled else 'off'}"
        f"{'' if facts.aof_write_ok else ' (last write failed)'}, {how}"
        f"{'' if facts.rdb_save_ok else ', last RDB save failed'}"
    )
    verdicts = {
        "aof": aof,
        "rdb": rdb,
        "any": aof or rdb,
        "off": not facts.aof_enabled and not rdb_scheduled,
    }
    return verdicts[mode], f"{state}; expected {mode}"


def _judge_memory(checks: Checks, config: RedisConfig, facts: ServerFacts) -> None:
    if facts.maxmemory <= 0:
        detail = "no maxmemory: nothing to compare used memory with (see maxmemory_set)"
        checks.record("memory_usage", True, detail)
        checks.record("memory_usage_critical", True, detail)
        return
    ratio = facts.used_memory / facts.maxmemory
    for name, limit in (
        ("memory_usage", config.memory_warning_ratio),
        ("memory_usage_critical", config.memory_critical_ratio),
    ):
        checks.record(
            name,
            ratio < limit,
            f"{_gib(facts.used_memory)} of {_gib(facts.maxmemory)} used"
            f" ({ratio:.1%}, limit {limit:.0%})",
        )


def _hit_ratio(
    state: RedisState, facts: ServerFacts, own_hits: int, own_misses: int
) -> tuple[float | None, str]:
    """Hit ratio of others' lookups since the last run, and why it is None."""
    previous, state.baseline = (
        state.baseline,
        _HitBaseline(facts.hits, facts.misses, own_hits, own_misses),
    )
    if previous is None:
        return None, "first run: baseline taken"
    if facts.hits < previous.hits or facts.misses < previous.misses:
        return None, "counters went back (restart or CONFIG RESETSTAT): new baseline"
    # The previous run's own BullMQ reads landed after its INFO: take them off.
    hits = max(0, facts.hits - previous.hits - previous.own_hits)
    misses = max(0, facts.misses - previous.misses - previous.own_misses)
    if hits + misses == 0:
        return None, "no key lookups since the last run"
    return hits / (hits + misses), f"{hits} hits, {misses} misses since the last run"


def _samples(facts: ServerFacts, exchange: Exchange) -> list[Sample]:
    role = {"master": "master", "slave": "replica"}.get(facts.role, "other")
    policy = facts.policy if facts.policy in EVICTION_POLICIES else "other"
    samples = [
        Sample("redis_memory_used_bytes", facts.used_memory),
        Sample("redis_maxmemory_bytes", facts.maxmemory),
        Sample("redis_connected_clients", facts.connected_clients),
        Sample("redis_evicted_keys_total", facts.evicted_keys),
        Sample("redis_keyspace_hits_total", facts.hits),
        Sample("redis_keyspace_misses_total", facts.misses),
        Sample.of("redis_role_info", 1, role=role),
        Sample("redis_aof_enabled", float(facts.aof_enabled)),
        Sample("redis_rdb_last_save_ok", float(facts.rdb_save_ok)),
        Sample.of("redis_eviction_policy_info", 1, policy=policy),
    ]
    if facts.maxclients is not None:
        samples.append(Sample("redis_maxclients", facts.maxclients))
    if exchange.connect_seconds is not None:
        samples.append(Sample("redis_connect_seconds", exchange.connect_seconds))
    return samples


def _reachable_detail(
    config: RedisConfig, facts: ServerFacts, exchange: Exchange
) -> str:
    how = (
        f"connected in {exchange.connect_seconds:.3f}s"
        if exchange.connect_seconds is not None
        else "kept connection"
    )
    resp = "RESP3" if exchange.protocol == 3 else "RESP2"
    if exchange.protocol != config.protocol:
        resp += " (server rejected HELLO)"
    settings = "" if facts.config_readable else "; CONFIG GET refused, used INFO"
    return f"PONG; {how}, {resp}, role {facts.role}{settings}"


def _judge_hit_ratio(
    checks: Checks,
    config: RedisConfig,
    state: RedisState,
    facts: ServerFacts,
    queues: dict[str, redis_bullmq.QueueCounts],
) -> list[Sample]:
    own_hits = sum(found.keys_found for found in queues.values())
    own_misses = redis_bullmq.READS_PER_QUEUE * len(queues) - own_hits
    ratio, why = _hit_ratio(state, facts, own_hits, own_misses)
    if config.hit_ratio_min is not None:
        floor = config.hit_ratio_min
        shown = f"ratio {ratio:.2f} ({why})" if ratio is not None else why
        checks.record(
            "hit_ratio", ratio is None or ratio >= floor, f"{shown}, floor {floor:.2f}"
        )
    return [] if ratio is None else [Sample("redis_hit_ratio", ratio)]


def _judge_queues(
    checks: Checks,
    config: redis_bullmq.BullmqConfig,
    state: RedisState,
    counts: dict[str, redis_bullmq.QueueCounts],
) -> list[Sample]:
    samples: list[Sample] = []
    for queue in config.queues:
        found = counts[queue.name]
        if checks.planned(f"bullmq_{queue.name}_depth"):
            checks.record(
                f"bullmq_{queue.name}_depth", *redis_bullmq.depth_verdict(queue, found)
            )
        if queue.backlog_growth_runs is not None:
            checks.record(
                f"bullmq_{queue.name}_backlog",
                *state.backlog(queue).observe(found.not_started),
            )
        samples += redis_bullmq.samples(queue.name, found)
    return samples


# --- the probe ---------------------------------------------------------------


async def probe(config: RedisConfig, ctx: ProbeContext) -> ProbeResult:
    """One pipeline (and an unauthenticated PING if asked); judge the answers."""
    checks = Checks(plan(config))
    state = ctx.state(RedisState)
    target = parse_url(config.url)
    deadline = _Deadline(config.timeout)
    commands = _commands(config)
    try:
        exchange = await state.session.exchange(config, target, commands, deadline)
        facts = _facts_from(exchange.replies)
        queues = (
            _queue_counts(config.bullmq, exchange.replies[_SERVER_COMMANDS:])
            if config.bullmq is not None
            else {}
        )
        if config.expect_auth:
            checks.record(
                "auth_required", *await _unauthenticated_ping(config, target, deadline)
            )
    except RedisError as error:
        state.baseline = None  # this run's own lookups are unknown
        has_password = bool(config.password or config.password_file or target.password)
        raise _translate(error, target, has_password) from error
    except BaseException:
        state.baseline = None
        raise
    checks.record("reachable", True, _reachable_detail(config, facts, exchange))
    _judge_maxmemory(checks, config, facts)
    _judge_policy(checks, config, facts)
    checks.record("persistence", *_persistence_verdict(config.persistence, facts))
    _judge_memory(checks, config, facts)
    samples = _samples(facts, exchange)
    samples += _judge_hit_ratio(checks, config, state, facts, queues)
    if config.bullmq is not None:
        samples += _judge_queues(checks, config.bullmq, state, queues)
    return ProbeResult(checks=checks.finish(), samples=tuple(samples))
