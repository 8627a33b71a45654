"""The `workers` probe against a real aiohttp server on 127.0.0.1 whose
status documents the tests change between runs."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import ssl
import threading
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from pydantic import ValidationError
from pytest_aiohttp import AiohttpServer

from demo import workers as demo
from exporter.config import parse_config
from exporter.kinds import PROBES
from exporter.probes import workers as workers_probe
from exporter.probes.base import ProbeError, Reason
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.shared import conditions as conditions_module
from exporter.probes.shared.httpclient import SESSION_KEY, new_session
from exporter.probes.workers import WorkersConfig
from exporter.probes.workers.presets import WORKER_STATES
from exporter.runner import explain
from tests.conftest import free_port
from tests.helpers import (
    config_problems,
    detail,
    probe_config,
    run_once,
    sample,
    verdicts,
)
from tests.servers.tls import handshake_server, server_context

MIB = 1024 * 1024
STATUS = "/api/threading/status"
JOBS = "/api/jobs/metrics"


def pool_worker(
    worker_id: str, state: str = "RUNNING", heap_mib: float = 100
) -> dict[str, Any]:
    return {
        "id": worker_id,
        "state": state,
        "memoryUsage": {
            "heapUsed": int(heap_mib * MIB),
            "rss": int(heap_mib * 2 * MIB),
        },
        "restartCount": 0,
        "errorCount": 0,
        "pendingMessages": 1,
    }


def pool_document(count: int = 3) -> dict[str, Any]:
    workers = [pool_worker(f"w{n}") for n in range(1, count + 1)]
    return {"success": True, "data": {"workers": workers}}


def single_thread_document(running: bool = True) -> dict[str, Any]:
    """The MCP Threading System's own `/api/threading/status` reply."""
    return {
        "success": True,
        "data": {
            "worker": {
                "isRunning": running,
                "threadId": 1 if running else None,
                "startTime": "2025-01-01T00:00:00.000Z",
                "uptime": 120000,
                "restartCount": 0,
                "errorCount": 0,
            },
            "health": {
                "isHealthy": running,
                "lastCheck": "2025-01-01T00:02:00.000Z",
                "consecutiveMissedChecks": 0,
                "memoryUsage": {
                    "rss": 90 * MIB,
                    "heapUsed": 40 * MIB,
                    "heapTotal": 60 * MIB,
                },
            },
            "restart": {
                "canRestart": True,
                "currentAttempts": 0,
                "maxAttempts": 5,
                "circuitBreakerState": "CLOSED",
            },
            "messages": {
                "pendingCount": 2,
                "totalSent": 0,
                "totalReceived": 0,
                "averageResponseTime": 3,
            },
            "errors": {
                "totalErrors": 1,
                "recentErrorRate": 0,
                "mostCommonErrorType": None,
            },
            "timestamp": "2025-01-01T00:02:00.000Z",
        },
    }


def jobs_document() -> dict[str, Any]:
    counts = {"waiting": 4, "active": 2, "completed": 310, "failed": 3, "delayed": 0}
    return {
        "queues": [
            {"name": "pdf-processing", "counts": counts, "workers": 3},
            {"name": "calendar-sync", "counts": dict(counts, waiting=0), "workers": 1},
        ]
    }


class StatusApi:
    """What the test server answers, per path; tests change it between runs."""

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {
            STATUS: pool_document(),
            JOBS: jobs_document(),
        }
        self.raw: dict[str, bytes] = {}
        self.status_codes: dict[str, int] = {}
        self.redirects: dict[str, str] = {}
        self.seen: list[dict[str, str]] = []

    @property
    def seen_authorization(self) -> list[str]:
        """The Authorization header of each request ("" for none)."""
        return [headers.get("Authorization", "") for headers in self.seen]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.headers))
        path = request.path
        if path == "/hang":
            await asyncio.sleep(30)
        if path == "/huge":
            return await self._stream_huge(request)
        if path == "/cut":
            return await self._hang_up_mid_reply(request)
        if path in self.redirects:
            raise web.HTTPFound(self.redirects[path])
        status = self.status_codes.get(path, 200)
        if path in self.raw:
            return web.Response(body=self.raw[path], status=status)
        if path in self.documents:
            return web.json_response(self.documents[path], status=status)
        return web.json_response({"error": "not found"}, status=404)

    @staticmethod
    async def _hang_up_mid_reply(request: web.Request) -> web.StreamResponse:
        # Promises 1000 bytes, sends 10, hangs up.
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b'{"success"')
        assert request.transport is not None
        request.transport.close()
        return response

    @staticmethod
    async def _stream_huge(request: web.Request) -> web.StreamResponse:
        # 50 MB of a JSON array, streamed without a length: only the client's
        # cap stops it.
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        chunk = b"[" + b"1," * (512 * 1024)
        with contextlib.suppress(ConnectionError):
            for _ in range(50):
                await response.write(chunk)
        return response


@pytest.fixture
def api() -> StatusApi:
    return StatusApi()


async def serve(
    api: StatusApi, aiohttp_server: AiohttpServer, tls: ssl.SSLContext | None = None
) -> str:
    """Serve *api* on 127.0.0.1 (over TLS with *tls*); its base URL."""
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", api.handle)
    server = await aiohttp_server(app, host="127.0.0.1", port=0, ssl=tls)
    return f"{'https' if tls else 'http'}://127.0.0.1:{server.port}"


@pytest.fixture
async def base_url(api: StatusApi, aiohttp_server: AiohttpServer) -> str:
    return await serve(api, aiohttp_server)


@pytest.fixture
async def ctx() -> AsyncIterator[ProbeContext]:
    shared = SharedResources()
    context = ProbeContext("workers-test", shared)
    yield context
    await context.aclose()
    await shared.aclose()


