"""Real Prometheus, Alertmanager and a webhook sink on 127.0.0.1, for tests.

The Debian binaries (`prometheus`, `promtool`, `prometheus-alertmanager`) run
in the foreground from a temp dir, each on a free port, with its log in that
dir. `make test` installs them (scripts/install-system-deps.sh), so a missing
binary raises `ToolMissing`: the caller fails, it does not skip.

    sink = WebhookSink.start()                       # records POST bodies
    am = Alertmanager.start(tmp, am_config, sink.port)
    prom = Prometheus.start(tmp, target, rule_files, am.address)
    prom.query('up')                                 # instant query -> result
    prom.stop(); am.stop(); sink.stop()

Every process is stopped with SIGTERM, then SIGKILL after a grace period, and
waited for; on Linux the kernel also kills it if the test process dies.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

JSON = dict[str, Any]
T = TypeVar("T")

PROMETHEUS = "prometheus"
PROMTOOL = "promtool"
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name, not `alertmanager`
START_TIMEOUT = 30.0
STOP_GRACE = 10.0
_PR_SET_PDEATHSIG = 1


class ToolMissing(RuntimeError):
    """A Debian monitoring binary is not installed."""


def find_tool(name: str) -> str:
    """Path of *name* on PATH, or ToolMissing saying how to get it."""
    found = shutil.which(name)
    if found is None:
        package = "prometheus-alertmanager" if "alertmanager" in name else "prometheus"
        raise ToolMissing(
            f"{name} not found on PATH: install the Debian package {package}"
            " (`make test` does it via scripts/install-system-deps.sh)"
        )
    return found


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2
) -> T:
    """Poll *probe* until it returns something other than None or False.

    Raises AssertionError naming *what* after *timeout* seconds; errors from
    the probe count as "not yet" (the server may still be starting).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value is not None and value is not False:
                return value
        except (OSError, ValueError, KeyError) as error:
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.0f}s: {what}{detail}")
        time.sleep(interval)


def http_get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def http_post_json(url: str, payload: Any, timeout: float = 5.0) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status: int = response.status
        return status


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies first."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# --- processes --------------------------------------------------------------------


@dataclass
class ManagedProcess:
    """A child process with its log file; stop() always reaps it."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def spawn(
        cls,
        name: str,
        argv: list[str],
        log: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> ManagedProcess:
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        return cls(name, process, log)

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Ask nicely, then SIGKILL after STOP_GRACE; always wait."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()

    def wait_ready(self, url: str, timeout: float = START_TIMEOUT) -> None:
        """Until GET *url* answers 200; fails early (with the log) if it exits."""

        def ready() -> bool:
            if not self.running():
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}"
                )
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)

        try:
            wait_for(ready, timeout, f"{self.name} ready at {url}")
        except AssertionError as error:
            raise AssertionError(f"{error}; its log ends:\n{self.log_tail()}") from None


# --- webhook sink -----------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One webhook POST as Alertmanager sent it."""

    path: str
    body: JSON

    def alerts(self) -> list[JSON]:
        alerts: list[JSON] = self.body.get("alerts", [])
        return alerts


@dataclass
class WebhookSink:
    """An http.server thread on 127.0.0.1 recording every POST body by path."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    received: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls) -> WebhookSink:
        sink: WebhookSink

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with sink.lock:
                    sink.received.append(Notification(self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the recorded notifications are the log."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        sink = cls(server, thread)
        thread.start()
        return sink

    @property
    def port(self) -> int:
        port: int = self.server.server_address[1]
        return port

    def notifications(self, path: str | None = None) -> list[Notification]:
        with self.lock:
            return [n for n in self.received if path is None or n.path == path]

    def alerts(self, path: str) -> list[JSON]:
        """Every alert of every notification POSTed to *path*."""
        return [alert for n in self.notifications(path) for alert in n.alerts()]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=STOP_GRACE)


# --- config files -----------------------------------------------------------------


def write_rules_without_for(sources: Iterable[Path], dest_dir: Path) -> list[Path]:
    """Copies of the rule files with every `for:` set to 0s; thresholds unchanged.

    The shipped `for:` durations (minutes to hours) would keep alerts pending
    far longer than a test may run; the expressions are what is under test.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(sources):
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
        for group in document.get("groups", []):
            for rule in group.get("rules", []):
                if "for" in rule:
                    rule["for"] = "0s"
        target = dest_dir / source.name
        target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        written.append(target)
    return written


