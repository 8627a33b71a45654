"""A simulated estate of Schedgen (checklist 002, NestJS) on 127.0.0.1.

    estate = await SchedgenEstate.start(root)
    estate.env            # the SCHEDGEN_* variables config/examples/schedgen.yml reads
    async with estate.fault("minio_down"):
        ...               # judge it; the estate is healed on the way out
    await estate.grow_backlog(50)   # 50 more PDF jobs waiting (healed by heal_queues)
    await estate.stop()

What runs:

- Traefik: TLS for yourdomain.com and api.yourdomain.com (one trustme
  certificate, 60 days left) in front of the backend's `/health` (NestJS
  Terminus: `{"status": "ok", "info": ..., "error": ..., "details":
  {"database": {"status": "up"}, ...}}`, 503 `{"status": "error"}` when an
  indicator is down, with @nestjs/throttler's `X-RateLimit-*` headers) and
  the frontend's `/`; its internal entry point with `/ping` and the
  dashboard behind basic auth;
- the backend on plain http: `/metrics` (prom-client text) and
  `/api/jobs/metrics`, `{"queues": {"pdf-processing": {"waiting": ...,
  "maxSize": 1000, "workers": 3}, ...}}`, its counts read from BullMQ's keys
  in the queue Redis as `Queue.getJobCounts()` does;
- PostgreSQL (the fixture cluster: `schedgen` role and database,
  statement_timeout 10 s, max_connections 10), Redis as the cache (2 GB,
  allkeys-lru, AOF) and BullMQ's own Redis (noeviction, AOF) with the
  queues' keys, MinIO's `/minio/health/live`;
- backups/: `pg_dump schedgen | gzip` of the fixture's own pg_dump (with
  its `\\restrict`/`\\unrestrict` lines) for each of the last 8 nights, and
  their encrypted copies (`openssl enc`) in an S3 bucket (moto).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import os
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import asyncpg
import redis.asyncio
import trustme
from aiohttp import web

from tests.helpers import eventually
from tests.servers.postgres import PostgresCluster, start_cluster
from tests.servers.redis import RedisServer
from tests.servers.s3 import S3Server, start_s3

HOST = "127.0.0.1"
DAY = 86400.0
# The queues of the jobs endpoint: name -> maxSize.
QUEUES = {"pdf-processing": 1000, "calendar-sync": 200}
NIGHTS = [0.1 + night for night in range(8)]  # 02:00 runs, find -mtime +7 -delete
FRONTEND_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Schedgen</title></head>
<body><div id="__next"></div></body></html>
"""
SCHEMA_SQL = """
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE schedules (
    id serial PRIMARY KEY,
    user_id int REFERENCES users(id),
    title text NOT NULL,
    created_at timestamptz DEFAULT now()
);
INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 200) g;
INSERT INTO schedules (user_id, title)
    SELECT 1 + g % 200, 'Semester ' || g FROM generate_series(1, 2000) g;
"""
FAULTS = (
    "pdf_workers_down",
    "one_pdf_worker_down",
    "queue_over_limit",
    "redis_maxmemory_unset",
    "redis_maxmemory_4gb",
    "redis_eviction_volatile",
    "redis_aof_off",
    "postgres_connections_high",
    "minio_down",
    "dashboard_open",
    "cert_expiring",
    "cert_expiring_soon",
    "backup_stale",
    "backup_retention_short",
    "backup_truncated",
    "backup_without_unrestrict",
    "offsite_upload_stopped",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Undo = Callable[[], Awaitable[None]]


@dataclass
class Services:
    """What the backend, Traefik and MinIO answer; the faults change it."""

    queue_redis: redis.asyncio.Redis
    database_up: Callable[[], bool]
    redis_up: Callable[[], bool]
    pdf_workers: int = 3
    calendar_workers: int = 1
    minio_up: bool = True
    dashboard_auth: bool = True

    def indicators(self) -> dict[str, bool]:
        """Terminus' health indicators of the backend."""
        return {
            "database": self.database_up(),
            "redis": self.redis_up(),
            "minio": self.minio_up,
            "pdf-worker": self.pdf_workers > 0,
        }

    async def health(self, request: web.Request) -> web.Response:
        """NestJS Terminus' HealthCheckService.check() reply."""
        info: dict[str, Any] = {}
        error: dict[str, Any] = {}
        for name, up in self.indicators().items():
            if up:
                info[name] = {"status": "up"}
            else:
                error[name] = {"status": "down", "message": f"{name} is not available"}
        body = {
            "status": "ok" if not error else "error",
            "info": info,
            "error": error,
            "details": {**info, **error},
        }
        return web.json_response(body, status=200 if not error else 503)

    async def frontend(self, request: web.Request) -> web.Response:
        return web.Response(text=FRONTEND_HTML, content_type="text/html")

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def dashboard(self, request: web.Request) -> web.Response:
        if self.dashboard_auth:
            return web.Response(
                status=401,
                text="401 Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="traefik"'},
            )
        return web.Response(text="<html><title>Traefik</title></html>")

    async def job_counts(self, queue: str) -> dict[str, int]:
        """`Queue.getJobCounts()` from BullMQ's keys."""
        prefix = f"bull:{queue}"
        pipe = self.queue_redis.pipeline(transaction=False)
        pipe.llen(f"{prefix}:wait")
        pipe.zcard(f"{prefix}:prioritized")
        pipe.llen(f"{prefix}:active")
        pipe.zcard(f"{prefix}:delayed")
        pipe.zcard(f"{prefix}:failed")
        pipe.zcard(f"{prefix}:completed")
        wait, prioritized, active, delayed, failed, completed = await pipe.execute()
        return {
            "waiting": int(wait) + int(prioritized),
            "active": int(active),
            "delayed": int(delayed),
            "failed": int(failed),
            "completed": int(completed),
        }

    async def jobs_metrics(self, request: web.Request) -> web.Response:
        """The checklist's `/api/jobs/metrics`: one entry per queue."""
        workers = {
            "pdf-processing": self.pdf_workers,
            "calendar-sync": self.calendar_workers,
        }
        queues = {
            name: {
                **await self.job_counts(name),
                "maxSize": max_size,
                "workers": workers[name],
            }
            for name, max_size in QUEUES.items()
        }
        return web.json_response(
            {"queues": queues, "timestamp": dt.datetime.now(dt.UTC).isoformat()}
        )

    async def metrics(self, request: web.Request) -> web.Response:
        """@willsoto/nestjs-prometheus: prom-client's text with the custom
        job metrics."""
        lines = [
            "# HELP schedgen_jobs_processed_total Jobs processed by queue.",
            "# TYPE schedgen_jobs_processed_total counter",
        ]
        for name in QUEUES:
            counts = await self.job_counts(name)
            lines.append(
                f'schedgen_jobs_processed_total{{queue="{name}"}} {counts["completed"]}'
            )
        lines += [
            "# HELP schedgen_job_duration_seconds Job processing time.",
            "# TYPE schedgen_job_duration_seconds histogram",
            'schedgen_job_duration_seconds_bucket{queue="pdf-processing",le="+Inf"} 310',
            'schedgen_job_duration_seconds_sum{queue="pdf-processing"} 1932.5',
            'schedgen_job_duration_seconds_count{queue="pdf-processing"} 310',
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def minio_live(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.minio_up else 503)

    def traefik_https(self) -> web.Application:
        """Traefik's websecure entry point: the API's /health and the frontend."""

        @web.middleware
        async def throttler(
            request: web.Request, handler: Handler
        ) -> web.StreamResponse:
            response = await handler(request)
            if request.path.startswith("/health"):
                response.headers["X-RateLimit-Limit"] = "100"
                response.headers["X-RateLimit-Remaining"] = "99"
                response.headers["X-RateLimit-Reset"] = "60"
            return response

        app = web.Application(middlewares=[throttler])
        app.router.add_get("/health", self.health)
        app.router.add_get("/", self.frontend)
        return app

    def traefik_internal(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ping", self.ping)
        app.router.add_get("/dashboard/", self.dashboard)
        return app

    def backend(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/api/jobs/metrics", self.jobs_metrics)
        return app

    def minio(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/minio/health/live", self.minio_live)
        return app


@dataclass
class Backups:
    """The backup script's output: `schedgen_YYYYmmdd_020000.sql.gz` in a
    directory, and each encrypted (`.sql.gz.enc`) in a bucket prefix."""

    directory: Path
    s3: S3Server
    bucket: str
    dump: bytes  # pg_dump's plain output, \\unrestrict line included
    prefix: str = "postgres/"
    nights: dict[str, float] = field(default_factory=dict)  # name -> age in days

    def write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.s3.create_bucket(self.bucket)
        for age in NIGHTS:
            self.add(age)

    @staticmethod
    def name(age_days: float) -> str:
        night = dt.datetime.now(dt.UTC) - dt.timedelta(days=age_days)
        return f"schedgen_{night:%Y%m%d}_020000.sql.gz"

    def add(
        self,
        age_days: float,
        content: bytes | None = None,
        *,
        local: bool = True,
        offsite: bool = True,
    ) -> str:
        name = self.name(age_days)
        self.nights[name] = age_days
        data = gzip.compress(self.dump) if content is None else content
        if local:
            path = self.directory / name
            path.write_bytes(data)
            stamp = dt.datetime.now(dt.UTC).timestamp() - age_days * DAY
            os.utime(path, (stamp, stamp))
        if offsite:
            # openssl enc -aes-256-cbc -pbkdf2: "Salted__", the salt, ciphertext.
            encrypted = b"Salted__" + secrets.token_bytes(8 + len(data) + 16)
            self.s3.put(
                self.bucket, f"{self.prefix}{name}.enc", encrypted, age_days * DAY
            )
        return name

    def remove(
        self, age_days: float, *, local: bool = True, offsite: bool = True
    ) -> None:
        name = self.name(age_days)
        if local:
            (self.directory / name).unlink(missing_ok=True)
        if offsite:
            self.s3.client().delete_object(
                Bucket=self.bucket, Key=f"{self.prefix}{name}.enc"
            )

    def reset(self) -> None:
        """Back to eight good nights, here and off-site."""
        for path in self.directory.glob("schedgen_*"):
            path.unlink()
        for age in NIGHTS:
            self.add(age)


@dataclass
class SchedgenEstate:
    """Everything config/examples/schedgen.yml watches, and its knobs."""

    root: Path
    services: Services
    cluster: PostgresCluster
    cache: RedisServer
    queue: RedisServer
    s3: S3Server
    backups: Backups
    ca: trustme.CA
    tls: ssl.SSLContext
    runners: list[web.AppRunner]
    env: dict[str, str]
    held: list[Any] = field(default_factory=list)  # asyncpg connections

    @classmethod
    async def start(cls, root: Path) -> SchedgenEstate:
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
    ) -> SchedgenEstate:
        ca = trustme.CA()
        ca_file = root / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))

        cluster = await asyncio.to_thread(
            start_cluster, max_connections=10, superuser_reserved=2
        )
        started.append(cluster.destroy)
        pg_password = secrets.token_urlsafe(16)
        (root / "pg-password").write_text(pg_password + "\n", encoding="utf-8")
        await asyncio.to_thread(_set_up_database, cluster, pg_password)
        dump = await asyncio.to_thread(cluster.client, "pg_dump", "schedgen")

        cache = await asyncio.to_thread(
            RedisServer.start,
            *("--maxmemory", "2gb", "--maxmemory-policy", "allkeys-lru"),
            *("--appendonly", "yes"),
        )
        started.append(cache.destroy)
        queue = await asyncio.to_thread(
            RedisServer.start,
            *("--maxmemory", "2gb", "--maxmemory-policy", "noeviction"),
            *("--appendonly", "yes"),
        )
        started.append(queue.destroy)
        queue_client = redis.asyncio.Redis(
            host=HOST, port=queue.port, protocol=2, decode_responses=True
        )
        await _seed_queues(queue_client)

        s3 = await asyncio.to_thread(start_s3)
        started.append(s3.stop)
        (root / "s3-secret").write_text(s3.secret_access_key, encoding="utf-8")
        backups = Backups(root / "backups", s3, "schedgen-backups", dump)
        await asyncio.to_thread(backups.write)

        services = Services(
            queue_redis=queue_client,
            database_up=lambda: cluster.running,
            redis_up=lambda: cache.process is not None,
        )
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _certificate(ca, days=60).configure_cert(tls)
        runners: list[web.AppRunner] = []

        async def serve(app: web.Application, context: ssl.SSLContext | None) -> int:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, HOST, 0, ssl_context=context)
            await site.start()
            server = cast(asyncio.Server, site._server)
            port: int = server.sockets[0].getsockname()[1]
            return port

        https_port = await serve(services.traefik_https(), tls)
        traefik_port = await serve(services.traefik_internal(), None)
        backend_port = await serve(services.backend(), None)
        minio_port = await serve(services.minio(), None)

        env = {
            "SCHEDGEN_PROBE_INTERVAL": "10s",
            "SCHEDGEN_PROBE_TIMEOUT": "3s",
            "SCHEDGEN_CERT_INTERVAL": "10s",
            "SCHEDGEN_BACKUP_INTERVAL": "10s",
            "SCHEDGEN_BACKUP_TIMEOUT": "5s",
            "SCHEDGEN_ATTESTED_AT": f"{dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)}",
            "SCHEDGEN_CA_FILE": str(ca_file),
            "SCHEDGEN_API_HOST": f"{HOST}:{https_port}",
            "SCHEDGEN_WEB_HOST": f"{HOST}:{https_port}",
            "SCHEDGEN_TLS_HOST": HOST,
            "SCHEDGEN_TLS_PORT": str(https_port),
            "SCHEDGEN_TRAEFIK_URL": f"http://{HOST}:{traefik_port}",
            "SCHEDGEN_BACKEND_URL": f"http://{HOST}:{backend_port}",
            "SCHEDGEN_PG_HOST": HOST,
            "SCHEDGEN_PG_PORT": str(cluster.port),
            "SCHEDGEN_PG_PASSWORD_FILE": str(root / "pg-password"),
            "SCHEDGEN_REDIS_URL": cache.url(),
            "SCHEDGEN_QUEUE_REDIS_URL": queue.url(),
            "SCHEDGEN_MINIO_URL": f"http://{HOST}:{minio_port}",
            "SCHEDGEN_BACKUP_DIR": str(backups.directory),
            "SCHEDGEN_OFFSITE_S3_ENDPOINT": s3.endpoint,
            "SCHEDGEN_OFFSITE_BUCKET": backups.bucket,
            "SCHEDGEN_OFFSITE_ACCESS_KEY_ID": s3.access_key_id,
            "SCHEDGEN_OFFSITE_SECRET_FILE": str(root / "s3-secret"),
        }
        return cls(
            root=root,
            services=services,
            cluster=cluster,
            cache=cache,
            queue=queue,
            s3=s3,
            backups=backups,
            ca=ca,
            tls=tls,
            runners=runners,
            env=env,
        )

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        for connection in self.held:
            await connection.close()
        await self.services.queue_redis.aclose()
        self.s3.stop()
        self.queue.destroy()
        self.cache.destroy()
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

        if name == "pdf_workers_down":  # the pdf-worker service crashed
            services.pdf_workers = 0
        elif name == "one_pdf_worker_down":  # one of the three replicas died
            services.pdf_workers = 2
        elif name == "minio_down":
            services.minio_up = False
        elif name == "dashboard_open":  # api.insecure=true, no basic auth
            services.dashboard_auth = False
        elif name == "queue_over_limit":  # 1001 PDF jobs waiting, maxSize 1000
            await self.grow_backlog(1001 - await self._waiting("pdf-processing"))
            return self.heal_queues
        elif name.startswith("redis_"):
            return self._redis_fault(name)
        elif name == "postgres_connections_high":
            return await self._hold_connections(6)
        elif name.startswith("cert_"):
            days = {"cert_expiring": 20, "cert_expiring_soon": 3}[name]
            _certificate(self.ca, days=days).configure_cert(self.tls)

            async def renew() -> None:
                _certificate(self.ca, days=60).configure_cert(self.tls)

            return renew
        elif name.startswith(("backup_", "offsite_")):
            return await asyncio.to_thread(self._backup_fault, name)
        else:
            raise ValueError(f"no fault {name!r}; one of {', '.join(FAULTS)}")
        return restore

    def _redis_fault(self, name: str) -> Undo:
        setting, value, good = {
            "redis_maxmemory_unset": ("maxmemory", "0", "2gb"),
            "redis_maxmemory_4gb": ("maxmemory", "4gb", "2gb"),
            "redis_eviction_volatile": (
                "maxmemory-policy",
                "volatile-lru",
                "allkeys-lru",
            ),
            "redis_aof_off": ("appendonly", "no", "yes"),
        }[name]
        self.cache.command("CONFIG", "SET", setting, value)

        async def heal() -> None:
            self.cache.command("CONFIG", "SET", setting, good)
            if setting == "appendonly":  # turning AOF on rewrites the file first
                await eventually(self._aof_settled)

        return heal

    def _aof_settled(self) -> bool:
        info = self.cache.command("INFO", "persistence")
        return bool(info["aof_rewrite_in_progress"] == 0)

    async def _hold_connections(self, count: int) -> Undo:
        """The application's pool, leaking: *count* connections of the
        `schedgen` role held open."""
        password = (self.root / "pg-password").read_text(encoding="utf-8").strip()
        dsn = self.cluster.dsn("schedgen", password, "schedgen")
        held = [await asyncpg.connect(dsn, timeout=10) for _ in range(count)]
        self.held.extend(held)

        async def release() -> None:
            for connection in held:
                await connection.close()
                self.held.remove(connection)

        return release

    def _backup_fault(self, name: str) -> Undo:
        backups = self.backups
        newest = NIGHTS[0]
        if name == "backup_stale":
            # Last night's run failed: nothing new here or off-site; the
            # newest is 1.1 days (26.4 h) old.
            backups.remove(newest)
        elif name == "backup_retention_short":
            # The prune ran with RETENTION_DAYS=3: find -mtime +3 -delete.
            for age in NIGHTS[4:]:
                backups.remove(age, offsite=False)
        elif name == "backup_truncated":
            # The disk filled during the dump: the gzip stream is cut short.
            whole = gzip.compress(backups.dump)
            backups.add(newest, whole[:-64], offsite=False)
        elif name == "backup_without_unrestrict":
            # pg_dump killed after its footer: the \\unrestrict line is missing.
            cut = backups.dump[: backups.dump.rindex(b"\\unrestrict ")]
            backups.add(newest, gzip.compress(cut), offsite=False)
        elif name == "offsite_upload_stopped":
            # The upload step failed last night; the local dump is there.
            backups.remove(newest, local=False)
        else:
            raise ValueError(f"no fault {name!r}; one of {', '.join(FAULTS)}")

        async def heal() -> None:
            await asyncio.to_thread(backups.reset)

        return heal

    # --- the queue ---------------------------------------------------------------------

    async def _waiting(self, queue: str) -> int:
        return (await self.services.job_counts(queue))["waiting"]

    async def grow_backlog(self, jobs: int, queue: str = "pdf-processing") -> None:
        """*jobs* more jobs waiting in *queue* (BullMQ LPUSHes job ids)."""
        key = f"bull:{queue}:wait"
        start = await self.services.queue_redis.llen(key)
        ids = [str(1_000_000 + start + index) for index in range(jobs)]
        if ids:
            await self.services.queue_redis.lpush(key, *ids)

    async def heal_queues(self) -> None:
        """Back to the healthy counts of `_seed_queues`."""
        await _seed_queues(self.services.queue_redis)


def _set_up_database(cluster: PostgresCluster, password: str) -> None:
    """The application's role and database, its 10 s query timeout, a schema
    with rows for pg_dump."""
    cluster.client(
        "psql",
        *("-v", "ON_ERROR_STOP=1"),
        *("-c", f"CREATE ROLE schedgen LOGIN PASSWORD '{password}'"),
        *("-c", "CREATE DATABASE schedgen OWNER schedgen"),
        *("-c", "ALTER ROLE schedgen SET statement_timeout = '10s'"),
        "postgres",
    )
    cluster.client(
        "psql",
        *("-v", "ON_ERROR_STOP=1", "-c", "SET ROLE schedgen", "-c", SCHEMA_SQL),
        "schedgen",
    )


async def _seed_queues(client: redis.asyncio.Redis) -> None:
    """BullMQ's keys, healthy: a few PDF jobs waiting and running, some done."""
    await client.flushall()
    pipe = client.pipeline(transaction=False)
    pipe.lpush("bull:pdf-processing:wait", *[str(n) for n in range(401, 405)])
    pipe.lpush("bull:pdf-processing:active", "399", "400")
    pipe.zadd("bull:pdf-processing:failed", {str(n): n for n in (12, 57, 230)})
    pipe.zadd("bull:pdf-processing:completed", {str(n): n for n in range(1, 311)})
    pipe.zadd("bull:calendar-sync:delayed", {"81": 1})
    pipe.zadd("bull:calendar-sync:completed", {str(n): n for n in range(1, 81)})
    for queue in QUEUES:
        pipe.hset(f"bull:{queue}:meta", mapping={"opts.maxLenEvents": "10000"})
    await pipe.execute()


def _certificate(ca: trustme.CA, days: int) -> trustme.LeafCert:
    """Traefik's ACME certificate for both hosts, *days* left."""
    return ca.issue_cert(
        "yourdomain.com",
        "api.yourdomain.com",
        HOST,
        not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=days),
    )
