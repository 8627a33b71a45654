"""The `workers` probe against a real aiohttp server on 127.0.0.1 whose
status documents the tests change between runs."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from pydantic import ValidationError
from pytest_aiohttp import AiohttpServer

from exporter.config import ConfigError, parse_config
from demo import workers as demo
from exporter.probes import config_adapter, workers as workers_probe
from exporter.probes.base import BaseProbeConfig, ProbeError, ProbeResult, Reason
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.httpclient import SESSION_KEY, new_session
from exporter.probes.workers import WorkersConfig, plan, probe
from exporter.probes.workers_presets import WORKER_STATES
from exporter.runner import run_probe

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
        self.seen_authorization: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen_authorization.append(request.headers.get("Authorization", ""))
        path = request.path
        if path == "/hang":
            await asyncio.sleep(30)
        if path == "/huge":
            return await self._stream_huge(request)
        status = self.status_codes.get(path, 200)
        if path in self.raw:
            return web.Response(body=self.raw[path], status=status)
        if path in self.documents:
            return web.json_response(self.documents[path], status=status)
        return web.json_response({"error": "not found"}, status=404)

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


@pytest.fixture
async def base_url(api: StatusApi, aiohttp_server: AiohttpServer) -> str:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", api.handle)
    server = await aiohttp_server(app, host="127.0.0.1", port=0)
    return f"http://127.0.0.1:{server.port}"


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
    raw: dict[str, Any] = {"kind": "workers", "name": "pool", "timeout": 2}
    raw.update(fields)
    config: BaseProbeConfig = config_adapter().validate_python(raw)
    assert isinstance(config, WorkersConfig)
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
        "memory_limit": "512MB",
        "queue_depth_max": 10,
        "errors_budget": 5,
        "restarts_budget": 1,
    }
    return make(**{**defaults, **fields})


def verdicts(result: ProbeResult) -> dict[str, bool]:
    return {check.name: check.passed for check in result.checks}


def detail(result: ProbeResult, name: str) -> str:
    return next(c.detail for c in result.checks if c.name == name)


def sample(result: ProbeResult, name: str, **labels: str) -> float:
    wanted = tuple(sorted(labels.items()))
    for s in result.samples:
        if s.name == name and tuple(sorted(s.labels)) == wanted:
            return s.value
    raise AssertionError(f"no sample {name}{labels} in {result.samples}")


# --- healthy and unhealthy workers ------------------------------------------------


async def test_healthy_pool_passes_every_check(
    base_url: str, ctx: ProbeContext
) -> None:
    result = await run_probe(pool_config(base_url), ctx)
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
    assert sample(result, "workers_memory_limit_bytes") == 512 * MIB
    assert sample(result, "workers_queue_depth") == 3


async def test_memory_limit_gauge_only_with_a_limit(
    base_url: str, ctx: ProbeContext
) -> None:
    result = await run_probe(pool_config(base_url, memory_limit=None), ctx)
    assert result.success, result.error
    assert "workers_memory_limit_bytes" not in {s.name for s in result.samples}


async def test_a_document_over_a_mebibyte_is_parsed_and_judged(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    # Big enough to be parsed off the event loop.
    api.documents[STATUS] = pool_document(count=8000)
    config = pool_config(base_url, max_body_bytes=8 * MIB, queue_depth_max=None)
    result = await run_probe(config, ctx)
    assert result.success, result.error
    assert sample(result, "workers_reported") == 8000


async def test_stopped_worker_fails_alive_and_keeps_its_series(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url)
    assert (await run_probe(config, ctx)).success
    api.documents[STATUS]["data"]["workers"][1]["state"] = "STOPPED"
    result = await run_probe(config, ctx)
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
    result = await run_probe(pool_config(base_url), ctx)
    assert not verdicts(result)["workers_alive"]
    assert "'REBALANCING' is not in map" in detail(result, "workers_alive")
    with pytest.raises(AssertionError):
        sample(result, "workers_value", field="state", item="w1")

    mapping = copy.deepcopy(POOL_MAPPING)
    mapping["values"]["state"]["map_default"] = 1
    result = await run_probe(pool_config(base_url, mappings={"workers": mapping}), ctx)
    assert verdicts(result)["workers_alive"]
    assert sample(result, "workers_value", field="state", item="w1") == 1


async def test_memory_over_the_limit_fails_worker_memory(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[STATUS]["data"]["workers"][2] = pool_worker("w3", heap_mib=600)
    result = await run_probe(pool_config(base_url, memory_limit="512MB"), ctx)
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
        result = await run_probe(config, ctx)
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
        result = await run_probe(config, ctx)
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
        passed.append(verdicts(await run_probe(config, ctx))["errors_budget"])
    # +3 and +3 are each within budget, but +6 within the hour is not.
    assert passed == [True, True, False]


async def test_conditions_become_checks(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    conditions = [{"name": "api_success", "condition": "$.success == true"}]
    config = pool_config(base_url, conditions=conditions)
    assert verdicts(await run_probe(config, ctx))["api_success"]
    api.documents[STATUS]["success"] = False
    result = await run_probe(config, ctx)
    assert not verdicts(result)["api_success"]
    assert result.reason is Reason.CHECK


async def test_max_items_caps_the_series_not_the_judgement(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[STATUS] = pool_document(count=30)
    api.documents[STATUS]["data"]["workers"][29]["state"] = "ERROR"
    mapping = dict(POOL_MAPPING, max_items=5)
    result = await run_probe(pool_config(base_url, mappings={"workers": mapping}), ctx)
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
    result = await run_probe(pool_config(base_url, bearer_token_file=token_file), ctx)
    assert api.seen_authorization[-1] == "Bearer s3cr3t-token"
    assert result.reason is Reason.AUTH
    assert "s3cr3t" not in result.error
    assert "s3cr3t" not in repr(result.checks)


async def test_headers_are_sent_and_secret_in_the_config(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url, headers={"Authorization": "Token k3y"})
    assert "k3y" not in repr(config)
    assert (await run_probe(config, ctx)).success
    assert api.seen_authorization[-1] == "Token k3y"


def test_header_with_a_newline_is_a_config_error() -> None:
    with pytest.raises(ValidationError) as caught:
        pool_config("http://h:1", headers={"X-Key": "a\r\nX-Evil: 1"})
    assert "contains a newline" in str(caught.value)


async def test_https_verifies_against_ca_file_or_fails_with_tls(
    api: StatusApi, aiohttp_server: AiohttpServer, ctx: ProbeContext, tmp_path: Path
) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", api.handle)
    server = await aiohttp_server(app, host="127.0.0.1", port=0, ssl=server_context)
    url = f"https://127.0.0.1:{server.port}"
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))

    assert (await run_probe(pool_config(url), ctx)).reason is Reason.TLS
    assert (await run_probe(pool_config(url, ca_file=ca_file), ctx)).success
    insecure = pool_config(url, insecure_skip_verify=True)
    assert (await run_probe(insecure, ctx)).success


# --- presets ----------------------------------------------------------------------


async def test_mcp_threading_preset_reads_the_single_thread_api(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[STATUS] = single_thread_document()
    config = make(preset="mcp-threading", url=base_url)
    result = await run_probe(config, ctx)
    assert result.success, result.error
    assert verdicts(result) == {
        "workers_alive": True,
        "queue_depth": True,
        "errors_budget": True,
        "restarts_budget": True,
    }
    assert sample(result, "workers_value", field="state", item="workers") == 1
    assert sample(result, "workers_memory_bytes", item="workers") == 40 * MIB
    assert sample(result, "workers_queue_depth") == 2
    assert sample(result, "workers_errors_total") == 1

    api.documents[STATUS] = single_thread_document(running=False)
    result = await run_probe(config, ctx)
    assert result.reason is Reason.CHECK
    assert not verdicts(result)["workers_alive"]


async def test_mcp_threading_preset_reads_the_pool_form(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.documents[STATUS]["data"]["workers"][2]["state"] = "STOPPED"
    result = await run_probe(make(preset="mcp-threading", url=base_url), ctx)
    assert not verdicts(result)["workers_alive"]
    assert sample(result, "workers_reported") == 3
    assert sample(result, "workers_value", field="state", item="w3") == 0


async def test_bullmq_preset_reads_queue_counts(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    config = make(preset="bullmq-jobs-endpoint", url=base_url)
    result = await run_probe(config, ctx)
    assert result.success, result.error
    assert set(verdicts(result)) == {"workers_alive", "queue_depth", "errors_budget"}
    assert all(verdicts(result).values())
    assert sample(result, "workers_value", field="waiting", item="pdf-processing") == 4
    assert sample(result, "workers_queue_depth") == 4
    assert sample(result, "workers_errors_total") == 6

    api.documents[JOBS]["queues"][1]["workers"] = 0
    api.documents[JOBS]["queues"][0]["counts"]["waiting"] = 5000
    result = await run_probe(config, ctx)
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
        memory_limit="64MB",
    )
    # Everything else still comes from the preset.
    assert config.mappings["workers"].values["state"].map == WORKER_STATES
    assert config.alive_field == "state"
    result = await run_probe(config, ctx)
    assert verdicts(result)["workers_alive"]
    assert not verdicts(result)["worker_memory"]


def test_preset_can_drop_a_check_with_null() -> None:
    config = make(
        preset="mcp-threading", url="http://127.0.0.1:1", queue_depth_max=None
    )
    names = [spec.name for spec in plan(config)]
    assert "queue_depth" not in names
    assert "workers_alive" in names


# --- replies that cannot be judged ------------------------------------------------


async def test_malformed_json_is_a_protocol_failure_naming_the_endpoint(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.raw[STATUS] = b'{"success": true, "data": {"workers": [}'
    result = await run_probe(pool_config(base_url), ctx)
    assert result.reason is Reason.PROTOCOL
    assert "endpoint status" in result.error
    assert "not JSON" in result.error
    assert all(not c.passed for c in result.checks)


async def test_non_2xx_is_a_protocol_failure(
    api: StatusApi, base_url: str, ctx: ProbeContext
) -> None:
    api.status_codes[STATUS] = 503
    result = await run_probe(pool_config(base_url), ctx)
    assert result.reason is Reason.PROTOCOL
    assert "endpoint status" in result.error
    assert "HTTP 503" in result.error


async def test_50_mb_body_is_capped_with_bounded_memory(
    base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(base_url, endpoints={"status": "/huge"})
    tracemalloc.start()
    try:
        result = await run_probe(config, ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.reason is Reason.PROTOCOL
    assert "max_body_bytes" in result.error
    assert peak < 16 * MIB


async def test_a_redirect_is_not_followed_and_names_the_endpoint(
    api: StatusApi, base_url: str, ctx: ProbeContext, aiohttp_server: AiohttpServer
) -> None:
    elsewhere = StatusApi()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", elsewhere.handle)
    other = await aiohttp_server(app, host="127.0.0.1", port=0)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{other.port}{STATUS}")

    redirecting = web.Application()
    redirecting.router.add_get("/{tail:.*}", moved)
    first = await aiohttp_server(redirecting, host="127.0.0.1", port=0)
    config = pool_config(f"http://127.0.0.1:{first.port}", headers={"X-API-Key": "k3y"})
    result = await run_probe(config, ctx)
    assert result.reason is Reason.PROTOCOL
    assert "endpoint status" in result.error
    assert "HTTP 302 redirect" in result.error
    assert elsewhere.seen_authorization == [], "the API key must not travel"


async def test_a_spent_budget_is_a_timeout_naming_the_endpoint(
    base_url: str, ctx: ProbeContext
) -> None:
    # aiohttp reads ClientTimeout(total<=0) as "no timeout": a spent budget
    # must end the run as our own timeout, not as an unbounded request.
    config = pool_config(base_url)
    session = ctx.shared(SESSION_KEY, new_session)
    with pytest.raises(ProbeError) as caught:
        await workers_probe._fetch(
            session, config, "status", {}, time.perf_counter() - 0.001
        )
    assert caught.value.instance_reason is Reason.TIMEOUT
    assert "endpoint status" in str(caught.value)


def unused_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_is_a_connect_failure(ctx: ProbeContext) -> None:
    port = unused_port()
    result = await run_probe(pool_config(f"http://127.0.0.1:{port}"), ctx)
    assert result.reason is Reason.CONNECT
    assert all(not c.passed for c in result.checks)


async def test_hanging_endpoint_is_a_timeout(base_url: str, ctx: ProbeContext) -> None:
    config = pool_config(base_url, endpoints={"status": "/hang"}, timeout=0.5)
    result = await asyncio.wait_for(run_probe(config, ctx), 5)
    assert result.reason is Reason.TIMEOUT


async def test_hanging_endpoint_is_named_before_the_run_times_out(
    base_url: str, ctx: ProbeContext
) -> None:
    config = pool_config(
        base_url, endpoints={"status": STATUS, "stuck": "/hang"}, timeout=0.5
    )
    # The probe itself, under the runner's deadline: its own request budget
    # must end first, with an error that says which endpoint hung.
    with pytest.raises(ProbeError) as caught:
        async with asyncio.timeout(config.timeout):
            await probe(config, ctx)
    assert caught.value.instance_reason is Reason.TIMEOUT
    assert "endpoint stuck" in str(caught.value)


# --- config errors ----------------------------------------------------------------


def config_errors(probe_yaml: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config("probes:\n" + probe_yaml)
    return str(caught.value)


def test_bad_json_path_is_named_in_the_config_error() -> None:
    message = config_errors(
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
    assert "probe 'pool'" in message
    assert "mappings.workers.items" in message
    assert "invalid JSON path" in message


def test_credentials_in_the_url_are_a_config_error_naming_bearer_token() -> None:
    message = config_errors(
        """
  - kind: workers
    name: pool
    url: http://ops:pa55word@127.0.0.1:3001
    endpoints: {status: /status}
