"""A simulated estate of the MCP Threading System (checklist 000) on 127.0.0.1.

    estate = await McpEstate.start(tmp_path)
    estate.env            # the MCP_* variables config/examples/mcp-threading.yml reads
    async with estate.fault("worker_stopped"):
        ...               # judge it; the estate is healed on the way out
    await estate.stop()

What runs:

- the Node backend (one aiohttp app): `/api/threading/status` in the shape
  of the system's own `routes/threading.js` (one MCP worker thread),
  `/api/health` with the `database` block the checklist's "Check connection
  pool" reads, `/metrics`; helmet's headers, CORS for FRONTEND_URL and
  express-rate-limit's `RateLimit-*` headers on every reply. Served plain on
  the internal port (backend:3001) and over TLS on the public one (the
  reverse proxy), with a trustme certificate;
- MongoDB: a replica-set primary (mockupdb) that logs users in with
  SCRAM-SHA-256 and refuses `listDatabases` to clients without credentials;
- a Modbus TCP energy meter (pymodbus's simulator): voltage, frequency and
  cabinet temperature;
- nightly `mongodump --archive --gzip` backups, kept 7 days, in a directory
  and in an S3 bucket (moto, tests/servers/s3.py);
- a public port where MongoDB must not answer (nothing listens).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import os
import secrets
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import trustme
from aiohttp import web
from bson import Binary
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tests.conftest import free_port
from tests.probes.test_backup import DAY, mongodump_gz
from tests.servers.mongodb import (
    AUTHENTICATION_FAILED,
    UNAUTHORIZED,
    MockMongo,
    hello_reply,
    member,
    replset_status,
)
from tests.servers.s3 import S3Server, start_s3

HOST = "127.0.0.1"
MIB = 1024 * 1024
FRONTEND_URL = "https://threading-ui.example.com"

# --- MongoDB with authentication --------------------------------------------------


class AuthMongo:
    """mockupdb as a MongoDB with authentication on: SCRAM-SHA-256 logins
    for one user, `listDatabases` refused to clients without credentials
    (`auth=False` answers it to anyone, a server started without --auth),
    optionally a replica-set primary with two secondaries."""

    ITERATIONS = 4096

    def __init__(self, user: str, password: str, *, set_name: str | None = None):
        self.user = user
        self.set_name = set_name
        self.auth = True
        self.port = 0
        self.mongo: MockMongo | None = None
        self._salt = os.urandom(16)
        salted = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), self._salt, self.ITERATIONS
        )
        self._client_key = hmac.digest(salted, b"Client Key", "sha256")
        self._server_key = hmac.digest(salted, b"Server Key", "sha256")
        self._stored_key = hashlib.sha256(self._client_key).digest()
        self._conversations: dict[bytes, tuple[bytes, bytes, bytes]] = {}

    @property
    def running(self) -> bool:
        return self.mongo is not None

    def start(self) -> None:
        """Start (or restart, on the same port) the server."""
        mongo = MockMongo.start(self.port or None, set_name=self.set_name)
        self.port = mongo.port
        hello = {
            **hello_reply(mongo.port, set_name=self.set_name),
            "saslSupportedMechs": ["SCRAM-SHA-256"],
        }
        mongo.answer("ismaster", hello)
        mongo.answer("hello", hello)
        mongo.answer("saslStart", self._sasl_start)
        mongo.answer("saslContinue", self._sasl_continue)
        mongo.answer("listDatabases", self._list_databases)
        if self.set_name is not None:
            me = f"{HOST}:{mongo.port}"
            mongo.answer(
                "replSetGetStatus",
                replset_status(
                    [
                        member(0, me, "PRIMARY", is_self=True),
                        member(1, "mongo-2:27017", "SECONDARY", lag_seconds=1),
                        member(2, "mongo-3:27017", "SECONDARY", lag_seconds=2),
                    ],
                    self.set_name,
                ),
            )
        self.mongo = mongo

    def stop(self) -> None:
        if self.mongo is not None:
            self.mongo.stop()
            self.mongo = None

    def _list_databases(self, request: Any) -> bool:
        if self.auth:
            return bool(request.replies(UNAUTHORIZED))
        databases = [{"name": "admin", "sizeOnDisk": 40960.0, "empty": False}]
        return bool(request.replies(databases=databases, totalSize=40960.0))

    def _sasl_start(self, request: Any) -> bool:
        bare = bytes(request.doc["payload"])[3:]  # after the gs2 header "n,,"
        fields = _scram_fields(bare)
        nonce = fields[b"r"] + base64.b64encode(os.urandom(18))
        first = b"r=%s,s=%s,i=%d" % (
            nonce,
            base64.b64encode(self._salt),
            self.ITERATIONS,
        )
        self._conversations[nonce] = (bare, first, fields[b"n"])
        return bool(
            request.replies(conversationId=1, done=False, payload=Binary(first))
        )

    def _sasl_continue(self, request: Any) -> bool:
        final = bytes(request.doc["payload"])
        fields = _scram_fields(final)
        bare, first, user = self._conversations.pop(fields[b"r"], (b"", b"", b""))
        message = b",".join((bare, first, final.rsplit(b",p=", 1)[0]))
        signature = hmac.digest(self._stored_key, message, "sha256")
        proof = base64.b64decode(fields[b"p"])
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
        if user != self.user.encode() or not hmac.compare_digest(
            hashlib.sha256(client_key).digest(), self._stored_key
        ):
            return bool(request.replies(AUTHENTICATION_FAILED))
        verifier = base64.b64encode(hmac.digest(self._server_key, message, "sha256"))
        return bool(
            request.replies(
                conversationId=1, done=True, payload=Binary(b"v=" + verifier)
            )
        )


def _scram_fields(message: bytes) -> dict[bytes, bytes]:
    return dict(
        cast(tuple[bytes, bytes], tuple(part.split(b"=", 1)))
        for part in message.split(b",")
    )


# --- a Modbus device ---------------------------------------------------------------


class ModbusDevice:
    """pymodbus's simulator as one device (unit 1) holding *registers*
    (address -> words); `silent` makes it stop answering, `set()` changes
    a reading."""

    def __init__(self, registers: dict[int, list[int]]) -> None:
        self.registers = dict(registers)
        self.silent = False
        self._speak = asyncio.Event()
        self._server: ModbusTcpServer | None = None
        self.port = 0

    async def start(self) -> None:
        size = max(address + len(words) for address, words in self.registers.items())
        block = SimData(0, values=[0] * size, datatype=DataType.REGISTERS)
        device = SimDevice(id=1, simdata=[block], action=self._action)
        self._server = ModbusTcpServer(device, address=(HOST, 0))
        await self._server.serve_forever(background=True)
        listener = cast(asyncio.Server, self._server.transport)
        self.port = listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._speak.set()
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    def set(self, address: int, words: list[int]) -> None:
        self.registers[address] = words

    def quiet(self, silent: bool) -> None:
        self.silent = silent
        if silent:
            self._speak.clear()
        else:
            self._speak.set()

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: Any,
    ) -> None:
        if self.silent:
            # The request is read and never answered (until healed, when the
            # late answer goes to a connection the probe has closed).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._speak.wait(), 30)
        for first, words in self.registers.items():
            for index, word in enumerate(words):
                offset = first + index - start_address
                if 0 <= offset < len(current_registers):
                    current_registers[offset] = word


def float32(value: float) -> list[int]:
    """Two registers holding *value* as a big-endian (ABCD) float32."""
    return AsyncModbusTcpClient.convert_to_registers(
        value, AsyncModbusTcpClient.DATATYPE.FLOAT32
    )


def int16(value: int) -> list[int]:
    return [value & 0xFFFF]


# --- backups ------------------------------------------------------------------------


def backup_name(age_days: float) -> str:
    """`backup_YYYYMMDD_HHMMSS.archive`, as the backup script names them."""
    stamp = dt.datetime.now(dt.UTC) - dt.timedelta(days=age_days)
    return f"backup_{stamp:%Y%m%d_%H%M%S}.archive"


@dataclass
class BackupSet:
    """Nightly archives of *ages* (days) in *directory*, and the same in
    *bucket*/*prefix* of *s3* when given: the set a backup script keeps."""

    directory: Path
    ages: list[float]
    s3: S3Server | None = None
    bucket: str = ""
    prefix: str = ""
    content: Callable[[], bytes] = field(default=lambda: mongodump_gz(30_000))
    files: dict[str, tuple[bytes, float]] = field(default_factory=dict)

    def write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.s3 is not None:
            self.s3.create_bucket(self.bucket)
        for age in self.ages:
            self.add(backup_name(age), self.content(), age)

    def add(
        self, name: str, data: bytes, age_days: float, *, local: bool = True
    ) -> None:
        """Store one archive *age_days* old (locally and off-site)."""
        self.files[name] = (data, age_days)
        if local:
            path = self.directory / name
            path.write_bytes(data)
            stamp = dt.datetime.now(dt.UTC).timestamp() - age_days * DAY
            os.utime(path, (stamp, stamp))
        if self.s3 is not None:
            self.s3.put(self.bucket, self.prefix + name, data, age_days * DAY)

    def remove(self, name: str, *, local: bool = True, offsite: bool = True) -> None:
        if local:
            (self.directory / name).unlink(missing_ok=True)
        if offsite and self.s3 is not None:
            self.s3.client().delete_object(Bucket=self.bucket, Key=self.prefix + name)

    def newest(self) -> str:
        return min(self.files, key=lambda name: self.files[name][1])

    def by_age(self) -> list[str]:
        """Names, newest first."""
        return sorted(self.files, key=lambda name: self.files[name][1])


# --- the backend --------------------------------------------------------------------


@dataclass
class Backend:
    """What the Node backend reports, changed by the faults."""

    worker_running: bool = True
    heap_used: int = 40 * MIB
    pending: int = 2
    circuit_breaker: str = "CLOSED"
    health_error: bool = False
    database_up: Callable[[], bool] = lambda: True
    started: dt.datetime = field(
        default_factory=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(hours=6)
    )

    def status(self) -> dict[str, Any]:
        """`GET /api/threading/status`: routes/threading.js's reply."""
        now = dt.datetime.now(dt.UTC)
        running = self.worker_running
        uptime = int((now - self.started).total_seconds() * 1000)
        return {
            "success": True,
            "data": {
                "worker": {
                    "isRunning": running,
                    "threadId": 1 if running else None,
                    "startTime": _iso(self.started),
                    "uptime": uptime if running else 0,
                    "restartCount": 0,
                    "errorCount": 1,
                },
                "health": {
                    "isHealthy": running,
                    "lastCheck": _iso(now),
                    "consecutiveMissedChecks": 0 if running else 3,
                    "memoryUsage": {
                        "rss": self.heap_used + 52 * MIB,
                        "heapUsed": self.heap_used,
                        "heapTotal": self.heap_used + 20 * MIB,
                    },
                },
                "restart": {
                    "canRestart": True,
                    "currentAttempts": 0,
                    "maxAttempts": 5,
                    "circuitBreakerState": self.circuit_breaker,
                },
                "messages": {
                    "pendingCount": self.pending,
                    "totalSent": 1520,
                    "totalReceived": 1518,
                    "averageResponseTime": 3,
                },
                "errors": {
                    "totalErrors": 1,
                    "recentErrorRate": 0,
                    "mostCommonErrorType": None,
                },
                "timestamp": _iso(now),
            },
        }

    def health(self) -> tuple[int, dict[str, Any]]:
        """`GET /api/health`: the app and its MongoDB connection pool."""
        if self.health_error:
            return 500, {"status": "error", "message": "Internal Server Error"}
        up = self.database_up()
        return 200, {
            "status": "ok" if up else "degraded",
            "timestamp": _iso(dt.datetime.now(dt.UTC)),
            "uptime": 21_600,
            "database": {
                "status": "connected" if up else "disconnected",
                "name": "mcp",
                "pool": {"size": 10, "inUse": 2 if up else 0, "available": 8},
            },
        }

    def metrics(self) -> str:
        return (
            "# HELP mcp_worker_running Whether the MCP worker thread runs.\n"
            "# TYPE mcp_worker_running gauge\n"
            f"mcp_worker_running {int(self.worker_running)}\n"
            "# HELP mcp_pending_messages Messages waiting for the worker.\n"
            "# TYPE mcp_pending_messages gauge\n"
            f"mcp_pending_messages {self.pending}\n"
        )

    def app(self) -> web.Application:
        @web.middleware
        async def express(
            request: web.Request,
            handler: Callable[[web.Request], Any],
        ) -> web.StreamResponse:
            response: web.StreamResponse = await handler(request)
            # helmet's defaults, cors({origin: FRONTEND_URL}), express-rate-limit
            response.headers.update(
                {
                    "Content-Security-Policy": "default-src 'self';"
                    "base-uri 'self';frame-ancestors 'self';object-src 'none'",
                    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
                    "X-Content-Type-Options": "nosniff",
                    "X-Frame-Options": "SAMEORIGIN",
                    "Access-Control-Allow-Origin": FRONTEND_URL,
                    "Access-Control-Allow-Credentials": "true",
                    "Vary": "Origin",
                    "RateLimit-Policy": "100;w=900",
                    "RateLimit-Limit": "100",
                    "RateLimit-Remaining": "99",
                    "RateLimit-Reset": "900",
                }
            )
            return response

        async def status(request: web.Request) -> web.Response:
            return web.json_response(self.status())

        async def health(request: web.Request) -> web.Response:
            code, body = self.health()
            return web.json_response(body, status=code)

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(
                text=self.metrics(), content_type="text/plain", charset="utf-8"
            )

        app = web.Application(middlewares=[express])
        app.router.add_get("/api/threading/status", status)
        app.router.add_get("/api/health", health)
        app.router.add_get("/metrics", metrics)
        return app


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the estate ---------------------------------------------------------------------

VOLTAGE, FREQUENCY, TEMPERATURE = 0, 2, 4
FAULTS = (
    "worker_stopped",
    "worker_over_memory",
    "message_backlog",
    "circuit_breaker_open",
    "api_health_failing",
    "mongodb_down",
    "mongodb_without_auth",
    "mongodb_port_exposed",
    "modbus_device_silent",
    "register_out_of_range",
)


@dataclass
class McpEstate:
    """Everything the mcp-threading config watches, and its knobs."""

    root: Path
    backend: Backend
    mongo: AuthMongo
    meter: ModbusDevice
    backups: BackupSet
    s3: S3Server
    own_s3: bool
    runner: web.AppRunner
    ca: trustme.CA
    env: dict[str, str]
    closed_port: int
    _exposed: asyncio.Server | None = None

    @classmethod
    async def start(cls, root: Path, s3: S3Server | None = None) -> McpEstate:
        """Start the estate with its files under *root*; backups go to a
        bucket of *s3*, or of a moto server of its own."""
        root.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        ca_file = root / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        password = secrets.token_urlsafe(16)
        (root / "mongo-password").write_text(password + "\n", encoding="utf-8")

        mongo = AuthMongo("readiness", password, set_name="rs0")
        mongo.start()
        backend = Backend(database_up=lambda: mongo.running)

        runner = web.AppRunner(backend.app(), access_log=None)
        await runner.setup()
        internal = web.TCPSite(runner, HOST, 0)
        await internal.start()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf = ca.issue_cert(
            HOST,
            "threading.example.com",
            not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=90),
        )
        leaf.configure_cert(context)
        public = web.TCPSite(runner, HOST, 0, ssl_context=context)
        await public.start()

        meter = ModbusDevice(
            {
                VOLTAGE: float32(230.5),
                FREQUENCY: float32(50.01),
                TEMPERATURE: int16(315),
            }
        )
        await meter.start()

        own_s3 = s3 is None
        store = start_s3() if s3 is None else s3
        (root / "s3-secret").write_text(store.secret_access_key, encoding="utf-8")
        backups = BackupSet(
            root / "backups" / "mongodb",
            [0.1 + day for day in range(8)],
            s3=store,
            bucket="mcp-threading-backups",
            prefix="mongodb/",
        )
        backups.write()

        closed_port = free_port()
        env = {
            "MCP_PROBE_INTERVAL": "10s",
            "MCP_PROBE_TIMEOUT": "2s",
            "MCP_CERT_INTERVAL": "10s",
            "MCP_BACKUP_INTERVAL": "10s",
            "MCP_BACKUP_TIMEOUT": "5s",
            "MCP_ATTESTED_AT": f"{(dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).date()}",
            "MCP_BACKEND_URL": f"http://{HOST}:{site_port(internal)}",
            "MCP_PUBLIC_HOST": HOST,
            "MCP_PUBLIC_PORT": str(site_port(public)),
            "MCP_CA_FILE": str(ca_file),
            "MCP_MONGO_PUBLIC_PORT": str(closed_port),
            "MCP_MONGO_HOST": HOST,
            "MCP_MONGO_PORT": str(mongo.port),
            "MCP_MONGO_PASSWORD_FILE": str(root / "mongo-password"),
            "MCP_MODBUS_HOST": HOST,
            "MCP_MODBUS_PORT": str(meter.port),
            "MCP_BACKUP_DIR": str(backups.directory),
            "MCP_S3_ENDPOINT": store.endpoint,
            "MCP_S3_REGION": "us-east-1",
            "MCP_S3_ACCESS_KEY_ID": store.access_key_id,
            "MCP_S3_SECRET_FILE": str(root / "s3-secret"),
        }
        return cls(
            root=root,
            backend=backend,
            mongo=mongo,
            meter=meter,
            backups=backups,
            s3=store,
            own_s3=own_s3,
            runner=runner,
            ca=ca,
            env=env,
            closed_port=closed_port,
        )

    async def stop(self) -> None:
        await self.meter.stop()
        await self.runner.cleanup()
        await asyncio.to_thread(self.mongo.stop)
        if self.own_s3:
            self.s3.stop()

    @contextlib.asynccontextmanager
    async def fault(self, name: str) -> AsyncIterator[None]:
        """Inject the fault *name* (one of FAULTS), heal it on the way out."""
        await self._set(name, True)
        try:
            yield
        finally:
            await self._set(name, False)

    async def _set(self, name: str, on: bool) -> None:
        backend = self.backend
        if name == "worker_stopped":
            backend.worker_running = not on
        elif name == "worker_over_memory":
            backend.heap_used = (600 if on else 40) * MIB  # WORKER_MAX_MEMORY_MB 512
        elif name == "message_backlog":
            backend.pending = 250 if on else 2
        elif name == "circuit_breaker_open":
            backend.circuit_breaker = "OPEN" if on else "CLOSED"
        elif name == "api_health_failing":
            backend.health_error = on
        elif name == "mongodb_down":
            await asyncio.to_thread(self.mongo.stop if on else self.mongo.start)
        elif name == "mongodb_without_auth":
            self.mongo.auth = not on
        elif name == "mongodb_port_exposed":
            await self._expose(on)
        elif name == "modbus_device_silent":
            self.meter.quiet(on)
        elif name == "register_out_of_range":
            self.meter.set(VOLTAGE, float32(264.8 if on else 230.5))
        else:
            raise ValueError(f"no fault {name!r}; one of {', '.join(FAULTS)}")

    async def _expose(self, on: bool) -> None:
        """Something answering on the public MongoDB port (a firewall rule
        gone), or nothing again."""
        if on:

            async def accept(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter
            ) -> None:
                writer.close()

            self._exposed = await asyncio.start_server(accept, HOST, self.closed_port)
        elif self._exposed is not None:
            self._exposed.close()
            await self._exposed.wait_closed()
            self._exposed = None


def site_port(site: web.TCPSite) -> int:
    """The port *site* listens on (it was started on port 0)."""
    server = cast(asyncio.Server, site._server)
    port: int = server.sockets[0].getsockname()[1]
    return port
