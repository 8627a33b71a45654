"""`make run`: the demo estate and the daemon, as a user starts them."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import demo_environment, free_port

ROOT = Path(__file__).resolve().parent.parent


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo running from the repository root; yields its base URL."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("demo")
    # demo.yml names paths under .demo/; run in a copy of the repo layout.
    (workdir / "config").mkdir()
    (workdir / "config" / "demo.yml").write_text(
        (ROOT / "config" / "demo.yml").read_text()
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "demo",
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # Free ports for the estate: a `make run` may hold the defaults.
        env={**demo_environment(), "PYTHONPATH": str(ROOT)},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                _get(f"{base}/-/ready")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "the demo never became ready:\n"
                        + (process.stderr.read() if process.stderr else "")
                    ) from None
                time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_status_page_shows_passing_and_failing_checks(demo: str) -> None:
    doc = json.loads(_get(f"{demo}/api/v1/status"))
    failing = {(c["probe"], c["check"]) for c in doc["failing_checks"]}
    # Failing on purpose: see config/demo.yml.
    assert ("frontend", "hsts_header") in failing
    assert ("api-cert", "cert_expiry_warning") in failing
    assert ("mcp-threading", "workers_alive") in failing
    assert ("postgres-backups", "backup_fresh") in failing
    assert ("energy-meter", "values_in_range") in failing
    passing = {
        (p["name"], c["check"])
        for system in doc["systems"]
        for p in system["probes"]
        for c in p.get("checks", [])
        if c["passed"]
    }
    assert ("api-health", "status_ok") in passing
    assert ("api-cert", "chain_verifies") in passing
    assert ("mongodb-backups", "backup_integrity") in passing
    assert ("energy-meter", "device_answers") in passing
    page = _get(f"{demo}/")
    assert "hsts_header" in page
    assert "cert_expiry_warning" in page


def test_metrics_cover_every_probe(demo: str) -> None:
    text = _get(f"{demo}/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    probes = {s.labels["probe"] for s in families["readiness_probe_success"].samples}
    systems = json.loads(_get(f"{demo}/api/v1/status"))["systems"]
    assert probes == {p["name"] for s in systems for p in s["probes"]}
    assert families["readiness_score_ratio"].samples[0].value < 0.9


def test_the_demo_does_not_ship_in_the_runtime_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = [
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").exists()
        and any(fnmatch.fnmatchcase(path.name, pattern) for pattern in include)
    ]
    assert shipped == ["exporter"]
    assert (ROOT / "demo" / "__main__.py").exists()
    assert importlib.util.find_spec("exporter.demo") is None
