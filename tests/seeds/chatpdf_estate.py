"""A simulated estate of the ChatPDF-style FastAPI app (checklist 001) on
127.0.0.1.

    estate = await ChatpdfEstate.start(tmp_path)
    estate.env            # the CHATPDF_* variables config/examples/chatpdf.yml reads
    async with estate.fault("cors_wildcard"):
        ...               # judge it; the estate is healed on the way out
    await estate.stop()

What runs:

- nginx terminating TLS (one trustme certificate for yourdomain.com,
  api.yourdomain.com and 127.0.0.1, 90 days left) with the checklist's
  security-header block, in front of the FastAPI backend
  (`/health` -> `{"status": "healthy", ...}`, CORSMiddleware for
  ALLOWED_ORIGINS) and of the frontend (`index.html`); the backend's plain
  http port answers HTTPSRedirectMiddleware's 307;
- MongoDB (mockupdb) started with `--auth` (SCRAM-SHA-256 logins, listDatabases
  refused without credentials) behind a TLS port;
- backup-mongodb.sh's output: `backup_YYYYMMDD_HHMMSS.archive`
  (`mongodump --archive --gzip`) for each of the last 31 nights in a
  directory, and the same under s3://your-bucket/backups/mongodb/ (moto).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

from tests.seeds.mcp_threading_estate import (
    HOST,
    AuthMongo,
    BackupSet,
    site_port,
)
from tests.servers.mongodb import TlsFront
from tests.servers.s3 import S3Server, start_s3
from tests.servers.tls import server_context

ALLOWED_ORIGIN = "https://yourdomain.com"
# The checklist's nginx block.
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "X-XSS-Protection": "1; mode=block",
    "Content-Security-Policy": "default-src 'self'",
}
INDEX_HTML = """<!doctype html>
<html lang="en">
  <head><meta charset="UTF-8"><title>ChatPDF</title>
  <script type="module" crossorigin src="/assets/index-4f2a9c.js"></script></head>
  <body><div id="root"></div></body>
