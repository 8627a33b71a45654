"""A simulated estate of the Parallax control plane (checklist 003) on
127.0.0.1.

    estate = await ParallaxEstate.start(root)
    estate.env            # the PARALLAX_* variables config/examples/parallax.yml reads
    async with estate.fault("etcd_unhealthy"):
        ...               # judge it; the estate is healed on the way out
    await estate.stop()

What runs:

- the control plane API: `/health` (200, `{"status": "healthy" |
  "degraded", "services": ...}`), `/health/ready` (`{"ready": true,
  "dependencies": {"database": "up", "redis": "up", "etcd": "up",
  "patternEngine": "up"}}`, 503 with the dependency that is down marked
  `"down"`; database and Redis follow the real servers), `/health/live`,
  `/api/v1/patterns` (`{"patterns": [...], "count": N}` with helmet's
  headers, a CORS allow-list and express-rate-limit's headers),
  `/metrics`, and the WebSocket `/ws` answering `{"type": "ping"}` with
  `{"type": "pong"}`;
- PostgreSQL (the fixture cluster): the `parallax` role and database,
  Prisma's `_prisma_migrations`, and TimescaleDB as far as the probe sees
  it: the fixture has no TimescaleDB, so its `pg_extension` row and its
  `timescaledb_information.hypertables` view are stood in for (a catalogue
  row and a table of the same name and columns);
- Redis with a password, maxmemory, allkeys-lru and an RDB schedule;
- etcd's `/health` and its JSON gateway's `/v3/kv/range` (three agents
  registered under `/parallax/agents/`);
- Prometheus (`/-/ready`, `/api/v1/targets`), Grafana (`/api/health`),
  Jaeger (the v2 `healthcheckv2` `/status`, and the UI);
- the nightly `pg_dump -Fc parallax` of the last 8 nights;
- a public address where only the API's port is open: etcd's client port
  there is closed until the fault `etcd_port_exposed` opens it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from aiohttp import WSMsgType, web

from tests.servers.postgres import PostgresCluster, start_cluster
from tests.servers.redis import RedisServer

HOST = "127.0.0.1"
DAY = 86400.0
NIGHTS = [0.1 + night for night in range(8)]
AGENTS_PREFIX = "/parallax/agents/"
PATTERNS = [
    {"name": "consensus-builder", "version": "1.0.0", "minAgents": 3},
    {"name": "confidence-cascade", "version": "1.2.0", "minAgents": 2},
    {"name": "load-balancer", "version": "1.0.0", "minAgents": 1},
]
ALLOWED_ORIGIN = "https://parallax.example.com"
HELMET = {
    "Content-Security-Policy": "default-src 'self';frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Cross-Origin-Resource-Policy": "same-origin",
}
JAEGER_UI = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Jaeger UI</title></head>
<body><div id="jaeger-ui-root"></div></body></html>
"""
SCHEMA_SQL = """
CREATE TABLE _prisma_migrations (
    id varchar(36) PRIMARY KEY,
    checksum varchar(64) NOT NULL,
    finished_at timestamptz,
    migration_name varchar(255) NOT NULL,
    logs text,
    rolled_back_at timestamptz,
    started_at timestamptz NOT NULL DEFAULT now(),
    applied_steps_count integer NOT NULL DEFAULT 0
);
INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count)
    SELECT md5(name), md5(name || 'sum'), now() - interval '30 days', name, 1
    FROM unnest(ARRAY['20250101000000_init', '20250115000000_executions',
                      '20250201000000_confidence_metrics', '20250301000000_agents']) AS name;
CREATE TABLE "Pattern" (id text PRIMARY KEY, name text NOT NULL);
CREATE TABLE "Execution" (id text, "patternId" text, time timestamptz NOT NULL,
    status text, confidence float8, "durationMs" int);
CREATE TABLE "ExecutionEvent" (id text, "executionId" text, time timestamptz NOT NULL, type text);
CREATE TABLE "ConfidenceMetric" (id text, time timestamptz NOT NULL, value float8);
INSERT INTO "Pattern" VALUES ('p1', 'consensus-builder'), ('p2', 'confidence-cascade');
INSERT INTO "Execution"
    SELECT 'e' || g, 'p' || (1 + g % 2), now() - g * interval '1 minute', 'completed', 0.9, 40
    FROM generate_series(1, 5000) g;
"""
# What `CREATE EXTENSION timescaledb` leaves that the probe reads: its row
# in pg_extension and the information view of its hypertables.
TIMESCALEDB_SQL = """
INSERT INTO pg_extension (oid, extname, extowner, extnamespace, extrelocatable, extversion)
    VALUES (99001, 'timescaledb', 10, 'public'::regnamespace, false, '2.17.2');
CREATE SCHEMA timescaledb_information;
CREATE TABLE timescaledb_information.hypertables (
    hypertable_schema name, hypertable_name name, owner name,
    num_dimensions smallint, num_chunks bigint, compression_enabled boolean
);
GRANT USAGE ON SCHEMA timescaledb_information TO PUBLIC;
GRANT SELECT ON timescaledb_information.hypertables TO PUBLIC;
"""
HYPERTABLES_SQL = """
INSERT INTO timescaledb_information.hypertables VALUES
    ('public', 'Execution', 'parallax', 1, 12, false),
    ('public', 'ExecutionEvent', 'parallax', 1, 12, false),
    ('public', 'ConfidenceMetric', 'parallax', 1, 12, false);
"""
DROP_TIMESCALEDB_SQL = """
DELETE FROM pg_extension WHERE extname = 'timescaledb';
DROP SCHEMA timescaledb_information CASCADE;
"""
FAULTS = (
    "postgres_down",
    "timescaledb_missing",
    "hypertable_missing",
    "migration_pending",
    "redis_down",
    "etcd_unhealthy",
    "dependency_down",
    "api_slow",
    "websocket_refused",
    "etcd_port_exposed",
    "prometheus_not_ready",
    "prometheus_target_down",
    "grafana_not_ready",
    "jaeger_not_ready",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Undo = Callable[[], Awaitable[None]]


@dataclass
class Services:
    """What the HTTP services answer; the faults change it."""

    database_up: Callable[[], bool]
    redis_up: Callable[[], bool]
    etcd_healthy: bool = True
    pattern_engine_up: bool = True
    delay: float = 0.0
    websocket: bool = True
    prometheus_up: bool = True
    target_down: bool = False
    grafana_database: str = "ok"
    jaeger_state: str = "StatusOK"

    # --- the control plane -------------------------------------------------

    def dependencies(self) -> dict[str, str]:
        up = {
            "database": self.database_up(),
            "redis": self.redis_up(),
            "etcd": self.etcd_healthy,
            "patternEngine": self.pattern_engine_up,
        }
        return {name: "up" if ok else "down" for name, ok in up.items()}

    async def health(self, request: web.Request) -> web.Response:
        services = {
            "patternEngine": self.pattern_engine_up,
            "runtime": True,
            "registry": self.etcd_healthy,
        }
        status = "healthy" if all(services.values()) else "degraded"
        body = {
            "status": status,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            "services": {
                k: {"status": "up" if v else "down"} for k, v in services.items()
            },
            "version": "0.1.0",
        }
        return web.json_response(body)

    async def ready(self, request: web.Request) -> web.Response:
        dependencies = self.dependencies()
        ready = all(state == "up" for state in dependencies.values())
        return web.json_response(
            {"ready": ready, "dependencies": dependencies}, status=200 if ready else 503
        )

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def patterns(self, request: web.Request) -> web.Response:
        response = web.json_response({"patterns": PATTERNS, "count": len(PATTERNS)})
        response.headers.update(HELMET)
        # express-rate-limit with standardHeaders: true
        response.headers["RateLimit-Limit"] = "100"
        response.headers["RateLimit-Remaining"] = "99"
        response.headers["RateLimit-Reset"] = "60"
        origin = request.headers.get("Origin")
        if origin == ALLOWED_ORIGIN:  # cors({origin: [ALLOWED_ORIGIN]})
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    async def metrics(self, request: web.Request) -> web.Response:
        text = (
            "# HELP parallax_pattern_executions_total Pattern executions.\n"
            "# TYPE parallax_pattern_executions_total counter\n"
            'parallax_pattern_executions_total{pattern="consensus-builder",status="success"} 412\n'
            "# HELP parallax_agents_active Agents registered and healthy.\n"
            "# TYPE parallax_agents_active gauge\n"
            "parallax_agents_active 3\n"
        )
        return web.Response(text=text, content_type="text/plain")

    async def ws(self, request: web.Request) -> web.StreamResponse:
        if not self.websocket:
            # The upgrade refused, as an origin or auth check refuses it.
            return web.json_response(
                {"error": "WebSocket connections disabled"}, status=403
            )
        socket_ = web.WebSocketResponse()
        await socket_.prepare(request)
        async for message in socket_:
            if message.type is not WSMsgType.TEXT:
                continue
            if json.loads(message.data).get("type") == "ping":
                await socket_.send_str(json.dumps({"type": "pong"}))
        return socket_

    def control_plane(self) -> web.Application:
        @web.middleware
        async def latency(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.delay:
                await asyncio.sleep(self.delay)  # the fault: a slow API
            return await handler(request)

        app = web.Application(middlewares=[latency])
        app.router.add_get("/health", self.health)
        app.router.add_get("/health/ready", self.ready)
        app.router.add_get("/health/live", self.live)
        app.router.add_get("/api/v1/patterns", self.patterns)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/ws", self.ws)
        return app

    # --- etcd --------------------------------------------------------------------

    async def etcd_health(self, request: web.Request) -> web.Response:
        if self.etcd_healthy:
            return web.json_response({"health": "true", "reason": ""})
        return web.json_response(
            {"health": "false", "reason": "RAFT NO LEADER"}, status=503
        )

    async def etcd_range(self, request: web.Request) -> web.Response:
        """etcd's grpc-gateway: int64s as strings, zero values left out."""
        header = {
            "cluster_id": "14841639068965178418",
            "member_id": "10276657743932975437",
            "revision": "42",
            "raft_term": "2",
        }
        if not self.etcd_healthy:
            return web.json_response(
                {
                    "error": "etcdserver: no leader",
                    "code": 14,
                    "message": "etcdserver: no leader",
                },
                status=503,
            )
        query = await request.json()
        key = base64.b64decode(query.get("key", "")).decode()
        if key != AGENTS_PREFIX:
            return web.json_response({"header": header})
        return web.json_response({"header": header, "count": "3"})

    def etcd(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.etcd_health)
        app.router.add_post("/v3/kv/range", self.etcd_range)
        return app

    # --- monitoring ----------------------------------------------------------------

    async def prometheus_ready(self, request: web.Request) -> web.Response:
        if self.prometheus_up:
            return web.Response(text="Prometheus Server is Ready.\n")
        return web.Response(status=503, text="Service Unavailable")

    async def prometheus_targets(self, request: web.Request) -> web.Response:
        if not self.prometheus_up:
            return web.Response(status=503, text="Service Unavailable")
        targets = []
        for job, port in (
            ("parallax-control-plane", 8080),
            ("node", 9100),
            ("redis", 9121),
        ):
            down = self.target_down and job == "redis"
            targets.append(
                {
                    "labels": {"job": job, "instance": f"{job}:{port}"},
                    "scrapePool": job,
                    "scrapeUrl": f"http://{job}:{port}/metrics",
                    "lastError": "connection refused" if down else "",
                    "health": "down" if down else "up",
                }
            )
        return web.json_response(
            {
                "status": "success",
                "data": {"activeTargets": targets, "droppedTargets": []},
            }
        )

    async def grafana_health(self, request: web.Request) -> web.Response:
        body = {
            "commit": "8f3a4c2",
            "database": self.grafana_database,
            "version": "11.3.0",
        }
        return web.json_response(
            body, status=200 if self.grafana_database == "ok" else 503
        )

    async def jaeger_status(self, request: web.Request) -> web.Response:
        # Jaeger v2's healthcheckv2: 200 for recoverable errors too.
        healthy = self.jaeger_state == "StatusOK"
        body = {
            "start_time": "2026-11-28T08:00:00Z",
            "healthy": healthy,
            "status": self.jaeger_state,
            "components": {},
        }
        return web.json_response(body)

    async def jaeger_ui(self, request: web.Request) -> web.Response:
        return web.Response(text=JAEGER_UI, content_type="text/html")

    def prometheus(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/-/ready", self.prometheus_ready)
        app.router.add_get("/api/v1/targets", self.prometheus_targets)
        return app

    def grafana(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/health", self.grafana_health)
        return app

    def jaeger(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/status", self.jaeger_status)
        return app

    def jaeger_web(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.jaeger_ui)
        return app


@dataclass
class ParallaxEstate:
    """Everything config/examples/parallax.yml watches, and its knobs."""

    root: Path
    services: Services
    cluster: PostgresCluster
    redis: RedisServer
    runners: list[web.AppRunner]
    exposed_port: int  # etcd's client port on the public address
    env: dict[str, str]
    exposed: list[asyncio.Server] = field(default_factory=list)

    @classmethod
    async def start(cls, root: Path) -> ParallaxEstate:
        root.mkdir(parents=True, exist_ok=True)
        started: list[Callable[[], None]] = []
        try:
            return await cls._start(root, started)
        except BaseException:
            for stop in reversed(started):
                stop()
            raise

    @classmethod
    async def _start(
        cls, root: Path, started: list[Callable[[], None]]
    ) -> ParallaxEstate:
        cluster = await asyncio.to_thread(
            start_cluster, max_connections=10, superuser_reserved=2
        )
        started.append(cluster.destroy)
        pg_password = secrets.token_urlsafe(16)
        (root / "pg-password").write_text(pg_password + "\n", encoding="utf-8")
        await asyncio.to_thread(_set_up_database, cluster, pg_password)
        dump = await asyncio.to_thread(cluster.client, "pg_dump", "-Fc", "parallax")
        backups = root / "backups"
        backups.mkdir()
        for age in NIGHTS:
            _write_backup(backups, dump, age)

        redis = await asyncio.to_thread(
            RedisServer.start,
            *("--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"),
            *("--save", "3600 1"),
        )
        started.append(redis.destroy)
        redis_password = secrets.token_urlsafe(16)
        redis.set_password(redis_password)
        (root / "redis-password").write_text(redis_password + "\n", encoding="utf-8")

        services = Services(
            database_up=lambda: cluster.running,
            redis_up=lambda: redis.process is not None,
        )
        runners: list[web.AppRunner] = []

        async def serve(app: web.Application) -> int:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, HOST, 0)
            await site.start()
            server = cast(asyncio.Server, site._server)
            port: int = server.sockets[0].getsockname()[1]
            return port

        api_port = await serve(services.control_plane())
        etcd_port = await serve(services.etcd())
        prometheus_port = await serve(services.prometheus())
        grafana_port = await serve(services.grafana())
        jaeger_port = await serve(services.jaeger())
        jaeger_ui_port = await serve(services.jaeger_web())
        exposed_port = _free_port()

        env = {
            "PARALLAX_PROBE_INTERVAL": "10s",
            "PARALLAX_PROBE_TIMEOUT": "3s",
            "PARALLAX_BACKUP_INTERVAL": "10s",
            "PARALLAX_BACKUP_TIMEOUT": "5s",
            # The checklist's 100 ms, with room for a loaded test machine;
            # the api_slow fault answers 0.6 s late.
            "PARALLAX_LATENCY_P95_MAX": "500ms",
            "PARALLAX_ATTESTED_AT": f"{dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)}",
            "PARALLAX_API_URL": f"http://{HOST}:{api_port}",
            "PARALLAX_WS_URL": f"ws://{HOST}:{api_port}/ws",
            "PARALLAX_PG_HOST": HOST,
            "PARALLAX_PG_PORT": str(cluster.port),
            "PARALLAX_PG_PASSWORD_FILE": str(root / "pg-password"),
            "PARALLAX_BACKUP_DIR": str(backups),
            "PARALLAX_REDIS_URL": redis.url(),
            "PARALLAX_REDIS_PASSWORD_FILE": str(root / "redis-password"),
            "PARALLAX_ETCD_URL": f"http://{HOST}:{etcd_port}",
            "PARALLAX_PUBLIC_HOST": HOST,
            "PARALLAX_ETCD_PUBLIC_PORT": str(exposed_port),
            "PARALLAX_PUBLIC_PORT": str(api_port),
            "PARALLAX_PROMETHEUS_URL": f"http://{HOST}:{prometheus_port}",
            "PARALLAX_GRAFANA_URL": f"http://{HOST}:{grafana_port}",
            "PARALLAX_JAEGER_HEALTH_URL": f"http://{HOST}:{jaeger_port}",
            "PARALLAX_JAEGER_UI_URL": f"http://{HOST}:{jaeger_ui_port}",
        }
        return cls(
            root=root,
            services=services,
            cluster=cluster,
            redis=redis,
            runners=runners,
            exposed_port=exposed_port,
            env=env,
        )

    async def stop(self) -> None:
        for server in self.exposed:
            server.close()
            await server.wait_closed()
        for runner in self.runners:
            await runner.cleanup()
        self.redis.destroy()
        await asyncio.to_thread(self.cluster.destroy)

    # --- faults ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def fault(self, name: str) -> AsyncIterator[None]:
        """Inject the fault *name* (one of FAULTS), heal it on the way out."""
        undo = await self._inject(name)
        try:
            yield
        finally:
            await undo()

    async def _inject(self, name: str) -> Undo:
        services = self.services
        saved = dict(vars(services))

        async def restore() -> None:
            for key, value in saved.items():
                setattr(services, key, value)

        if name == "postgres_down":
            await asyncio.to_thread(self.cluster.stop)

            async def start() -> None:
                await asyncio.to_thread(self.cluster.start)

            return start
        if name in ("timescaledb_missing", "hypertable_missing", "migration_pending"):
            return await self._database_fault(name)
        if name == "redis_down":  # the container crashed
            self.redis.kill()

            async def restart() -> None:
                await asyncio.to_thread(self.redis.restart)

            return restart
        if name == "etcd_port_exposed":  # a firewall rule lost: 2379 is public
            server = await asyncio.start_server(_hang_up, HOST, self.exposed_port)
            self.exposed.append(server)

            async def close() -> None:
                self.exposed.remove(server)
                server.close()
                await server.wait_closed()

            return close
        if name == "etcd_unhealthy":  # the cluster lost its leader
            services.etcd_healthy = False
        elif name == "dependency_down":  # no patterns loaded
            services.pattern_engine_up = False
        elif name == "api_slow":
            services.delay = 0.6
        elif name == "websocket_refused":
            services.websocket = False
        elif name == "prometheus_not_ready":  # replaying its WAL
            services.prometheus_up = False
        elif name == "prometheus_target_down":
            services.target_down = True
        elif name == "grafana_not_ready":  # its database is failing
            services.grafana_database = "failing"
        elif name == "jaeger_not_ready":
            services.jaeger_state = "StatusRecoverableError"
        else:
            raise ValueError(f"no fault {name!r}; one of {', '.join(FAULTS)}")
        return restore

    async def _database_fault(self, name: str) -> Undo:
        sql, heal = {
            # DROP EXTENSION timescaledb takes its information views along.
            "timescaledb_missing": (DROP_TIMESCALEDB_SQL, _timescaledb_sql()),
            "hypertable_missing": (
                "DELETE FROM timescaledb_information.hypertables"
                " WHERE hypertable_name = 'ConfidenceMetric'",
                "INSERT INTO timescaledb_information.hypertables"
                " VALUES ('public', 'ConfidenceMetric', 'parallax', 1, 12, false)",
            ),
            # A deploy started a migration that did not finish.
            "migration_pending": (
                "INSERT INTO _prisma_migrations (id, checksum, migration_name)"
                " VALUES ('pending', 'sum', '20261201000000_agent_sessions')",
                "DELETE FROM _prisma_migrations WHERE id = 'pending'",
            ),
        }[name]
        await asyncio.to_thread(_psql, self.cluster, sql)

        async def undo() -> None:
            await asyncio.to_thread(_psql, self.cluster, heal)

        return undo


def _timescaledb_sql() -> str:
    """The stand-in for `CREATE EXTENSION timescaledb` and the hypertables
    Parallax's setup makes."""
    return TIMESCALEDB_SQL + HYPERTABLES_SQL


def _psql(cluster: PostgresCluster, sql: str) -> None:
    cluster.client("psql", "-v", "ON_ERROR_STOP=1", "-c", sql, "parallax")


def _set_up_database(cluster: PostgresCluster, password: str) -> None:
    cluster.client(
        "psql",
        *("-v", "ON_ERROR_STOP=1"),
        *("-c", f"CREATE ROLE parallax LOGIN PASSWORD '{password}'"),
        *("-c", "CREATE DATABASE parallax OWNER parallax"),
        "postgres",
    )
    cluster.client(
        "psql",
        *("-v", "ON_ERROR_STOP=1", "-c", "SET ROLE parallax", "-c", SCHEMA_SQL),
        "parallax",
    )
    _psql(cluster, _timescaledb_sql())


def _write_backup(directory: Path, dump: bytes, age_days: float) -> None:
    night = dt.datetime.now(dt.UTC) - dt.timedelta(days=age_days)
    path = directory / f"parallax_{night:%Y%m%d}.dump"
    path.write_bytes(dump)
    stamp = night.timestamp()
    os.utime(path, (stamp, stamp))


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port
