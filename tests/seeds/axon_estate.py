"""A simulated estate of Axon MVP (checklist 004) on 127.0.0.1.

    estate = await AxonEstate.start(tmp_path)
    estate.env            # the variables config/examples/axon.yml reads
    async with estate.fault("qdrant_not_ready"):
        ...               # judge it; the estate is healed on the way out
    estate.cache_traffic(hits=40, misses=160)   # clients of the cache
    await estate.stop()

What runs:

- the Node API (one aiohttp app): `GET /health`, `/health/ready` (every
  dependency by name, 503 when one is down), `/health/live`, `POST
  /api/v1/prompts/process` behind an `X-API-Key`; helmet's default headers,
  `cors({origin: FRONTEND_URL})` and express-rate-limit's `RateLimit-*`
  headers on every reply. Served plain on the pod's port (3000 in the
  cluster) and over TLS on the load balancer's port (a trustme
  certificate, TLS 1.2+), with a plain-http port that redirects to it;
- MongoDB: mockupdb behind a TLS port (a `requireTLS` server as a client
  sees it);
- Redis: a real redis-server (the fixture's), 2 GB maxmemory, allkeys-lru,
  AOF on;
- Qdrant: `/readyz` and the `contexts` collection's info, as Qdrant 1.x
  answers them;
- the LLM API: OpenAI's `GET /v1/models/{model}` behind a bearer key;
- backups: nightly `mongodump --archive --gzip` kept 30 days and nightly
  copies of Redis' own RDB snapshot (made by the server with SAVE), in
  directories; weekly Qdrant snapshots (tar archives) kept 4 weeks in an S3
  bucket (moto, tests/servers/s3.py).

Some faults are the config's own variables rather than the estate's: an
attestation that has expired is an `at` date too long ago.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import secrets
import ssl
import tarfile
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import trustme
from aiohttp import web

from tests.probes.test_backup import DAY, mongodump_gz
from tests.servers.mongodb import MockMongo, TlsFront
from tests.servers.redis import RedisServer
from tests.servers.s3 import S3Server, start_s3
from tests.servers.tls import server_context

HOST = "127.0.0.1"
FRONTEND_URL = "https://app.axon.example.com"
MODEL = "gpt-4"

# --- the API ------------------------------------------------------------------------

# helmet()'s defaults (helmet 7), as Express sends them.
HELMET = {
    "Content-Security-Policy": "default-src 'self';base-uri 'self';"
    "font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';"
    "img-src 'self' data:;object-src 'none';script-src 'self';"
    "script-src-attr 'none';style-src 'self' https: 'unsafe-inline';"
    "upgrade-insecure-requests",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Origin-Agent-Cluster": "?1",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-DNS-Prefetch-Control": "off",
    "X-Download-Options": "noopen",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Permitted-Cross-Domain-Policies": "none",
    "X-XSS-Protection": "0",
}


@dataclass
class Api:
    """What the Axon API reports, changed by the faults."""

    api_key: str
    # name -> whether the API's connection to it works
    dependencies: dict[str, Callable[[], bool]] = field(default_factory=dict)
    helmet: bool = True
    cors_origin: str = FRONTEND_URL
    health_delay: float = 0.0
    lost: str | None = None  # a dependency the API lost its connection to
    started: dt.datetime = field(
        default_factory=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    )

    def dependency_states(self) -> dict[str, str]:
        return {
            name: "up" if up() and name != self.lost else "down"
            for name, up in self.dependencies.items()
        }

    def app(self) -> web.Application:
        @web.middleware
        async def express(
            request: web.Request,
            handler: Callable[[web.Request], Any],
        ) -> web.StreamResponse:
            response: web.StreamResponse = await handler(request)
            headers: dict[str, str] = {
                # cors({origin: FRONTEND_URL, credentials: true})
                "Access-Control-Allow-Origin": self.cors_origin,
                "Access-Control-Allow-Credentials": "true",
                "Vary": "Origin",
                # rateLimit({windowMs: 15 * 60 * 1000, limit: 100,
                # standardHeaders: "draft-7"}): 100 requests / 15 minutes
                "RateLimit-Policy": "100;w=900",
                "RateLimit": "limit=100, remaining=99, reset=900",
            }
            if self.helmet:
                headers.update(HELMET)
            else:
                headers["X-Powered-By"] = "Express"
            response.headers.update(headers)
            return response

        async def health(request: web.Request) -> web.Response:
            if self.health_delay:
                await asyncio.sleep(self.health_delay)
            now = dt.datetime.now(dt.UTC)
            return web.json_response(
                {
                    "status": "ok",
                    "timestamp": _iso(now),
                    "uptime": int((now - self.started).total_seconds()),
                    "version": "1.0.0",
                }
            )

        async def ready(request: web.Request) -> web.Response:
            states = self.dependency_states()
            ok = all(state == "up" for state in states.values())
            return web.json_response(
                {
                    "status": "ready" if ok else "not_ready",
                    "timestamp": _iso(dt.datetime.now(dt.UTC)),
                    "dependencies": states,
                },
                status=200 if ok else 503,
            )

        async def live(request: web.Request) -> web.Response:
            return web.json_response({"status": "alive"})

        async def process(request: web.Request) -> web.Response:
            if request.headers.get("X-API-Key") != self.api_key:
                return web.json_response(
                    {
                        "success": False,
                        "error": {
                            "code": "UNAUTHORIZED",
                            "message": "Missing or invalid API key",
                        },
                    },
                    status=401,
                )
            payload = await request.json()
            return web.json_response(
                {
                    "success": True,
                    "data": {
                        "workspaceId": payload["workspaceId"],
                        "analysis": {"taskType": "general", "confidence": 0.91},
                        "contexts": [],
                        "response": "Hello from Axon",
                        "usage": {"promptTokens": 42, "completionTokens": 7},
                    },
                }
            )

        app = web.Application(middlewares=[express])
        app.router.add_get("/health", health)
        app.router.add_get("/health/ready", ready)
        app.router.add_get("/health/live", live)
        app.router.add_post("/api/v1/prompts/process", process)
        return app


def redirect_app(https_port: int) -> web.Application:
    """The load balancer's plain-http listener: everything to https."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(
            f"https://{request.url.host}:{https_port}{request.path_qs}"
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    return app


