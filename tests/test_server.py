"""The HTTP app: metrics, status page and JSON, health, readiness, reload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from exporter.config import load_config
from exporter.server import Daemon, make_app
from tests.kinds import scripted_kind

Served = tuple[Daemon, TestClient[Any, Any], Path]

GOOD = """
scheduler: {jitter: 0}
probes:
  - {kind: scripted, name: api, interval: 10, timeout: 1}
  - {kind: scripted, name: db, behaviour: fail_critical, interval: 10, timeout: 1}
"""


@pytest.fixture
async def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aiohttp_client: AiohttpClient
) -> AsyncIterator[Served]:
    path = tmp_path / "config.yml"
    path.write_text(GOOD)
    with scripted_kind(monkeypatch):
        daemon = Daemon(load_config(path))
        client = await aiohttp_client(make_app(daemon))
        yield daemon, client, path
        await daemon.stop()


async def test_ready_only_after_every_probe_ran(served: Served) -> None:
    daemon, client, _ = served
    response = await client.get("/-/ready")
    assert response.status == 503
    assert "2 probes have not run yet" in await response.text()
    await daemon.scheduler.run_all_once()
    assert (await client.get("/-/ready")).status == 200
    assert (await client.get("/-/healthy")).status == 200


async def test_metrics_in_both_formats(served: Served) -> None:
    daemon, client, _ = served
    await daemon.scheduler.run_all_once()
    response = await client.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {f.name for f in text_string_to_metric_families(await response.text())}
    assert {
        "readiness_probe_success",
        "readiness_check_passed",
        "readiness_score_ratio",
        "process_cpu_seconds",
    } <= names
    response = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await response.text()).endswith("# EOF\n")


async def test_status_page_lists_failing_checks_first(served: Served) -> None:
    daemon, client, _ = served
    await daemon.scheduler.run_all_once()
    page = await (await client.get("/")).text()
    assert "<h1>Production readiness</h1>" in page
    failing = page.index("Failing checks")
    assert page.index(">alive<", failing) < page.index("<h3>Probes</h3>")
    # A failing critical check: not ready, whatever the score (0.73 here).
    assert "Not ready" in page
    # No external assets: no scripts, stylesheets or images fetched.
    assert not any(tag in page for tag in ("<script", "<link", "<img", "src="))
    doc = await (await client.get("/api/v1/status")).json()
    assert doc["failing_checks"][0]["probe"] == "db"
    assert doc["failing_checks"][0]["check"] == "alive"
    assert doc["estate"]["verdict"] == "not_ready"
    (system,) = doc["systems"]
    assert system["name"] == "default"
    assert system["verdict"] == "not_ready"
    assert system["score"] == pytest.approx((0.5 * 0.30 + 1.0 * 0.25) / 0.55)
    assert system["failing_critical"] == ["db/alive"]
    assert {p["name"] for p in system["probes"]} == {"api", "db"}
    assert doc["all_probes_ran"] is True


async def test_reload_valid_then_invalid(served: Served) -> None:
    daemon, client, path = served
    path.write_text(
        GOOD + "  - {kind: scripted, name: new, interval: 10, timeout: 1}\n"
    )
    response = await client.post("/-/reload")
    assert response.status == 200
    assert set(daemon.scheduler.records) == {"api", "db", "new"}

    path.write_text("probes:\n  - {kind: scripted, name: x, colour: red}\n")
    response = await client.post("/-/reload")
    assert response.status == 400
    text = await response.text()
    assert "previous configuration keeps running" in text
    assert "probe 'x' (probes[0]): unknown field 'colour'" in text
    # The status page and the API say so until a reload succeeds.
    page = await (await client.get("/")).text()
    assert "last configuration reload was rejected" in page
    assert "unknown field &#x27;colour&#x27;" in page
    doc = await (await client.get("/api/v1/status")).json()
    assert doc["config"]["last_reload_successful"] is False
    assert any("colour" in p for p in doc["config"]["last_reload_problems"])
    assert set(daemon.scheduler.records) == {"api", "db", "new"}
    metrics = await (await client.get("/metrics")).text()
    assert "readiness_config_last_reload_successful 0" in metrics
    assert "readiness_config_reload_failures_total 1" in metrics
    assert (await client.get("/-/reload")).status == 405


async def test_reload_refuses_other_origins(served: Served) -> None:
    _, client, _ = served
    foreign = await client.post("/-/reload", headers={"Origin": "https://evil.example"})
    assert foreign.status == 403
    own = f"http://{client.server.host}:{client.server.port}"
    assert (await client.post("/-/reload", headers={"Origin": own})).status == 200
