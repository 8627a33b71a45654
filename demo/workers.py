"""The demo's MCP Threading System: `/api/threading/status` in the pool form
with four workers, one STOPPED (so `workers_alive` fails) and one at 490 MiB
of a 512 MiB limit (so `worker_memory` passes, close to the edge)."""

from __future__ import annotations

import contextlib
import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

MIB = 1024 * 1024


def _worker(
    worker_id: str, state: str, heap_mib: float, restarts: int, errors: int
) -> dict[str, Any]:
    return {
        "id": worker_id,
        "threadId": None if state == "STOPPED" else int(worker_id[1:]),
        "state": state,
        "memoryUsage": {
            "rss": int((heap_mib + 40) * MIB),
            "heapUsed": int(heap_mib * MIB),
            "heapTotal": int((heap_mib + 16) * MIB),
        },
        "restartCount": restarts,
        "errorCount": errors,
        "pendingMessages": 0 if state == "STOPPED" else 2,
    }


def status_document() -> dict[str, Any]:
    """What the demo's `/api/threading/status` answers."""
    return {
        "success": True,
        "data": {
            "workers": [
                _worker("w1", "RUNNING", 182.0, 0, 1),
                _worker("w2", "IDLE", 121.5, 0, 0),
                _worker("w3", "STOPPED", 0.0, 3, 7),
                _worker("w4", "RUNNING", 490.0, 1, 2),
            ],
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
        },
    }


async def _status(request: web.Request) -> web.Response:
    return web.json_response(status_document())


async def start(
    stack: contextlib.AsyncExitStack,
    workdir: Path,
    host: str = "127.0.0.1",
    port: int = 18082,
) -> None:
    """Serve the threading status API on *host*:*port* until *stack* closes."""
    del workdir  # nothing to write: the documents are built per request
    app = web.Application()
    app.router.add_get("/api/threading/status", _status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, host, port).start()