def _rewrite_webhook_url(url: str, port: int) -> str:
    """The same path on the sink at 127.0.0.1:*port*."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


def _shorten_route_timers(route: JSON, interval: str, root: bool = True) -> None:
    """group_wait/group_interval set to *interval* on the root route (always)
    and on every child route that overrides them."""
    for key in ("group_wait", "group_interval"):
        if root or key in route:
            route[key] = interval
    for child in route.get("routes") or []:
        _shorten_route_timers(child, interval, root=False)


def write_alertmanager_config(
    source: Path, dest: Path, sink_port: int, interval: str = "1s"
) -> JSON:
    """*source* with webhooks pointing at the sink and grouping timers shortened.

    Routes, receivers and inhibit rules are kept as shipped.
    """
    config: JSON = yaml.safe_load(source.read_text(encoding="utf-8"))
    for receiver in config.get("receivers", []):
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = _rewrite_webhook_url(webhook["url"], sink_port)
    _shorten_route_timers(config["route"], interval)
    dest.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return config


def write_prometheus_config(
    dest: Path,
    job: str,
    target: str,
    rule_files: Iterable[Path],
    alertmanager: str,
    interval: str = "1s",
) -> None:
    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": [str(path) for path in rule_files],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]
        },
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
        ],
    }
    dest.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


# --- servers ----------------------------------------------------------------------


@dataclass
class Alertmanager:
    """prometheus-alertmanager on 127.0.0.1 with gossip off."""

    process: ManagedProcess
    port: int

    @classmethod
    def start(cls, workdir: Path, config: Path) -> Alertmanager:
        binary = find_tool(ALERTMANAGER)
        port = free_port()
        storage = workdir / "alertmanager-data"
        storage.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # empty: no gossip port, no peers
        ]
        process = ManagedProcess.spawn(ALERTMANAGER, argv, workdir / "alertmanager.log")
        manager = cls(process, port)
        try:
            process.wait_ready(f"{manager.url}/-/ready")
        except BaseException:
            process.stop()
            raise
        return manager

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def alerts(self, **matchers: str) -> list[JSON]:
        """GET /api/v2/alerts (inhibited and silenced included) filtered by label."""
        query = [("filter", f'{k}="{v}"') for k, v in matchers.items()]
        url = f"{self.url}/api/v2/alerts?" + urllib.parse.urlencode(query)
        alerts: list[JSON] = http_get_json(url)
        return alerts

    def stop(self) -> None:
        self.process.stop()


@dataclass
class Prometheus:
    """prometheus on 127.0.0.1 with a temp TSDB; the HTTP API as methods."""

    process: ManagedProcess
    port: int

    @classmethod
    def start(cls, workdir: Path, config: Path) -> Prometheus:
        binary = find_tool(PROMETHEUS)
        port = free_port()
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ]
        process = ManagedProcess.spawn(PROMETHEUS, argv, workdir / "prometheus.log")
        server = cls(process, port)
        try:
            process.wait_ready(f"{server.url}/-/ready")
        except BaseException:
            process.stop()
            raise
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        """`data` of a GET on the HTTP API; ValueError when status is not success."""
        query = urllib.parse.urlencode(params)
        answer = http_get_json(f"{self.url}/api/v1/{path}?{query}")
        if answer.get("status") != "success":
            raise ValueError(f"{path} {params}: {answer}")
        return answer["data"]

    def query(self, expr: str) -> list[JSON]:
        """Result vector (or scalar as a one-item list) of an instant query."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[JSON] = data["result"]
        return result

    def targets(self) -> list[JSON]:
        targets: list[JSON] = self.api("targets")["activeTargets"]
        return targets

    def alerts(self) -> list[JSON]:
        alerts: list[JSON] = self.api("alerts")["alerts"]
        return alerts

    def stop(self) -> None:
        self.process.stop()


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    """`promtool check metrics` on *text* (stdin), output captured."""
    return subprocess.run(
        [find_tool(PROMTOOL), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