# --- Qdrant and the LLM API ---------------------------------------------------------


@dataclass
class Qdrant:
    """Qdrant's HTTP API (1.x): readiness and one collection's info."""

    collection: str = "contexts"
    ready: bool = True

    def collection_info(self) -> dict[str, Any]:
        return {
            "result": {
                "status": "green",
                "optimizer_status": "ok",
                "indexed_vectors_count": 48_210,
                "points_count": 48_333,
                "segments_count": 4,
                "config": {
                    "params": {
                        "vectors": {"size": 1536, "distance": "Cosine"},
                        "shard_number": 1,
                        "replication_factor": 1,
                        "write_consistency_factor": 1,
                        "on_disk_payload": True,
                    },
                    "hnsw_config": {
                        "m": 16,
                        "ef_construct": 100,
                        "full_scan_threshold": 10_000,
                        "max_indexing_threads": 0,
                        "on_disk": False,
                    },
                    "optimizer_config": {
                        "deleted_threshold": 0.2,
                        "vacuum_min_vector_number": 1000,
                        "default_segment_number": 0,
                        "indexing_threshold": 20_000,
                        "flush_interval_sec": 5,
                    },
                    "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
                    "quantization_config": None,
                },
                "payload_schema": {
                    "workspaceId": {"data_type": "keyword", "points": 48_333}
                },
            },
            "status": "ok",
            "time": 0.000041,
        }

    def app(self) -> web.Application:
        async def readyz(request: web.Request) -> web.Response:
            if self.ready:
                return web.Response(text="all shards are ready")
            return web.Response(text="some shards are not ready", status=503)

        async def healthz(request: web.Request) -> web.Response:
            return web.Response(text="healthz check passed")

        async def collection(request: web.Request) -> web.Response:
            if request.match_info["name"] != self.collection:
                return web.json_response(
                    {
                        "status": {
                            "error": f"Not found: Collection `{request.match_info['name']}`"
                            " doesn't exist!"
                        },
                        "time": 0.00001,
                    },
                    status=404,
                )
            return web.json_response(self.collection_info())

        app = web.Application()
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/collections/{name}", collection)
        return app