POOL_MAPPING: dict[str, Any] = {
    "endpoint": "status",
    "items": "$.data.workers[*]",
    "item": "id",
    "values": {
        "state": {
            "path": "state",
            "map": {"RUNNING": 1, "IDLE": 1, "STOPPED": 0, "ERROR": 0},
        },
        "memory_bytes": "memoryUsage.heapUsed",
        "queue_depth": "pendingMessages",
        "errors": "errorCount",
        "restarts": "restartCount",
    },
}


def make(**fields: Any) -> WorkersConfig:
    """A workers probe named pool with *fields*."""
    config: WorkersConfig = probe_config("workers", name="pool", **fields)
    return config


def pool_config(base_url: str, **fields: Any) -> WorkersConfig:
    defaults: dict[str, Any] = {
        "url": base_url,
        "endpoints": {"status": STATUS},
        "mappings": {"workers": POOL_MAPPING},
        "alive_field": "state",
        "memory_field": "memory_bytes",
        "queue_depth_field": "queue_depth",
        "errors_field": "errors",
        "restarts_field": "restarts",
        "memory_max": "512MB",
        "queue_depth_max": 10,
        "errors_budget": 5,
        "restarts_budget": 1,
    }
    return make(**{**defaults, **fields})


# --- healthy and unhealthy workers ------------------------------------------------


async def test_healthy_pool_passes_every_check(
    base_url: str, ctx: ProbeContext
) -> None:
    result = await run_once(pool_config(base_url), ctx=ctx)
    assert result.success, result.error
    assert verdicts(result) == {
        "workers_alive": True,
        "worker_memory": True,
        "queue_depth": True,
        "errors_budget": True,
        "restarts_budget": True,
    }
    assert sample(result, "workers_alive") == 3
    assert sample(result, "workers_reported") == 3
    assert sample(result, "workers_value", field="state", item="w2") == 1
    assert sample(result, "workers_memory_bytes", item="w1") == 100 * MIB
    assert sample(result, "workers_memory_max_bytes") == 512 * MIB
    assert sample(result, "workers_queue_depth") == 3


async def test_memory_max_gauge_only_with_a_maximum(
    base_url: str, ctx: ProbeContext
) -> None:
    result = await run_once(pool_config(base_url, memory_max=None), ctx=ctx)
    assert result.success, result.error
    assert "workers_memory_max_bytes" not in {s.name for s in result.samples}


