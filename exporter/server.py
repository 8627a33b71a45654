"""The daemon and its aiohttp app.

Routes: `/` status page, `/metrics`, `/api/v1/status`, `/-/healthy`,
`/-/ready` (once every probe ran once), `POST /-/reload` (also SIGHUP). A
reload that fails validation is logged and reported, and the old config keeps
running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from exporter.config import Config, ConfigError, load_config
from exporter.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    PROMETHEUS_CONTENT_TYPE,
    wants_openmetrics,
)
from exporter.metrics import DaemonStatus, MetricsRenderer
from exporter.scheduler import Scheduler
from exporter.status import render_html, status_document

logger = logging.getLogger(__name__)


class Daemon:
    """Scheduler, metrics renderer and reload handling for one config file."""

    def __init__(self, config: Config) -> None:
        self.config_path: Path = config.path
        self.scheduler = Scheduler(config)
        self.status = DaemonStatus(
            started_at=time.time(), last_reload_success_timestamp=time.time()
        )
        self.metrics = MetricsRenderer(self.scheduler, self.status)
        self._reload_lock = asyncio.Lock()
        self._status: tuple[tuple[int, float, int], dict[str, Any]] | None = None

    def status_document(self) -> dict[str, Any]:
        """The status report, rebuilt only after something changed: a
        result, a reload (accepted or not), an attestation's expiry."""
        key = (
            self.scheduler.generation,
            self.scheduler.assessment().valid_until,
            self.status.reloads,
        )
        if self._status is None or self._status[0] != key:
            self._status = (key, status_document(self.scheduler, self.status))
        return self._status[1]

    async def start(self) -> None:
        """Start probing."""
        await self.scheduler.start()

    async def stop(self) -> None:
        """Stop probing and close every connection."""
        async with self._reload_lock:
            await self.scheduler.stop()

    async def reload(self) -> ConfigError | None:
        """Re-read the config file; on error keep the running config."""
        async with self._reload_lock:
            self.status.reloads += 1
            try:
                config = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as error:  # expected: report, keep running
                self.status.reload_failures += 1
                self.status.last_reload_successful = False
                self.status.last_reload_problems = list(error.problems)
                for problem in error.problems:
                    logger.error(  # noqa: TRY400 - the problem text says it all
                        "reload rejected: %s: %s", error.path, problem
                    )
                return error
            await self.scheduler.apply(config)
            self.status.last_reload_successful = True
            self.status.last_reload_problems = []
            self.status.last_reload_success_timestamp = time.time()
            logger.info("configuration reloaded: %d probes", len(config.probes))
            return None


DAEMON = web.AppKey("daemon", Daemon)


async def _metrics(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
    chunks = daemon.metrics.chunks(openmetrics)
    # Joining and encoding tens of megabytes happens off the event loop.
    body = await asyncio.to_thread(lambda: "".join(chunks).encode())
    response = web.Response(body=body)
    response.content_type = "text/plain"
    response.headers["Content-Type"] = (
        OPENMETRICS_CONTENT_TYPE if openmetrics else PROMETHEUS_CONTENT_TYPE
    )
    # aiohttp compresses large bodies in an executor, not on the loop.
    response.enable_compression()
    return response


async def _status_page(request: web.Request) -> web.Response:
    doc = request.app[DAEMON].status_document()
    # Rendering thousands of rows happens off the event loop.
    page = await asyncio.to_thread(render_html, doc)
    return web.Response(text=page, content_type="text/html")


async def _status_json(request: web.Request) -> web.Response:
    doc = request.app[DAEMON].status_document()
    body = await asyncio.to_thread(json.dumps, doc)
    return web.Response(text=body, content_type="application/json")


async def _healthy(request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


async def _ready(request: web.Request) -> web.Response:
    scheduler = request.app[DAEMON].scheduler
    if scheduler.all_ran():
        return web.Response(text="Ready\n")
    waiting = sum(1 for r in scheduler.records.values() if r.result is None)
    return web.Response(
        status=503, text=f"Not ready: {waiting} probes have not run yet\n"
    )


async def _reload(request: web.Request) -> web.Response:
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        # A browser page elsewhere must not be able to poke the daemon.
        return web.Response(status=403, text="Cross-origin reload refused\n")
    error = await request.app[DAEMON].reload()
    if error is None:
        return web.Response(text="Reloaded\n")
    return web.Response(
        status=400,
        text="Reload rejected, the previous configuration keeps running:\n"
        + str(error)
        + "\n",
    )


def make_app(daemon: Daemon) -> web.Application:
    """The HTTP app serving *daemon*; it does not start the daemon."""
    app = web.Application()
    app[DAEMON] = daemon
    app.router.add_get("/", _status_page)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/v1/status", _status_json)
    app.router.add_get("/-/healthy", _healthy)
    app.router.add_get("/-/ready", _ready)
    app.router.add_post("/-/reload", _reload)
    return app


async def serve(daemon: Daemon, host: str, port: int) -> None:
    """Run *daemon* and its HTTP server until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[object]] = set()

    def on_hup() -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(daemon.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)

    runner = web.AppRunner(make_app(daemon), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    logger.info(
        "listening on %s:%d with %d probes",
        host,
        port,
        len(daemon.scheduler.records),
    )
    await daemon.start()
    try:
        await stop.wait()
        logger.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        # A reload still under way must not add probes after the stop.
        for task in list(reloads):
            task.cancel()
        await asyncio.gather(*reloads, return_exceptions=True)
        await runner.cleanup()
        await daemon.stop()