@dataclass
class LlmApi:
    """OpenAI's model endpoint: `GET /v1/models/{model}` with a bearer key."""

    api_key: str
    healthy: bool = True

    def app(self) -> web.Application:
        async def model(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return web.json_response(
                    {
                        "error": {
                            "message": "Incorrect API key provided.",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": "invalid_api_key",
                        }
                    },
                    status=401,
                )
            if not self.healthy:
                return web.json_response(
                    {
                        "error": {
                            "message": "The server is overloaded or not ready yet.",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    },
                    status=503,
                )
            return web.json_response(
                {
                    "id": request.match_info["model"],
                    "object": "model",
                    "created": 1_687_882_411,
                    "owned_by": "openai",
                }
            )

        app = web.Application()
        app.router.add_get("/v1/models/{model}", model)
        return app


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- backups ------------------------------------------------------------------------


def dated(prefix: str, age_days: float, suffix: str) -> str:
    stamp = dt.datetime.now(dt.UTC) - dt.timedelta(days=age_days)
    return f"{prefix}{stamp:%Y%m%d_%H%M%S}{suffix}"


def qdrant_snapshot() -> bytes:
    """What Qdrant writes for a collection snapshot: a tar of the shard's
    segments and the collection's config."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (
            ("config.json", b'{"params":{"vectors":{"size":1536}}}'),
            ("0/segments/a1b2.tar", os.urandom(6000)),
            ("0/segments/c3d4.tar", os.urandom(6000)),
            ("0/wal/open-1", os.urandom(2000)),
        ):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Backups:
    """The three backup sets and the files of each, by age (days)."""

    mongo_dir: Path
    redis_dir: Path
    s3: S3Server
    bucket: str
    rdb: bytes
    mongo: dict[float, Path] = field(default_factory=dict)
    qdrant: dict[float, str] = field(default_factory=dict)

    QDRANT_PREFIX = "qdrant/contexts/"
    DAILY: ClassVar[list[float]] = [0.1 + day for day in range(32)]  # pruned at 31 d
    WEEKLY: ClassVar[list[float]] = [1.0, 8.0, 15.0, 22.0]  # 4 weeks

    def write(self) -> None:
        self.mongo_dir.mkdir(parents=True, exist_ok=True)
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        for age in self.DAILY:
            self.add_mongo(age)
            _write(self.redis_dir / dated("dump_", age, ".rdb"), self.rdb, age)
        self.s3.create_bucket(self.bucket)
        for age in self.WEEKLY:
            self.add_qdrant(age)

    def add_mongo(self, age: float) -> None:
        path = self.mongo_dir / dated("axon_", age, ".archive.gz")
        _write(path, mongodump_gz(20_000), age)
        self.mongo[age] = path

    def remove_mongo(self, age: float) -> None:
        self.mongo.pop(age).unlink()

    def add_qdrant(self, age: float) -> None:
        stamp = dt.datetime.now(dt.UTC) - dt.timedelta(days=age)
        key = f"{self.QDRANT_PREFIX}contexts-4871209634-{stamp:%Y-%m-%d-%H-%M-%S}.snapshot"
        self.s3.put(self.bucket, key, qdrant_snapshot(), age * DAY)
        self.qdrant[age] = key

    def remove_qdrant(self, age: float) -> None:
        self.s3.client().delete_object(Bucket=self.bucket, Key=self.qdrant.pop(age))


def _write(path: Path, data: bytes, age_days: float) -> None:
    path.write_bytes(data)
    stamp = dt.datetime.now(dt.UTC).timestamp() - age_days * DAY
    os.utime(path, (stamp, stamp))


# --- the estate ---------------------------------------------------------------------

# Faults judged on one run of every probe (the daemon's first and the gate's).
FAULTS = (
    "mongodb_down",
    "redis_eviction_wrong",
    "redis_maxmemory_unset",
    "redis_maxmemory_too_large",
    "qdrant_not_ready",
    "llm_api_failing",
    "ready_dependency_down",
    "legacy_tls_accepted",
    "helmet_missing",
    "cors_wildcard",
    "mongo_backup_stale",
    "qdrant_backup_gap",
    "runbooks_expired",
    "coverage_expired",
    "restore_test_expired",
)
# Faults that need runs of a daemon to show (a window of runs).
DAEMON_FAULTS = ("health_slow",)


@dataclass
class AxonEstate:
    """Everything the axon config watches, and its knobs."""

    root: Path
    api: Api
    qdrant: Qdrant
    llm: LlmApi
    mongo: MockMongo
    mongo_front: TlsFront
    redis: RedisServer
    backups: Backups
    s3: S3Server
    public_tls: ssl.SSLContext
    runners: list[web.AppRunner]
    env: dict[str, str]
    mongo_running: bool = True

    @classmethod
    async def start(cls, root: Path) -> AxonEstate:
        """Start the estate with its files under *root*."""
        root.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        ca_file = root / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        api_key = secrets.token_urlsafe(24)
        openai_key = "sk-" + secrets.token_urlsafe(32)
        (root / "openai-api-key").write_text(openai_key + "\n", encoding="utf-8")

        redis = RedisServer.start(
            "--appendonly", "yes",
            "--maxmemory", "2gb",
            "--maxmemory-policy", "allkeys-lru",
        )  # fmt: skip
        runners: list[web.AppRunner] = []
        s3: S3Server | None = None
        mongo: MockMongo | None = None
        mongo_front: TlsFront | None = None
        try:
            rdb = await asyncio.to_thread(_rdb_snapshot, redis)
            mongo = await asyncio.to_thread(MockMongo.start)
            mongo_front = await TlsFront.start(mongo.port, server_context(ca))
            s3 = await asyncio.to_thread(start_s3)
            (root / "s3-secret").write_text(s3.secret_access_key, encoding="utf-8")

            qdrant = Qdrant()
            llm = LlmApi(openai_key)
            api = Api(api_key)
            public_tls = _public_context(ca)
            api_runner = await _runner(api.app(), runners)
            internal = await _site(api_runner)
            https = await _site(api_runner, public_tls)
            redirect = await _site(await _runner(redirect_app(https), runners))
            qdrant_port = await _site(await _runner(qdrant.app(), runners))
            llm_port = await _site(await _runner(llm.app(), runners))

            backups = Backups(
                root / "backups" / "mongodb",
                root / "backups" / "redis",
                s3,
                "axon-backups",
                rdb,
            )
            await asyncio.to_thread(backups.write)
        except BaseException:
            for runner in runners:
                await runner.cleanup()
            if mongo_front is not None:
                await mongo_front.stop()
            if mongo is not None:
                await asyncio.to_thread(mongo.stop)
            if s3 is not None:
                s3.stop()
            redis.destroy()
            raise

        attested = f"{_today() - dt.timedelta(days=3)}"
        env = {
            "AXON_PROBE_INTERVAL": "10s",
            "AXON_PROBE_TIMEOUT": "2s",
            "AXON_CERT_INTERVAL": "10s",
            "AXON_SMOKE_INTERVAL": "10s",
            "AXON_LLM_INTERVAL": "10s",
            "AXON_BACKUP_INTERVAL": "10s",
            "AXON_BACKUP_TIMEOUT": "5s",
            "AXON_LATENCY_WINDOW_AGE": "2s",
            # The checklist's 50 ms is judged by the daemon test alone. In
            # one run of every probe at once (`check`, and each judge()),
            # the S3 backup probe makes its aiobotocore client on the event
            # loop, which blocks it for 110-240 ms (an exporter bug), and
            # the in-process moto server's thread holds the GIL for more:
            # both land in whatever http request runs beside them.
            "AXON_HEALTH_P95_MAX": "1s",
            "AXON_ATTESTED_AT": attested,
            "AXON_COVERAGE_ATTESTED_AT": attested,
            "AXON_RUNBOOKS_ATTESTED_AT": attested,
            "AXON_RESTORE_TESTED_AT": attested,
            "AXON_API_URL": f"http://{HOST}:{internal}",
            "AXON_PUBLIC_HOST": HOST,
            "AXON_HTTPS_PORT": str(https),
            "AXON_HTTP_PORT": str(redirect),
            "AXON_CA_FILE": str(ca_file),
            "AXON_SMOKE_API_KEY": api_key,
            "AXON_MONGO_URI": f"mongodb://{HOST}:{mongo_front.port}/axon"
            "?directConnection=true",
            "AXON_MONGO_CA_FILE": str(ca_file),
            "REDIS_URL": redis.url(),
            "QDRANT_URL": f"http://{HOST}:{qdrant_port}",
            "OPENAI_BASE_URL": f"http://{HOST}:{llm_port}/v1",
            "OPENAI_MODEL": MODEL,
            "AXON_OPENAI_KEY_FILE": str(root / "openai-api-key"),
            "AXON_MONGO_BACKUP_DIR": str(backups.mongo_dir),
            "AXON_REDIS_BACKUP_DIR": str(backups.redis_dir),
            "AXON_S3_ENDPOINT": s3.endpoint,
            "AXON_S3_REGION": "us-east-1",
            "AXON_S3_BUCKET": backups.bucket,
            "AXON_S3_ACCESS_KEY_ID": s3.access_key_id,
            "AXON_S3_SECRET_FILE": str(root / "s3-secret"),
        }
        estate = cls(
            root=root,
            api=api,
            qdrant=qdrant,
            llm=llm,
            mongo=mongo,
            mongo_front=mongo_front,
            redis=redis,
            backups=backups,
            s3=s3,
            public_tls=public_tls,
            runners=runners,
            env=env,
        )
        api.dependencies.update(
            mongodb=lambda: estate.mongo_running,
            redis=lambda: (
                estate.redis.process is not None and estate.redis.process.poll() is None
            ),
            qdrant=lambda: qdrant.ready,
            llm=lambda: llm.healthy,
        )
        return estate

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        await self.mongo_front.stop()
        await asyncio.to_thread(self.mongo.stop)
        self.s3.stop()
        self.redis.destroy()

    def cache_traffic(self, hits: int, misses: int) -> None:
        """The API's cache lookups: *hits* that find a key, *misses* that
        do not (embeddings, prompt analyses and contexts not cached yet)."""
        self.redis.look_up(hits=hits, misses=misses)

    @contextlib.asynccontextmanager
    async def fault(self, name: str) -> AsyncIterator[None]:
        """Inject the fault *name* (of FAULTS or DAEMON_FAULTS), heal it on
        the way out."""
        await self._set(name, True)
        try:
            yield
        finally:
            await self._set(name, False)

    async def _set(self, name: str, on: bool) -> None:
        today = _today()
        if name == "mongodb_down":
            await self._mongo(not on)
        elif name == "redis_eviction_wrong":
            # Redis' own default: writes fail once memory is full.
            self._redis_config(
                "maxmemory-policy", "noeviction" if on else "allkeys-lru"
            )
        elif name == "redis_maxmemory_unset":
            self._redis_config("maxmemory", "0" if on else "2gb")
        elif name == "redis_maxmemory_too_large":
            self._redis_config("maxmemory", "4gb" if on else "2gb")
        elif name == "qdrant_not_ready":
            self.qdrant.ready = not on
        elif name == "llm_api_failing":
            self.llm.healthy = not on
        elif name == "ready_dependency_down":
            # The API lost its Redis connection (Redis itself is fine).
            self.api.lost = "redis" if on else None
        elif name == "legacy_tls_accepted":
            _allow_legacy_tls(self.public_tls, on)
        elif name == "helmet_missing":
            self.api.helmet = not on
        elif name == "cors_wildcard":
            self.api.cors_origin = "*" if on else FRONTEND_URL
        elif name == "mongo_backup_stale":
            # The last two nightly dumps did not run.
            for age in Backups.DAILY[:2]:
                if on:
                    self.backups.remove_mongo(age)
                else:
                    self.backups.add_mongo(age)
        elif name == "qdrant_backup_gap":
            # Last week's snapshot is missing: a gap of two weeks.
            if on:
                await asyncio.to_thread(self.backups.remove_qdrant, 8.0)
            else:
                await asyncio.to_thread(self.backups.add_qdrant, 8.0)
        elif name == "runbooks_expired":
            # Attested 200 days ago, valid for 180.
            self._attest("AXON_RUNBOOKS_ATTESTED_AT", today, 200, on)
        elif name == "coverage_expired":
            # Attested 45 days ago, valid for 30.
            self._attest("AXON_COVERAGE_ATTESTED_AT", today, 45, on)
        elif name == "restore_test_expired":
            # Attested 100 days ago, valid for 90.
            self._attest("AXON_RESTORE_TESTED_AT", today, 100, on)
        elif name == "health_slow":
            # 120 ms per /health, against the checklist's 50 ms.
            self.api.health_delay = 0.12 if on else 0.0
        else:
            known = ", ".join(FAULTS + DAEMON_FAULTS)
            raise ValueError(f"no fault {name!r}; one of {known}")

    def _redis_config(self, setting: str, value: str) -> None:
        self.redis.command("CONFIG", "SET", setting, value)

    def _attest(self, variable: str, today: dt.date, days_ago: int, on: bool) -> None:
        back = days_ago if on else 3
        os.environ[variable] = f"{today - dt.timedelta(days=back)}"

    async def _mongo(self, up: bool) -> None:
        if up:
            self.mongo = await asyncio.to_thread(MockMongo.start, self.mongo.port)
        else:
            await asyncio.to_thread(self.mongo.stop)
        self.mongo_running = up


def _rdb_snapshot(redis: RedisServer) -> bytes:
    """Redis' own RDB file, made by SAVE with a few keys in it."""
    with contextlib.closing(redis.admin()) as admin:
        admin.set("axon:config:version", "1")
        admin.hset("axon:workspace:demo", mapping={"path": "/srv/demo", "type": "repo"})
        admin.execute_command("SAVE")
    return (redis.base_dir / "dump.rdb").read_bytes()


def _public_context(ca: trustme.CA) -> ssl.SSLContext:
    """The load balancer's TLS: a certificate for 127.0.0.1, TLS 1.2+."""
    context = server_context(ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _allow_legacy_tls(context: ssl.SSLContext, on: bool) -> None:
    """Let TLS 1.0 and 1.1 in (an old `ssl_protocols` line), or not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if on:
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.set_ciphers("ALL:@SECLEVEL=0")
        else:
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers("DEFAULT")


async def _runner(app: web.Application, runners: list[web.AppRunner]) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    runners.append(runner)
    return runner


async def _site(runner: web.AppRunner, context: ssl.SSLContext | None = None) -> int:
    """Serve *runner* on a new port of 127.0.0.1 (with TLS by *context*)."""
    site = web.TCPSite(runner, HOST, 0, ssl_context=context)
    await site.start()
    server = cast(asyncio.Server, site._server)
    port: int = server.sockets[0].getsockname()[1]
    return port