async def test_a_document_over_a_mebibyte_is_parsed_and_judged(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    # Big enough to be parsed off the event loop.
    api.documents[STATUS] = pool_document(count=8000)
    config = pool_config(base_url, max_body_bytes=8 * MIB, queue_depth_max=None)
    result = await run_once(config, ctx=ctx)
    assert result.success, result.error
    assert sample(result, "workers_reported") == 8000


async def test_cel_on_a_large_reply_is_judged_off_the_event_loop(
    api: StatusApi, base_url: str, ctx: ProbeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spy on where the conditions are judged (no I/O is replaced).
    judged_in: list[threading.Thread] = []
    judge = conditions_module.judge

    def spy(*args: Any) -> Any:
        judged_in.append(threading.current_thread())
        return judge(*args)

    monkeypatch.setattr(conditions_module, "judge", spy)
    config = pool_config(
        base_url,
        max_body_bytes=8 * MIB,
        queue_depth_max=None,
        conditions=[{"cel": "body.success && body.data.workers.size() >= 3"}],
    )
    for count in (3000, 3):
        api.documents[STATUS] = pool_document(count=count)
        result = await run_once(config, ctx=ctx)
        assert result.success, result.checks
    assert [t is threading.main_thread() for t in judged_in] == [False, True]


async def test_stopped_worker_fails_alive_and_keeps_its_series(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url)
    assert (await run_once(config, ctx=ctx)).success
    api.documents[STATUS]["data"]["workers"][1]["state"] = "STOPPED"
    result = await run_once(config, ctx=ctx)
    assert not result.success
    assert result.reason is Reason.CHECK
    assert not verdicts(result)["workers_alive"]
    assert "2 of 3 alive" in detail(result, "workers_alive")
    assert "w2" in detail(result, "workers_alive")
    # The stopped worker's state becomes 0 instead of disappearing.
    assert sample(result, "workers_value", field="state", item="w2") == 0
    assert sample(result, "workers_alive") == 2


async def test_unmapped_state_uses_map_default_or_fails_with_a_detail(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[STATUS]["data"]["workers"][0]["state"] = "REBALANCING"
    result = await run_once(pool_config(base_url), ctx=ctx)
    assert not verdicts(result)["workers_alive"]
    assert "'REBALANCING' is not in map" in detail(result, "workers_alive")
    assert sample(result, "workers_value", field="state", item="w1") is None

    mapping = copy.deepcopy(POOL_MAPPING)
    mapping["values"]["state"]["map_default"] = 1
    result = await run_once(
        pool_config(base_url, mappings={"workers": mapping}), ctx=ctx
    )
    assert verdicts(result)["workers_alive"]
    assert sample(result, "workers_value", field="state", item="w1") == 1


async def test_memory_over_the_limit_fails_worker_memory(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[STATUS]["data"]["workers"][2] = pool_worker("w3", heap_mib=600)
    result = await run_once(pool_config(base_url, memory_max="512MB"), ctx=ctx)
    assert result.success  # a warning, not a critical check
    assert not verdicts(result)["worker_memory"]
    assert "w3 600.0 MiB" in detail(result, "worker_memory")
    assert sample(result, "workers_memory_bytes", item="w3") == 600 * MIB


async def test_growing_queue_fails_once_over_the_limit(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url, queue_depth_max=10)
    depths = []
    for pending in (1, 6, 25):
        api.documents[STATUS]["data"]["workers"][0]["pendingMessages"] = pending
        result = await run_once(config, ctx=ctx)
        depths.append(
            (sample(result, "workers_queue_depth"), verdicts(result)["queue_depth"])
        )
    assert depths == [(3, True), (8, True), (27, False)]


async def test_errors_and_restarts_rising_beyond_budget(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url, errors_budget=5, restarts_budget=1)
    worker = api.documents[STATUS]["data"]["workers"][0]
    outcomes = []
    for errors, restarts in ((2, 0), (6, 1), (20, 3), (0, 0)):
        worker["errorCount"], worker["restartCount"] = errors, restarts
        result = await run_once(config, ctx=ctx)
        checks = verdicts(result)
        outcomes.append(
            (
                checks["errors_budget"],
                checks["restarts_budget"],
                sample(result, "workers_errors_total"),
            )
        )
    # baseline; +4/+1 within budget; +14/+2 over; a drop (app restart) resets.
    assert outcomes == [
        (True, True, 2),
        (True, True, 6),
        (False, False, 20),
        (True, True, 0),
    ]


async def test_budget_window_compares_with_the_oldest_run_in_the_window(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url, errors_budget=5, budget_window="1h")
    worker = api.documents[STATUS]["data"]["workers"][0]
    passed = []
    for errors in (0, 3, 6):
        worker["errorCount"] = errors
        passed.append(verdicts(await run_once(config, ctx=ctx))["errors_budget"])
    # +3 and +3 are each within budget, but +6 within the hour is not.
    assert passed == [True, True, False]


async def test_conditions_become_checks_named_condition_name(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    conditions = [
        {"name": "api_success", "condition": "$.success == true"},
        "$.data.workers[*].state exists",
    ]
    config = pool_config(base_url, conditions=conditions)
    first = await run_once(config, ctx=ctx)
    assert verdicts(first)["condition_api_success"]
    assert verdicts(first)["condition_1"]  # an unnamed one by its position
    api.documents[STATUS]["success"] = False
    result = await run_once(config, ctx=ctx)
    assert not verdicts(result)["condition_api_success"]
    assert detail(result, "condition_api_success") == (
        "$.success is false, wanted == true"
    )
    assert result.reason is Reason.CHECK
    assert result.error == "failed: condition_api_success"


async def test_a_condition_named_like_a_check_is_its_own_check(
    base_url: str, ctx: ProbeContext
) -> None:
    # Condition checks have their own prefix, so no name can clash.
    conditions = [{"name": "workers_alive", "condition": "$.success == false"}]
    result = await run_once(pool_config(base_url, conditions=conditions), ctx=ctx)
    assert verdicts(result)["workers_alive"] is True
    assert verdicts(result)["condition_workers_alive"] is False


async def test_max_items_caps_the_series_not_the_judgement(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[STATUS] = pool_document(count=30)
    api.documents[STATUS]["data"]["workers"][29]["state"] = "ERROR"
    mapping = dict(POOL_MAPPING, max_items=5)
    result = await run_once(
        pool_config(base_url, mappings={"workers": mapping}), ctx=ctx
    )
    items = {
        dict(s.labels)["item"] for s in result.samples if s.name == "workers_value"
    }
    assert len(items) == 5
    assert sample(result, "workers_reported") == 30
    assert "w30" in detail(result, "workers_alive")


async def test_bearer_token_from_file_is_sent_and_never_shown(
    api: StatusApi, base_url: str, ctx: ProbeContext, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token\n")
    api.status_codes[STATUS] = 401
    result = await run_once(
        pool_config(base_url, bearer_token_file=token_file), ctx=ctx
    )
    assert api.seen_authorization[-1] == "Bearer s3cr3t-token"
    assert result.reason is Reason.AUTH
    assert "s3cr3t" not in result.error
    assert "s3cr3t" not in repr(result.checks)


async def test_headers_are_sent_and_secret_in_the_config(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url, headers={"Authorization": "Token k3y"})
    assert "k3y" not in repr(config)
    assert (await run_once(config, ctx=ctx)).success
    assert api.seen_authorization[-1] == "Token k3y"


def test_header_with_a_newline_is_a_config_error() -> None:
    with pytest.raises(ValidationError) as caught:
        pool_config("http://h:1", headers={"X-Key": "a\r\nX-Evil: 1"})
    assert "contains a newline" in str(caught.value)


async def test_https_verifies_against_ca_file_or_fails_with_tls(
    api: StatusApi,
    aiohttp_server: AiohttpServer,
    ctx: ProbeContext,
    ca: trustme.CA,
    ca_file: Path,
    tmp_path: Path,
) -> None:
    url = await serve(api, aiohttp_server, server_context(ca))
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))

    unknown = await run_once(pool_config(url), ctx=ctx)
    assert unknown.reason is Reason.TLS
    assert "CERTIFICATE_VERIFY_FAILED" in unknown.error
    wrong = await run_once(
        pool_config(url, tls_config={"ca_file": str(other_ca)}), ctx=ctx
    )
    assert wrong.reason is Reason.TLS
    assert "endpoint status" in wrong.error
    trusted = pool_config(url, tls_config={"ca_file": str(ca_file)})
    assert (await run_once(trusted, ctx=ctx)).success
    insecure = pool_config(url, tls_config={"insecure_skip_verify": True})
    assert (await run_once(insecure, ctx=ctx)).success


async def test_min_version_tls13_refuses_a_tls12_server(
    api: StatusApi,
    aiohttp_server: AiohttpServer,
    ctx: ProbeContext,
    ca: trustme.CA,
    ca_file: Path,
) -> None:
    tls12 = server_context(ca, maximum=ssl.TLSVersion.TLSv1_2)
    url = await serve(api, aiohttp_server, tls12)
    served = await run_once(
        pool_config(url, tls_config={"ca_file": str(ca_file)}), ctx=ctx
    )
    assert served.success, served.error
    tls13 = {"ca_file": str(ca_file), "min_version": "TLS13"}
    async with handshake_server(tls12) as refusing:
        refused = await run_once(
            pool_config(f"https://127.0.0.1:{refusing.port}", tls_config=tls13),
            ctx=ctx,
        )
    assert refused.reason is Reason.TLS, refused.error
    assert "PROTOCOL_VERSION" in refused.error
    assert "endpoint status" in refused.error


async def test_server_name_is_sent_as_sni_and_verified(
    api: StatusApi,
    aiohttp_server: AiohttpServer,
    ctx: ProbeContext,
    ca: trustme.CA,
    ca_file: Path,
) -> None:
    sent: list[str | None] = []
    context = server_context(ca, "workers.internal", server_names=sent)
    url = await serve(api, aiohttp_server, context)
    named = {"ca_file": str(ca_file), "server_name": "workers.internal"}
    assert (await run_once(pool_config(url, tls_config=named), ctx=ctx)).success
    unnamed = pool_config(url, tls_config={"ca_file": str(ca_file)})
    assert (await run_once(unnamed, ctx=ctx)).reason is Reason.TLS
    assert sent == ["workers.internal", None]  # an IP address is never SNI


# --- presets ----------------------------------------------------------------------


async def test_mcp_threading_preset_reads_the_single_thread_api(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[STATUS] = single_thread_document()
    config = make(preset="mcp-threading", url=base_url)
    result = await run_once(config, ctx=ctx)
    assert result.success, result.error
    assert verdicts(result) == {
        "workers_alive": True,
        "queue_depth": True,
        "errors_budget": True,
        "restarts_budget": True,
        "growth_queue_depth": True,
    }
    assert sample(result, "workers_value", field="state", item="workers") == 1
    assert sample(result, "workers_memory_bytes", item="workers") == 40 * MIB
    assert sample(result, "workers_queue_depth") == 2
    assert sample(result, "workers_errors_total") == 1

    api.documents[STATUS] = single_thread_document(running=False)
    result = await run_once(config, ctx=ctx)
    assert result.reason is Reason.CHECK
    assert not verdicts(result)["workers_alive"]


async def test_mcp_threading_preset_reads_the_pool_form(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[STATUS]["data"]["workers"][2]["state"] = "STOPPED"
    result = await run_once(make(preset="mcp-threading", url=base_url), ctx=ctx)
    assert not verdicts(result)["workers_alive"]
    assert sample(result, "workers_reported") == 3
    assert sample(result, "workers_value", field="state", item="w3") == 0


async def test_bullmq_preset_reads_queue_counts(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = make(preset="bullmq-jobs-endpoint", url=base_url)
    result = await run_once(config, ctx=ctx)
    assert result.success, result.error
    assert set(verdicts(result)) == {
        "workers_alive",
        "queue_depth",
        "errors_budget",
        "growth_waiting",
    }
    assert all(verdicts(result).values())
    assert sample(result, "workers_value", field="waiting", item="pdf-processing") == 4
    assert sample(result, "workers_queue_depth") == 4
    assert sample(result, "workers_errors_total") == 6

    api.documents[JOBS]["queues"][1]["workers"] = 0
    api.documents[JOBS]["queues"][0]["counts"]["waiting"] = 5000
    result = await run_once(config, ctx=ctx)
    assert not verdicts(result)["workers_alive"]
    assert "calendar-sync" in detail(result, "workers_alive")
    assert not verdicts(result)["queue_depth"]


async def test_preset_override_of_one_field(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents["/v2/threading/status"] = api.documents.pop(STATUS)
    config = make(
        preset="mcp-threading",
        url=base_url,
        endpoints={"status": "/v2/threading/status"},
        memory_max="64MB",
    )
    # Everything else still comes from the preset.
    assert config.mappings["workers"].values["state"].map == WORKER_STATES
    assert config.alive_field == "state"
    result = await run_once(config, ctx=ctx)
    assert verdicts(result)["workers_alive"]
    assert not verdicts(result)["worker_memory"]


def test_preset_can_drop_a_check_with_null() -> None:
    config = make(
        preset="mcp-threading", url="http://127.0.0.1:1", queue_depth_max=None
    )
    names = [spec.name for spec in PROBES["workers"].plan(config)]
    assert "queue_depth" not in names
    assert "workers_alive" in names


# --- the shapes of the checklists' systems ---------------------------------------


def queue_counts(waiting: int = 4, **more: Any) -> dict[str, Any]:
    return {"waiting": waiting, "active": 2, "completed": 310, "failed": 3, **more}


def keyed_jobs_document(**waiting: int) -> dict[str, Any]:
    """Schedgen's `/api/jobs/metrics` as a map keyed by queue name, each
    queue with its own `maxSize` and connected workers."""
    return {
        "queues": {
            name: queue_counts(count, delayed=0, maxSize=1000, workers=2)
            for name, count in (waiting or {"pdf-processing": 4, "email": 0}).items()
        }
    }


@pytest.mark.parametrize(
    ("document", "labels"),
    [
        pytest.param(jobs_document(), {"pdf-processing", "calendar-sync"}, id="list"),
        pytest.param(keyed_jobs_document(), {"pdf-processing", "email"}, id="map"),
        pytest.param(
            {
                "pdf-processing": {"counts": queue_counts(), "workers": 3},
                "email": {"counts": queue_counts(0), "workers": 1},
            },
            {"pdf-processing", "email"},
            id="keyed-reply",
        ),
        pytest.param(
            dict(queue_counts(), delayed=0, workers=2), {"queues"}, id="bare-counts"
        ),
    ],
)
async def test_bullmq_preset_reads_every_form_of_the_jobs_endpoint(
    api: StatusApi,
    base_url: str,
    ctx: ProbeContext,
    document: dict[str, Any],
    labels: set[str],
) -> None:
    api.documents[JOBS] = document
    result = await run_once(make(preset="bullmq-jobs-endpoint", url=base_url), ctx=ctx)
    assert result.success, result.checks
    items = {
        dict(s.labels)["item"] for s in result.samples if s.name == "workers_value"
    }
    assert items == labels
    assert sample(result, "workers_queue_depth") == 4


async def test_a_map_of_queues_gives_one_item_per_key_named_in_the_details(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[JOBS] = keyed_jobs_document(**{"pdf-processing": 4})
    config = make(preset="bullmq-jobs-endpoint", url=base_url)
    result = await run_once(config, ctx=ctx)
    # One queue is still its own item, named by its key, not "queues".
    assert sample(result, "workers_value", field="waiting", item="pdf-processing") == 4
    api.documents[JOBS]["queues"]["pdf-processing"]["workers"] = 0
    result = await run_once(config, ctx=ctx)
    assert detail(result, "workers_alive") == (
        "0 of 1 alive; not alive: pdf-processing (workers 0)"
    )


async def test_queue_depth_is_judged_against_the_queues_own_max_size(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[JOBS] = keyed_jobs_document(**{"pdf-processing": 40, "email": 3})
    api.documents[JOBS]["queues"]["pdf-processing"]["maxSize"] = 50
    config = make(preset="bullmq-jobs-endpoint", url=base_url)
    assert config.queue_depth_max == ("max_size", 1000.0)
    result = await run_once(config, ctx=ctx)
    assert verdicts(result)["queue_depth"]
    assert (
        sample(result, "workers_value", field="max_size", item="pdf-processing") == 50
    )

    api.documents[JOBS]["queues"]["pdf-processing"]["waiting"] = 51
    result = await run_once(config, ctx=ctx)
    assert not verdicts(result)["queue_depth"]
    assert detail(result, "queue_depth") == "over the limit: pdf-processing 51 of 50"

    # A queue without its own maxSize falls back to the preset's 1000.
    del api.documents[JOBS]["queues"]["email"]["maxSize"]
    api.documents[JOBS]["queues"]["email"]["waiting"] = 1001
    result = await run_once(config, ctx=ctx)
    assert "email 1001 of 1000" in detail(result, "queue_depth")


async def test_a_limit_named_alone_fails_an_item_that_does_not_report_it(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[JOBS] = keyed_jobs_document()
    del api.documents[JOBS]["queues"]["email"]["maxSize"]
    config = make(
        preset="bullmq-jobs-endpoint", url=base_url, queue_depth_max="max_size"
    )
    result = await run_once(config, ctx=ctx)
    assert detail(result, "queue_depth") == "no limit for email (no max_size figure)"


async def test_worker_memory_against_each_workers_own_limit(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    for worker in api.documents[STATUS]["data"]["workers"]:
        worker["maxMemoryMB"] = 512
    api.documents[STATUS]["data"]["workers"][1]["maxMemoryMB"] = 64
    mapping = copy.deepcopy(POOL_MAPPING)
    mapping["values"]["memory_limit"] = {"path": "maxMemoryMB", "scale": MIB}
    config = pool_config(
        base_url, mappings={"workers": mapping}, memory_max="memory_limit"
    )
    result = await run_once(config, ctx=ctx)
    assert not verdicts(result)["worker_memory"]
    assert detail(result, "worker_memory") == (
        "at or over the limit: w2 100.0 MiB of 64.0 MiB"
    )
    # The per-worker limit is a series of its own, not the fixed gauge.
    assert sample(result, "workers_value", field="memory_limit", item="w2") == 64 * MIB
    assert sample(result, "workers_memory_max_bytes") is None


async def test_a_limit_in_mb_without_scale_is_pointed_out(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    for worker in api.documents[STATUS]["data"]["workers"]:
        worker["maxMemoryMB"] = 512
    mapping = copy.deepcopy(POOL_MAPPING)
    mapping["values"]["memory_limit"] = "maxMemoryMB"
    config = pool_config(
        base_url, mappings={"workers": mapping}, memory_max="memory_limit"
    )
    result = await run_once(config, ctx=ctx)
    assert not verdicts(result)["worker_memory"]
    assert detail(result, "worker_memory").endswith(
        "; a limit under 1 MiB: is it in MB? scale it to bytes"
    )


def test_an_implausibly_small_memory_max_is_a_load_warning() -> None:
    assert pool_config("http://h:1", memory_max=512).warnings() == [
        "field 'memory_max': 512 means 512 bytes, less than any worker uses;"
        " write the unit (512MB, 2GB)"
    ]
    assert pool_config("http://h:1", memory_max="512MB").warnings() == []
    assert pool_config("http://h:1", memory_max=None).warnings() == []


async def test_workers_alive_min_counts_live_workers(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url, workers_alive_min=3)
    result = await run_once(config, ctx=ctx)
    assert verdicts(result)["workers_alive_count"]
    api.documents[STATUS]["data"]["workers"][2]["state"] = "CRASHED"
    result = await run_once(config, ctx=ctx)
    assert result.reason is Reason.CHECK
    assert not verdicts(result)["workers_alive_count"]
    assert detail(result, "workers_alive_count") == "2 live, minimum 3 (w1 1, w2 1)"


async def test_workers_alive_min_sums_a_queues_connected_workers(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    # Checklist 002: "Test with 3 worker instances" of the PDF worker.
    api.documents[JOBS] = keyed_jobs_document(**{"pdf-processing": 4})
    api.documents[JOBS]["queues"]["pdf-processing"]["workers"] = 3
    config = make(preset="bullmq-jobs-endpoint", url=base_url, workers_alive_min=3)
    assert verdicts(await run_once(config, ctx=ctx))["workers_alive_count"]
    api.documents[JOBS]["queues"]["pdf-processing"]["workers"] = 2
    result = await run_once(config, ctx=ctx)
    assert not verdicts(result)["workers_alive_count"]
    assert detail(result, "workers_alive_count") == (
        "2 live, minimum 3 (pdf-processing 2)"
    )


async def test_a_dependency_map_yields_one_item_per_dependency(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    # Checklists 003/004: /health/ready with `{"dependencies": {"redis": "down"}}`.
    api.documents["/health/ready"] = {
        "status": "degraded",
        "dependencies": {"postgres": "up", "redis": "down", "etcd": "up"},
    }
    config = make(
        url=base_url,
        endpoints={"ready": "/health/ready"},
        mappings={
            "dependencies": {
                "endpoint": "ready",
                "items": "$.dependencies[*]",
                "values": {"up": {"path": "$", "map": {"up": 1, "down": 0}}},
            }
        },
        alive_field="up",
    )
    result = await run_once(config, ctx=ctx)
    assert detail(result, "workers_alive") == "2 of 3 alive; not alive: redis (up 0)"
    assert sample(result, "workers_value", field="up", item="redis") == 0
    assert sample(result, "workers_value", field="up", item="postgres") == 1


async def test_growth_fails_a_backlog_that_grows_run_after_run(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = make(preset="bullmq-jobs-endpoint", url=base_url, growth={"waiting": 3})
    details = []
    for waiting in (4, 9, 20, 35, 35, 36):
        api.documents[JOBS] = keyed_jobs_document(
            **{"pdf-processing": waiting, "email": 1}
        )
        result = await run_once(config, ctx=ctx)
        details.append(
            (verdicts(result)["growth_waiting"], detail(result, "growth_waiting"))
        )
    assert details == [
        (True, "0 of 3 runs seen so far"),
        (True, "1 of 3 runs seen so far"),
        (True, "2 of 3 runs seen so far"),
        (False, "grew on each of the last 3 runs: pdf-processing 4 -> 35"),
        (True, "not growing on every one of the last 3 runs"),
        (True, "not growing on every one of the last 3 runs"),
    ]


async def test_growth_on_memory_names_the_worker_that_creeps_up(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url, growth={"memory_bytes": 2})
    results = []
    for heap in (100, 150, 210):
        api.documents[STATUS]["data"]["workers"][1] = pool_worker("w2", heap_mib=heap)
        results.append(await run_once(config, ctx=ctx))
    assert [verdicts(r)["growth_memory_bytes"] for r in results] == [True, True, False]
    result = results[-1]
    assert detail(result, "growth_memory_bytes") == (
        "grew on each of the last 2 runs: w2 100.0 MiB -> 210.0 MiB"
    )


def test_null_drops_a_presets_values_and_checks() -> None:
    config = make(
        preset="mcp-threading",
        url="http://127.0.0.1:1",
        queue_depth_max=None,
        growth={"queue_depth": None},
        mappings={"workers": {"values": {"healthy": None}}},
    )
    assert "healthy" not in config.mappings["workers"].values
    assert config.growth == {}
    names = [spec.name for spec in PROBES["workers"].plan(config)]
    assert "queue_depth" not in names
    assert "growth_queue_depth" not in names
    assert "workers_alive" in names


async def test_cel_conditions_read_a_queue_keyed_jobs_endpoint(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[JOBS] = keyed_jobs_document(**{"pdf-processing": 40, "email": 0})
    config = make(
        preset="bullmq-jobs-endpoint",
        url=base_url,
        conditions=[
            {
                "name": "under_max",
                "cel": "body.queues.all(q, body.queues[q].waiting"
                " < body.queues[q].maxSize)",
            },
            {"cel": 'body.queues.exists(q, q == "pdf-processing")'},
        ],
    )
    result = await run_once(config, ctx=ctx)
    assert verdicts(result)["condition_under_max"]
    assert verdicts(result)["condition_1"]
    api.documents[JOBS]["queues"]["pdf-processing"]["waiting"] = 1500
    result = await run_once(config, ctx=ctx)
    assert detail(result, "condition_under_max") == (
        'false for pdf-processing (1 of 2); q = "pdf-processing":'
        " body.queues[q].waiting is 1500, wanted < body.queues[q].maxSize (1000)"
    )


# --- replies that cannot be judged ------------------------------------------------


async def test_malformed_json_is_a_protocol_failure_naming_the_endpoint(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.raw[STATUS] = b'{"success": true, "data": {"workers": [}'
    result = await run_once(pool_config(base_url), ctx=ctx)
    assert result.reason is Reason.PROTOCOL
    assert "endpoint status" in result.error
    assert "not JSON" in result.error
    assert all(not c.passed for c in result.checks)


async def test_non_2xx_is_a_protocol_failure(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.status_codes[STATUS] = 503
    result = await run_once(pool_config(base_url), ctx=ctx)
    assert result.reason is Reason.PROTOCOL
    assert "endpoint status" in result.error
    assert "HTTP 503" in result.error


async def test_50_mb_body_is_capped_with_bounded_memory(
    base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url, endpoints={"status": "/huge"})
    tracemalloc.start()
    try:
        result = await run_once(config, ctx=ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.reason is Reason.PROTOCOL
    assert "max_body_bytes" in result.error
    assert peak < 16 * MIB


SECRET_FIELDS: dict[str, dict[str, Any]] = {
    "headers": {"headers": {"X-API-Key": "k3y"}},
    "bearer_token": {"bearer_token": "t0ken"},
    "basic_auth": {"basic_auth": {"username": "ops", "password": "pa55"}},
}


def carries_secret(headers: dict[str, str]) -> bool:
    return "X-API-Key" in headers or "Authorization" in headers


@pytest.mark.parametrize("secret", SECRET_FIELDS)
async def test_secrets_do_not_follow_a_redirect_to_another_origin(
    secret: str,
    api: StatusApi,
    base_url: str,
    aiohttp_server: AiohttpServer,
    ctx: ProbeContext,
) -> None:
    moved = StatusApi()
    moved.redirects[STATUS] = f"{base_url}{STATUS}"
    first_url = await serve(moved, aiohttp_server)
    result = await run_once(pool_config(first_url, **SECRET_FIELDS[secret]), ctx=ctx)
    assert result.success, result.error
    assert carries_secret(moved.seen[-1]), "the configured origin gets them"
    assert not carries_secret(api.seen[-1]), api.seen[-1]


async def test_secrets_follow_a_redirect_within_the_origin(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.redirects["/old/status"] = STATUS
    config = pool_config(
        base_url,
        endpoints={"status": "/old/status"},
        headers={"X-API-Key": "k3y"},
        bearer_token="t0ken",
    )
    result = await run_once(config, ctx=ctx)
    assert result.success, result.error
    assert len(api.seen) == 2
    assert api.seen[-1]["X-API-Key"] == "k3y"
    assert api.seen[-1]["Authorization"] == "Bearer t0ken"


async def test_follow_redirects_false_makes_a_3xx_a_protocol_failure(
    api: StatusApi, base_url: str, aiohttp_server: AiohttpServer, ctx: ProbeContext
) -> None:
    moved = StatusApi()
    moved.redirects[STATUS] = f"{base_url}{STATUS}"
    first_url = await serve(moved, aiohttp_server)
    config = pool_config(
        first_url, headers={"X-API-Key": "k3y"}, follow_redirects=False
    )
    result = await run_once(config, ctx=ctx)
    assert result.reason is Reason.PROTOCOL
    assert result.error == (
        f"endpoint status ({first_url}{STATUS}): HTTP 302 redirect not followed"
        " (follow_redirects: false)"
    )
    assert api.seen == [], "the redirect was not followed"


async def test_a_redirect_loop_is_a_protocol_failure_naming_the_endpoint(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.redirects[STATUS] = STATUS
    result = await run_once(pool_config(base_url), ctx=ctx)
    assert result.reason is Reason.PROTOCOL
    assert "endpoint status" in result.error
    assert "more than 10 redirects" in result.error


async def test_basic_auth_is_sent(
    api: StatusApi, base_url: str, ctx: ProbeContext, tmp_path: Path
) -> None:
    password = tmp_path / "password"
    password.write_text("pa55\n")
    inline = {"username": "ops", "password": "pa55"}
    from_file = {"username": "ops", "password_file": str(password)}
    for basic_auth in (inline, from_file):
        result = await run_once(pool_config(base_url, basic_auth=basic_auth), ctx=ctx)
        assert result.success, result.error
        assert api.seen_authorization[-1] == "Basic b3BzOnBhNTU="  # ops:pa55
    api.status_codes[STATUS] = 401
    refused = await run_once(pool_config(base_url, basic_auth=inline), ctx=ctx)
    assert refused.reason is Reason.AUTH
    assert "pa55" not in refused.error


async def test_an_empty_inline_bearer_token_with_a_file_uses_the_file(
    api: StatusApi, base_url: str, ctx: ProbeContext, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("from-the-file\n")
    config = pool_config(base_url, bearer_token="", bearer_token_file=str(token))
    result = await run_once(config, ctx=ctx)
    assert result.success, result.error
    assert api.seen_authorization[-1] == "Bearer from-the-file"


async def test_a_spent_budget_is_a_timeout_naming_the_endpoint(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    # aiohttp reads ClientTimeout(total<=0) as "no timeout": a spent budget
    # must end the run as a timeout, not as an unbounded request. Outside
    # the runner the context's deadline is spent.
    config = pool_config(base_url)
    session = ctx.shared(SESSION_KEY, new_session)
    with pytest.raises(ProbeError) as caught:
        await workers_probe._fetch(session, config, "status", ctx)
    reason, text = explain(caught.value, PROBES["workers"], config)
    assert reason is Reason.TIMEOUT
    assert text.startswith("endpoint status (")
    assert api.seen == [], "nothing was sent"


async def test_unreachable_is_a_connect_failure(ctx: ProbeContext) -> None:
    result = await run_once(pool_config(f"http://127.0.0.1:{free_port()}"), ctx=ctx)
    assert result.reason is Reason.CONNECT
    assert "endpoint status" in result.error
    assert all(not c.passed for c in result.checks)


async def test_hanging_endpoint_is_a_timeout(base_url: str, ctx: ProbeContext) -> None:
    config = pool_config(base_url, endpoints={"status": "/hang"}, timeout=0.5)
    result = await asyncio.wait_for(run_once(config, ctx=ctx), 5)
    assert result.reason is Reason.TIMEOUT


async def test_hanging_endpoint_is_named_before_the_run_times_out(
    base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(
        base_url, endpoints={"status": STATUS, "stuck": "/hang"}, timeout=1
    )
    # The request budget ends before the runner's own timeout, with an
    # error that says which endpoint hung.
    result = await run_once(config, ctx=ctx)
    assert result.reason is Reason.TIMEOUT
    assert result.error.startswith("endpoint stuck (")
    assert result.error.endswith("/hang): no answer within 0.9s")


async def test_a_hang_up_mid_reply_is_a_protocol_failure_naming_the_endpoint(
    base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url, endpoints={"status": "/cut"})
    result = await run_once(config, ctx=ctx)
    assert result.reason is Reason.PROTOCOL, result.error
    assert "endpoint status" in result.error
    assert "ClientPayloadError" in result.error


# --- config errors ----------------------------------------------------------------


def test_bad_json_path_is_named_in_the_config_error() -> None:
    problems = config_problems(
        """
        - kind: workers
          name: pool
          url: http://127.0.0.1:3001
          endpoints: {status: /api/threading/status}
          mappings:
            workers:
              endpoint: status
              items: $.data.workers[*
              values: {state: state}
        """
    )
    assert "probe 'pool'" in problems
    assert "mappings.workers.items" in problems
    assert "invalid JSON path" in problems


def test_credentials_in_the_url_are_a_config_error_naming_the_fields() -> None:
    problems = config_problems(
        """
        - kind: workers
          name: pool
          url: http://ops:pa55word@127.0.0.1:3001
          endpoints: {status: /status}
        """
    )
    assert "set basic_auth or bearer_token" in problems
    assert "pa55word" not in problems


def test_unknown_preset_lists_the_known_ones() -> None:
    problems = config_problems(
        """
        - kind: workers
          name: pool
          preset: sidekiq
          url: http://127.0.0.1:3001
        """
    )
    assert problems == (
        "probe 'pool' (probes[0]): field 'preset': unknown preset 'sidekiq': use"
        " one of bullmq-jobs-endpoint, mcp-threading"
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"memory_max": "12 parsecs"}, "invalid size '12 parsecs'"),
        (
            {"memory_max": "lots"},
            "memory_max 'lots' is neither a number nor a value of mapping 'workers'",
        ),
        ({"growth": {"pending": 3}}, "growth: 'pending' is not a mapped value"),
        ({"growth": {"errors": 0}}, "growth of 'errors': 0 runs; give 1 to 1000"),
        (
            {"alive_field": None, "workers_alive_min": 2},
            "workers_alive_min needs alive_field",
        ),
        ({"alive_field": "nope"}, "alive_field 'nope' is not a mapped value"),
        ({"url": "ftp://host/x"}, "must be http:// or https://"),
        ({"endpoints": {"status": "api/x"}}, "must be a path under url"),
        (
            {"max_body_bytes": 64 * MIB + 1},
            "Input should be less than or equal to 67108864",
        ),
    ],
)
def test_config_mistakes_say_what_to_write(
    fields: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        pool_config("http://127.0.0.1:3001", **fields)
    assert expected in str(caught.value)


def test_memory_max_accepts_bytes_units_and_value_names() -> None:
    assert pool_config("http://h:1", memory_max=1000).memory_max == (1000,)
    assert pool_config("http://h:1", memory_max="512MB").memory_max == (512 * MIB,)
    mapping = copy.deepcopy(POOL_MAPPING)
    mapping["values"]["memory_limit"] = "maxMemory"
    config = pool_config(
        "http://h:1",
        mappings={"workers": mapping},
        memory_max=["memory_limit", "512MB"],
    )
    assert config.memory_max == ("memory_limit", 512 * MIB)


def workers_problems(**fields: Any) -> str:
    """The config problems of a workers probe named pool with *fields*."""
    raw = {
        "kind": "workers",
        "name": "pool",
        "url": "http://127.0.0.1:3001",
        "endpoints": {"status": STATUS},
        "mappings": {"workers": POOL_MAPPING},
        **fields,
    }
    return config_problems("- " + json.dumps(raw))


@pytest.mark.parametrize(
    ("old", "value"),
    [
        ("memory_limit", "512MB"),
        ("ca_file", "/etc/ca.pem"),
        ("cert_file", "/etc/client.pem"),
        ("key_file", "/etc/client.key"),
        ("server_name", "workers.internal"),
        ("insecure_skip_verify", True),
    ],
)
def test_a_renamed_field_names_its_new_place(old: str, value: object) -> None:
    new = "memory_max" if old == "memory_limit" else f"tls_config.{old}"
    assert workers_problems(**{old: value}) == (
        f"probe 'pool' (probes[0]): field {old!r} is now {new!r} (renamed in"
        " 0.2.0; see the README's changelog)"
    )


def test_bearer_token_and_its_file_are_one_error_naming_both() -> None:
    problems = workers_problems(bearer_token="t0ken", bearer_token_file="/run/t")
    assert problems == (
        "probe 'pool' (probes[0]): set either bearer_token or bearer_token_file,"
        " not both (bearer_token_file is read at every use, so rotation needs no"
        " reload)"
    )


def test_checks_of_a_config_are_planned_from_the_table() -> None:
    config = pool_config(
        "http://h:1",
        conditions=["$.success == true", {"name": "up", "condition": "$.up exists"}],
    )
    assert [spec.name for spec in PROBES["workers"].plan(config)] == [
        "workers_alive",
        "worker_memory",
        "queue_depth",
        "errors_budget",
        "restarts_budget",
        "condition_0",
        "condition_up",
    ]


def test_an_override_of_a_condition_by_its_old_name_names_the_new_one() -> None:
    problems = workers_problems(
        conditions=[{"name": "api_success", "condition": "$.success == true"}],
        checks={"api_success": {"severity": "warning"}},
    )
    assert problems == (
        "probe 'pool' (probes[0]): field 'checks': check 'api_success' is now"
        " 'condition_api_success' (renamed in 0.2.0)"
    )


def test_an_override_of_a_condition_check_applies() -> None:
    config = pool_config(
        "http://h:1",
        conditions=[{"name": "api_success", "condition": "$.success == true"}],
        checks={"condition_api_success": {"severity": "warning"}},
    )
    assert config.checks["condition_api_success"].severity is not None


# --- the demo ---------------------------------------------------------------------


DEMO_YAML = """
probes:
  - kind: workers
    name: mcp-threading-demo
    preset: mcp-threading
    url: http://127.0.0.1:{port}
    memory_max: 512MB
"""


async def test_demo_shows_a_stopped_worker_and_one_near_its_limit(
    ctx: ProbeContext, tmp_path: Path
) -> None:
    port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        await demo.start(stack, tmp_path, port=port)
        (config,) = parse_config(DEMO_YAML.format(port=port)).probes
        result = await run_once(config, ctx=ctx)
    assert result.reason is Reason.CHECK
    assert not verdicts(result)["workers_alive"]
    assert "w3" in detail(result, "workers_alive")
    assert verdicts(result)["worker_memory"]
    assert "490.0 MiB (w4)" in detail(result, "worker_memory")


def test_a_limit_may_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUEUE_MAX", "250")
    config = parse_config(
        "probes:\n  - {kind: workers, name: w, preset: mcp-threading,"
        " url: 'http://127.0.0.1:3001', queue_depth_max: '${QUEUE_MAX:-100}',"
        " memory_max: '${WORKER_MAX_MEMORY:-512MB}'}\n"
    ).probes[0]
    assert config.queue_depth_max == (250.0,)  # type: ignore[attr-defined]
    assert config.memory_max == (512 * 1024**2,)  # type: ignore[attr-defined]