</html>
"""
FAULTS = (
    "backend_unhealthy",
    "backend_degraded",
    "frontend_headers_dropped",
    "cors_wildcard",
    "https_redirect_missing",
    "cert_expiring",
    "mongodb_without_auth",
    "backup_stale",
    "backup_retention_short",
    "backup_truncated",
    "backup_dump_cut",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Backend:
    """What the FastAPI backend and nginx do, changed by the faults."""

    status: str = "healthy"
    code: int = 200
    cors_origins: tuple[str, ...] = (ALLOWED_ORIGIN,)
    redirect: bool = True
    frontend_headers: bool = True

    def api(self) -> web.Application:
        """api.yourdomain.com: nginx's headers over the FastAPI app."""

        @web.middleware
        async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
            # Starlette's CORSMiddleware: `*` for anyone, else only a listed
            # origin is echoed.
            response = await handler(request)
            origin = request.headers.get("Origin")
            if "*" in self.cors_origins:
                response.headers["Access-Control-Allow-Origin"] = "*"
            elif origin in self.cors_origins:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Allow-Credentials"] = "true"
                response.headers["Vary"] = "Origin"
            return response

        @web.middleware
        async def nginx(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            response.headers.update(SECURITY_HEADERS)
            response.headers["Server"] = "nginx"
            return response

        async def health(request: web.Request) -> web.Response:
            body = {
                "status": self.status,
                "version": "1.0.0",
                "database": "connected" if self.status == "healthy" else "error",
                "openai": "configured",
            }
            return web.json_response(body, status=self.code)

        app = web.Application(middlewares=[nginx, cors])
        app.router.add_get("/health", health)
        return app

    def frontend(self) -> web.Application:
        """yourdomain.com: nginx serving the built SPA."""

        @web.middleware
        async def nginx(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            if self.frontend_headers:
                response.headers.update(SECURITY_HEADERS)
            response.headers["Server"] = "nginx"
            return response

        async def index(request: web.Request) -> web.Response:
            return web.Response(text=INDEX_HTML, content_type="text/html")

        app = web.Application(middlewares=[nginx])
        app.router.add_get("/", index)
        return app

    def plain(self, https_port: int) -> web.Application:
        """The backend's plain http port (HTTPSRedirectMiddleware)."""

        async def anything(request: web.Request) -> web.StreamResponse:
            if not self.redirect:
                return web.json_response({"status": self.status})
            location = f"https://api.yourdomain.com:{https_port}{request.path_qs}"
            return web.Response(status=307, headers={"Location": location})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", anything)
        return app


@dataclass
class ChatpdfEstate:
    """Everything the chatpdf config watches, and its knobs."""

    root: Path
    backend: Backend
    mongo: AuthMongo
    mongo_front: TlsFront
    backups: BackupSet
    s3: S3Server
    own_s3: bool
    runners: list[web.AppRunner]
    ca: trustme.CA
    tls: ssl.SSLContext
    env: dict[str, str]

    @classmethod
    async def start(cls, root: Path, s3: S3Server | None = None) -> ChatpdfEstate:
        """Start the estate with its files under *root*; backups go to a
        bucket of *s3*, or of a moto server of its own."""
        root.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        ca_file = root / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        password = secrets.token_urlsafe(16)
        (root / "mongo-password").write_text(password + "\n", encoding="utf-8")

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _certificate(ca, days=90).configure_cert(tls)
        backend = Backend()
        runners: list[web.AppRunner] = []

        async def serve(app: web.Application, context: ssl.SSLContext | None) -> int:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, HOST, 0, ssl_context=context)
            await site.start()
            return site_port(site)

        api_port = await serve(backend.api(), tls)
        frontend_port = await serve(backend.frontend(), tls)
        http_port = await serve(backend.plain(api_port), None)

        mongo = AuthMongo("readiness", password)
        mongo.start()
        front = await TlsFront.start(mongo.port, server_context(ca))

        own_s3 = s3 is None
        store = start_s3() if s3 is None else s3
        (root / "s3-secret").write_text(store.secret_access_key, encoding="utf-8")
        backups = BackupSet(
            root / "backups" / "mongodb",
            [0.1 + day for day in range(31)],  # find -mtime +30 -delete
            s3=store,
            bucket="your-bucket",
            prefix="backups/mongodb/",
        )
        backups.write()

        env = {
            "CHATPDF_PROBE_INTERVAL": "10s",
            "CHATPDF_PROBE_TIMEOUT": "3s",
            "CHATPDF_CERT_INTERVAL": "10s",
            "CHATPDF_BACKUP_INTERVAL": "10s",
            "CHATPDF_BACKUP_TIMEOUT": "5s",
            "CHATPDF_ATTESTED_AT": f"{(dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).date()}",
            "CHATPDF_API_HOST": HOST,
            "CHATPDF_API_PORT": str(api_port),
            "CHATPDF_API_HTTP_PORT": str(http_port),
            "CHATPDF_FRONTEND_HOST": HOST,
            "CHATPDF_FRONTEND_PORT": str(frontend_port),
            "CHATPDF_CA_FILE": str(ca_file),
            "CHATPDF_MONGO_HOST": HOST,
            "CHATPDF_MONGO_PORT": str(front.port),
            "CHATPDF_MONGO_PASSWORD_FILE": str(root / "mongo-password"),
            "CHATPDF_MONGO_CA_FILE": str(ca_file),
            "CHATPDF_BACKUP_DIR": str(backups.directory),
            "CHATPDF_S3_ENDPOINT": store.endpoint,
            "CHATPDF_S3_BUCKET": backups.bucket,
            "CHATPDF_S3_ACCESS_KEY_ID": store.access_key_id,
            "CHATPDF_S3_SECRET_FILE": str(root / "s3-secret"),
        }
        return cls(
            root=root,
            backend=backend,
            mongo=mongo,
            mongo_front=front,
            backups=backups,
            s3=store,
            own_s3=own_s3,
            runners=runners,
            ca=ca,
            tls=tls,
            env=env,
        )

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        await self.mongo_front.stop()
        await asyncio.to_thread(self.mongo.stop)
        if self.own_s3:
            self.s3.stop()

    @contextlib.asynccontextmanager
    async def fault(self, name: str) -> AsyncIterator[None]:
        """Inject the fault *name* (one of FAULTS), heal it on the way out."""
        undo = self._inject(name)
        try:
            yield
        finally:
            undo()

    def _inject(self, name: str) -> Callable[[], None]:
        """Inject *name*; give what heals it."""
        backend = self.backend
        saved: dict[str, Any] = dict(vars(backend))

        def restore() -> None:
            for key, value in saved.items():
                setattr(backend, key, value)

        if name == "backend_unhealthy":  # 503, as FastAPI answers a failed check
            backend.status, backend.code = "unhealthy", 503
        elif name == "backend_degraded":  # 200, but not healthy
            backend.status = "degraded"
        elif name == "frontend_headers_dropped":  # the nginx block is gone
            backend.frontend_headers = False
        elif name == "cors_wildcard":  # allow_origins=["*"]
            backend.cors_origins = ("*",)
        elif name == "https_redirect_missing":  # no HTTPSRedirectMiddleware
            backend.redirect = False
        elif name == "cert_expiring":  # a renewal that did not happen
            _certificate(self.ca, days=20).configure_cert(self.tls)
            return lambda: _certificate(self.ca, days=90).configure_cert(self.tls)
        elif name == "mongodb_without_auth":  # mongod without --auth
            self.mongo.auth = False

            def with_auth() -> None:
                self.mongo.auth = True

            return with_auth
        elif name.startswith("backup_"):
            return self._backup_fault(name)
        else:
            raise ValueError(f"no fault {name!r}; one of {', '.join(FAULTS)}")
        return restore

    def _backup_fault(self, name: str) -> Callable[[], None]:
        backups = self.backups
        kept = dict(backups.files)
        newest = backups.newest()
        data, age = kept[newest]
        if name == "backup_stale":
            # Last night's mongodump failed: nothing new here or in S3 (the
            # prune still ran), so the newest is 1.1 days (26.4 h) old.
            backups.remove(newest)
            del backups.files[newest]
        elif name == "backup_retention_short":
            # RETENTION_DAYS=7: find -mtime +7 -delete (S3 keeps its own).
            for other in backups.by_age()[8:]:
                backups.remove(other, offsite=False)
        elif name == "backup_truncated":
            # The disk filled during the dump: the archive is cut short.
            backups.add(newest, data[: len(data) - 64], age)
        elif name == "backup_dump_cut":
            # mongodump died mid-dump but its gzip stream was closed: a whole
            # gzip file around an archive without its last blocks.
            cut = gzip.decompress(data)[:-1500]
            backups.add(newest, gzip.compress(cut), age)
        else:
            raise ValueError(f"no fault {name!r}; one of {', '.join(FAULTS)}")

        def heal() -> None:
            for other, (content, other_age) in kept.items():
                backups.add(other, content, other_age)

        return heal


def _certificate(ca: trustme.CA, days: int) -> trustme.LeafCert:
    """nginx's certificate for both sites, *days* left."""
    return ca.issue_cert(
        "yourdomain.com",
        "api.yourdomain.com",
        HOST,
        not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=days),
    )
