"""The redis kind's connection: connect, RESP3 with RESP2 fallback, reuse.

One bare redis-py `Connection` per probe, kept between runs and remade when
the server dropped it; a server that rejects HELLO (Redis < 6) is spoken to
in RESP2 from then on. `translate_error` puts redis-py's exceptions in the
runner's terms. Nothing here is exported as a metric; its figures reach the
probe as:

    Exchange(replies=['PONG', '# Server\\r\\n...', ...], protocol=3,
             connect_seconds=0.0021)
"""

from __future__ import annotations

import asyncio
import builtins
import os
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from redis.asyncio.connection import Connection
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

from exporter.probes.base import (
    AuthError,
    ProbeError,
    ProtocolError,
    Reason,
    TargetConfigError,
    first_line,
)
from exporter.probes.context import Deadline
from exporter.probes.redis.config import RedisConfig
from exporter.probes.redis.url import Target, parse_url
from exporter.probes.shared.secrets import has_secret, resolve_secret

CLIENT_NAME = "readiness-exporter"


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


class _TlsConnection(Connection):
    """A connection over TLS with the shared context of `tls_config`.

    redis-py's own SSLConnection builds a context per connection (loading
    the trust store each time) and cannot set the server name; this one
    hands asyncio the cached context, as SSLConnection hands its own.
    """

    def __init__(self, *, tls: ssl.SSLContext, server_name: str, **kwargs: Any) -> None:
        self._tls = tls
        self._server_name = server_name
        super().__init__(**kwargs)

    def _connection_arguments(self) -> Mapping[str, Any]:
        return {
            **super()._connection_arguments(),
            "ssl": self._tls,
            "server_hostname": self._server_name,
        }


def _new_link(
    config: RedisConfig,
    target: Target,
    deadline: Deadline,
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
        _TlsConnection(
            tls=config.tls_config.context(),
            server_name=config.tls_config.server_name or target.host,
            **options,
        ),
    )


async def _read_password(config: RedisConfig, target: Target) -> str | None:
    password = await resolve_secret(config, "password")
    return target.password if password is None else password


def _hello_rejected(error: ResponseError) -> bool:
    """Redis < 6 answers HELLO with `unknown command 'HELLO'`."""
    text = str(error).lower()
    return "unknown command" in text and "hello" in text


async def _read(link: _Link, deadline: Deadline) -> Any:
    """One reply within what is left of the run's budget.

    Through `socket_timeout`, not `read_response(timeout=...)`: given a
    timeout, redis-py answers None when it expires (a poll, for pub/sub) and
    keeps the connection; on its socket timeout it raises `TimeoutError`
    naming the server and drops the connection, out of step as it is.
    """
    link.socket_timeout = deadline.remaining()
    return await link.read_response()


async def _roundtrip(
    link: _Link, commands: Sequence[Sequence[str]], deadline: Deadline
) -> list[object]:
    """Send *commands* in one write; error replies come back in their place."""
    link.socket_timeout = deadline.remaining()
    await link.send_packed_command(link.pack_commands(commands))
    replies: list[object] = []
    for _ in commands:
        try:
            replies.append(await _read(link, deadline))
        except ResponseError as error:  # the stream stays in step after these
            replies.append(error)
    return replies


class Turn(Protocol):
    """One round trip at a time to a server, and what must happen to its
    replies before the next begins (the hit ratio's ledger, `hitratio.py`)."""

    @property
    def lock(self) -> asyncio.Lock: ...
    @property
    def needed(self) -> bool: ...
    def skipped(self) -> None: ...
    def answered(self, replies: list[object]) -> None: ...
    def unanswered(self) -> None: ...


async def _take(lock: asyncio.Lock, within: float) -> bool:
    try:
        async with asyncio.timeout(within):
            await lock.acquire()
    except TimeoutError:
        return False
    return True


async def _roundtrip_in_turn(
    link: _Link, commands: Sequence[Sequence[str]], deadline: Deadline, turn: Turn
) -> list[object]:
    """`_roundtrip` holding *turn* when one is *needed*: the replies are
    settled before another probe of the server sends anything, so the server
    runs the daemon's commands in the order the ledger records them.

    A turn not had within half the budget (another probe's round trip hangs)
    is *skipped*: the run goes ahead, a healthy server is judged healthy, and
    only the hit ratio's window starts over.
    """
    held = turn.needed and await _take(turn.lock, deadline.remaining() / 2)
    if turn.needed and not held:
        turn.skipped()
    try:
        replies = await _roundtrip(link, commands, deadline)
    except BaseException as error:
        if not _is_dropped(error):  # a closed connection ran nothing
            turn.unanswered()
        raise
    else:
        turn.answered(replies)
    finally:
        if held:
            turn.lock.release()
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
        deadline: Deadline,
        turn: Turn,
    ) -> Exchange:
        """Run *commands* in *turn*, reusing or (re)making the connection.

        Connecting happens outside the turn, so a probe stuck connecting (a
        TLS handshake with a plain-text port) holds up no other probe.
        """
        if config.fresh_connection:
            link, connect_seconds = await self._open(config, target, deadline)
            try:
                replies = await _roundtrip_in_turn(link, commands, deadline, turn)
            finally:
                await link.disconnect(nowait=True)
            return Exchange(replies, link.protocol, connect_seconds)
        kept = self._link
        if kept is not None and kept.is_connected:
            try:
                replies = await _roundtrip_in_turn(kept, commands, deadline, turn)
                return Exchange(replies, kept.protocol, None)
            except BaseException as error:
                await self.discard()
                if not _is_dropped(error):
                    raise
        await self.discard()
        link, connect_seconds = await self._open(config, target, deadline)
        self._link = link
        try:
            replies = await _roundtrip_in_turn(link, commands, deadline, turn)
        except BaseException:
            await self.discard()
            raise
        return Exchange(replies, link.protocol, connect_seconds)

    async def _open(
        self, config: RedisConfig, target: Target, deadline: Deadline
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


async def unauthenticated_ping(
    config: RedisConfig, target: Target, deadline: Deadline
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
        reply = await _read(link, deadline)
    except AuthenticationError:
        return True, "unauthenticated PING refused (NOAUTH)"
    except ResponseError as error:
        return False, (
            f"unauthenticated connection accepted; PING answered"
            f" {error_code(error) or 'an error'}"
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


def translate_error(error: Exception, config: RedisConfig) -> BaseException | None:
    """A redis-py exception in the runner's terms; None for others."""
    if not isinstance(error, RedisError):
        return None
    target = parse_url(config.url)
    has_password = has_secret(config, "password") or bool(target.password)
    text = first_line(str(error))
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
    if isinstance(error, ResponseError) and error_code(error) == "MASTERDOWN":
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


def error_code(error: ResponseError) -> str:
    """`WRONGTYPE`, `MASTERDOWN`, ...: redis-py keeps the codes it knows apart."""
    return error.status_code or (str(error).split(" ", 1)[0] if str(error) else "")


def raise_if_error(reply: object) -> object:
    if isinstance(reply, RedisError):
        raise reply
    return reply
