"""The command line: check-config, the deploy gate, and the daemon process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.cli import main
from tests.conftest import free_port
from tests.helpers import wait_for_value


@pytest.fixture
def listener() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def test_check_config_ok_and_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "probes:\n  - {kind: tcp, name: a, host: h, port: 1}\n")
    assert main(["check-config", str(good)]) == 0
    assert "OK, 1 probe in 1 system (default)" in capsys.readouterr().out
    bad = tmp_path / "bad.yml"
    bad.write_text("probes:\n  - {kind: tcp, name: a, host: h, port: 1, timeout: 1m}\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"invalid configuration in {bad}:" in err
    assert "probe 'a' (probes[0]): timeout (60s) must be below interval (30s)" in err


def test_gate_passes_when_everything_is_up(
    tmp_path: Path, listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f"probes:\n  - {{kind: tcp, name: up, host: 127.0.0.1, port: {listener}}}\n",
    )
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "default  up     port_open  critical  yes" in out
    assert "READY (default): score 1.00, Ready for production" in out


def test_gate_fails_on_a_critical_check(
    tmp_path: Path, listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "probes:\n"
        f"  - {{kind: tcp, name: up, host: 127.0.0.1, port: {listener}}}\n"
        f"  - {{kind: tcp, name: down, host: 127.0.0.1, port: {free_port()}}}\n",
    )
    assert main(["check", "--config.file", str(path), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 1
    assert doc["gate"] == (
        "NOT READY (default): critical checks failed: down/port_open"
    )
    assert doc["failing_checks"][0]["reason"] == "connect"
    # The gate and the verdict are one rule.
    assert doc["systems"][0]["verdict"] == "not_ready"


def test_gate_fails_below_the_minimum_score(
    tmp_path: Path, listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # The two probes' port_open checks are one checklist item, passed by
    # one of two: no critical failure (the failing one is a warning), 0.5.
    path = write(
        tmp_path,
        "probes:\n"
        f"  - {{kind: tcp, name: up, host: 127.0.0.1, port: {listener}}}\n"
        f"  - {{kind: tcp, name: down, host: 127.0.0.1, port: {free_port()},"
        " checks: {port_open: {severity: warning}}}\n",
    )
    assert main(["check", "--config", str(path), "--min-score", "0.7"]) == 1
    assert "score 0.50 is below the minimum 0.70" in capsys.readouterr().out
    assert main(["check", "--config", str(path), "--min-score", "0.5"]) == 0
    # Without a minimum the verdict decides: 0.50 is not ready.
    assert main(["check", "--config", str(path)]) == 1


def test_gate_judges_one_system(
    tmp_path: Path, listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "systems: {web: {}, db: {}}\n"
        "probes:\n"
        f"  - {{kind: tcp, name: up, system: web, host: 127.0.0.1, port: {listener}}}\n"
        f"  - {{kind: tcp, name: down, system: db, host: 127.0.0.1,"
        f" port: {free_port()}}}\n",
    )
    assert main(["check", "--config", str(path), "--system", "web"]) == 0
    out = capsys.readouterr().out
    assert "READY (web): score 1.00, Ready for production" in out
    assert "down" not in out  # only the judged system's probes ran
    assert main(["check", "--config", str(path), "--system", "db"]) == 1
    assert "NOT READY (db): critical checks failed: down/port_open" in (
        capsys.readouterr().out
    )
    # The estate is as ready as its worst system.
    assert main(["check", "--config", str(path)]) == 1
    assert "NOT READY (estate)" in capsys.readouterr().out
    assert main(["check", "--config", str(path), "--system", "nope"]) == 2
    assert "no system 'nope'" in capsys.readouterr().err


def test_gate_with_a_broken_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "probes:\n  - {kind: tcp, name: a}\n")
    assert main(["check", "--config", str(path)]) == 2
    assert "field 'host': required field is missing" in capsys.readouterr().err


def _get(url: str) -> tuple[int, str]:
    """Status and body of a GET; status 0 while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


async def _wait_for(url: str, done: str | None = None) -> str:
    """The body of *url* once it answers 200 (and contains *done*)."""
    _, body = await wait_for_value(
        lambda: asyncio.to_thread(_get, url),
        lambda reply: reply[0] == 200 and (done is None or done in reply[1]),
    )
    return body


async def test_daemon_reloads_on_sighup_and_stops_on_sigterm(
    tmp_path: Path, listener: int
) -> None:
    path = write(
        tmp_path,
        f"probes:\n  - {{kind: tcp, name: one, host: 127.0.0.1, port: {listener}}}\n",
    )
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter.cli",
            "run",
            "--config",
            str(path),
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--log.format",
            "json",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_for(f"{base}/-/ready")
        path.write_text(
            path.read_text()
            + f"  - {{kind: tcp, name: two, host: 127.0.0.1, port: {listener}}}\n"
        )
        process.send_signal(signal.SIGHUP)
        await _wait_for(f"{base}/metrics", done='probe="two"')
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    lines = [json.loads(line) for line in process.stderr.read().splitlines() if line]
    messages = [line["msg"] for line in lines]
    assert "configuration reloaded: 2 probes" in messages
    assert "shutting down" in messages