"""
    )
    assert "set bearer_token" in message
    assert "pa55word" not in message


def test_unknown_preset_lists_the_known_ones() -> None:
    message = config_errors(
        """
  - kind: workers
    name: pool
    preset: sidekiq
    url: http://127.0.0.1:3001
"""
    )
    assert "unknown preset 'sidekiq'" in message
    assert "bullmq-jobs-endpoint, mcp-threading" in message


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"memory_limit": "lots"}, "invalid size 'lots'"),
        ({"alive_field": "nope"}, "alive_field 'nope' is not a mapped value"),
        ({"url": "ftp://host/x"}, "must be http:// or https://"),
        ({"endpoints": {"status": "api/x"}}, "must be a path under url"),
        (
            {"conditions": [{"name": "workers_alive", "condition": "$.a exists"}]},
            "already a check name",
        ),
    ],
)
def test_config_mistakes_say_what_to_write(
    fields: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        pool_config("http://127.0.0.1:3001", **fields)
    assert expected in str(caught.value)


def test_memory_limit_accepts_bytes_and_units() -> None:
    assert pool_config("http://h:1", memory_limit=1000).memory_limit == 1000
    assert pool_config("http://h:1", memory_limit="512MB").memory_limit == 512 * MIB


# --- the demo ---------------------------------------------------------------------


DEMO_YAML = """
probes:
  - kind: workers
    name: mcp-threading-demo
    preset: mcp-threading
    url: http://127.0.0.1:{port}
    memory_limit: 512MB
"""


async def test_demo_shows_a_stopped_worker_and_one_near_its_limit(
    ctx: ProbeContext, tmp_path: Path
) -> None:
    free_port = unused_port()
    async with contextlib.AsyncExitStack() as stack:
        await demo.start(stack, tmp_path, port=free_port)
        (config,) = parse_config(DEMO_YAML.format(port=free_port)).probes
        result = await run_probe(config, ctx)
    assert result.reason is Reason.CHECK
    assert not verdicts(result)["workers_alive"]
    assert "w3" in detail(result, "workers_alive")
    assert verdicts(result)["worker_memory"]
    assert "490.0 MiB (w4)" in detail(result, "worker_memory")
