"""CPU needed to carry N tcp probes on an interval: readiness-exporter and
prometheus-blackbox-exporter side by side, in one run.

    .venv/bin/python bench/bench_probes.py [--probes 10000] [--interval 15] [--seconds 60]

Four processes besides this one, so that only the exporters' own CPU is
counted against them:

- a target: plain listening sockets on 127.0.0.1 that accept and close
  (one port per 1,000 probes and side, so neither the accept backlog nor
  the TIME_WAIT 4-tuples run out);
- ours: `readiness-exporter run` with N tcp probes (interval, timeout 5s)
  against the target; it schedules the probes itself;
- the peer: `prometheus-blackbox-exporter` with a `tcp_connect` module;
- a driver: `GET /probe?module=tcp_connect&target=...` to blackbox at the
  same rate, N / interval per second, over a bounded number of keep-alive
  connections. Blackbox has no scheduler: the driver stands in for
  Prometheus, and its CPU is not blackbox's.

After a warm-up of one interval and a half (every probe has run once, and
the window starts between the bursts that our default jitter makes), each
exporter's CPU time (utime + stime
from /proc/<pid>/stat, every thread) is read at the start and the end of the
window. Our /metrics is scraped just before and just after the window (not
inside it): the difference gives the runs done and the scheduler lag; the
second scrape is the one timed. Without blackbox installed only our side is
measured. Everything shares the machine's cores, so the target's and the
driver's CPU is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import http.client
import json
import math
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
PROBES_PER_PORT = 1000
TIMEOUT_SECONDS = 5.0  # or half the interval when that is shorter
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- target: accept and close ---------------------------------------------------


def run_target(ports: int) -> None:
    """Listen on *ports* free ports, print them, accept and close until EOF."""
    selector = selectors.DefaultSelector()
    listeners = []
    for _ in range(ports):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(4096)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        listeners.append(sock)
    selector.register(sys.stdin, selectors.EVENT_READ)
    print(json.dumps([s.getsockname()[1] for s in listeners]), flush=True)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sys.stdin:
                return  # the benchmark closed our stdin: done
            listener = key.fileobj
            assert isinstance(listener, socket.socket)
            while True:
                try:
                    conn, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # EMFILE and the like: try again later
                    break
                conn.close()


# --- driver: blackbox at the probe rate -------------------------------------------


@dataclass
class DriverCounts:
    """What the driver saw since it started."""

    sent: int = 0
    succeeded: int = 0  # 200 with probe_success 1
    probe_failed: int = 0  # 200 with probe_success 0
    errors: int = 0  # no answer in time, or not a 200


async def drive(
    url: str, ports: list[int], rate: float, connections: int, probe_timeout: float
) -> None:
    """Issue probe requests at *rate* until stdin says `stop`.

    `mark` prints the counters (and the answers' p95 since the last mark)
    as a JSON line.
    """
    import aiohttp

    counts = DriverCounts()
    latencies: list[float] = []
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": f"{probe_timeout:g}"}
    timeout = aiohttp.ClientTimeout(total=probe_timeout + 1)
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def one(session: aiohttp.ClientSession, port: int) -> None:
        started = time.perf_counter()
        try:
            async with session.get(
                url,
                params={"module": "tcp_connect", "target": f"127.0.0.1:{port}"},
                headers=headers,
            ) as response:
                body = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            counts.errors += 1
            return
        latencies.append(time.perf_counter() - started)
        if response.status != 200:
            counts.errors += 1
        elif "\nprobe_success 1" in body:
            counts.succeeded += 1
        else:
            counts.probe_failed += 1

    async def pace(session: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        while True:
            due = int((time.monotonic() - started) * rate)
            while counts.sent < due:
                port = ports[counts.sent % len(ports)]
                counts.sent += 1
                task = asyncio.create_task(one(session, port))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.005)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        pacer = asyncio.create_task(pace(session))
        while (line := (await stdin.readline()).decode().strip()) not in ("", "stop"):
            if line == "mark":
                window = sorted(latencies)
                latencies.clear()
                p95 = window[int(0.95 * (len(window) - 1))] if window else None
                print(json.dumps({**counts.__dict__, "p95_seconds": p95}), flush=True)
        pacer.cancel()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(pacer, *tasks, return_exceptions=True)


# --- measuring ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of *pid*, all threads, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident set size of *pid* in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, already in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(
    port: int, path: str, timeout: float = 60
) -> tuple[int, bytes, float, int]:
    """GET with gzip like Prometheus: status, decoded body, seconds, wire bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        started = time.perf_counter()
        conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        wire = len(body)
        if response.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return response.status, body, elapsed, wire
    finally:
        conn.close()


def wait_http(
    port: int, path: str, process: subprocess.Popen[bytes], what: str
) -> float:
    """Seconds until *path* answers 200; raise if *process* exits first."""
    started = time.monotonic()
    while time.monotonic() - started < 120:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if http_get(port, path, timeout=5)[0] == 200:
                return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {path} within 120 s")


@dataclass
class Scrape:
    """The figures we read from one /metrics."""

    at: float  # monotonic time the request was sent
    seconds: float  # until the whole (gzip) body arrived
    size: int  # decoded bytes
    wire: int  # bytes sent (gzip)
    runs: float
    failures: float
    lag_buckets: dict[float, float]  # le -> cumulative count
    collect_seconds: float


def scrape(port: int) -> Scrape:
    """Fetch our /metrics and sum what the benchmark needs."""
    at = time.monotonic()
    status, body, seconds, wire = http_get(port, "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    runs = failures = collect = 0.0
    lag: dict[float, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("readiness_probe_runs_total{"):
            runs += float(line.rpartition(" ")[2])
        elif line.startswith("readiness_probe_failures_total{"):
            failures += float(line.rpartition(" ")[2])
        elif line.startswith("readiness_scheduler_lag_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            lag[math.inf if le == "+Inf" else float(le)] = float(
                line.rpartition(" ")[2]
            )
        elif line.startswith("readiness_scrape_collect_seconds "):
            collect = float(line.rpartition(" ")[2])
    return Scrape(at, seconds, len(body), wire, runs, failures, lag, collect)


def quantile(q: float, buckets: dict[float, float]) -> float:
    """`histogram_quantile` over cumulative *buckets* (le -> count)."""
    bounds = sorted(buckets)
    total = buckets[math.inf] if bounds else 0
    if not total:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def lag_text(q: float, buckets: dict[float, float]) -> str:
    value = quantile(q, buckets)
    if math.isnan(value):
        return "n/a"
    finite = [b for b in sorted(buckets) if not math.isinf(b)]
    if finite and value >= finite[-1]:
        return f"> {finite[-1]:g} s"
    return f"{value:.3f} s"


# --- processes --------------------------------------------------------------------


class Processes:
    """Everything started here, stopped in reverse order on exit."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, argv: list[str], log: Path | None = None, pipes: bool = False
    ) -> subprocess.Popen[bytes]:
        out: IO[bytes] | int = subprocess.DEVNULL
        if log is not None:
            out = log.open("wb")
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else out,
            stderr=out if log is not None else None,
        )
        if log is not None and not isinstance(out, int):
            out.close()  # the child has its own copy
        self.started.append((name, process))
        return process

    def stop(self) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                if process.stdin is not None:
                    # The target and the driver leave when stdin closes.
                    with contextlib.suppress(OSError):
                        process.stdin.close()
                else:
                    process.send_signal(signal.SIGTERM)
        for _, process in reversed(self.started):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


@contextlib.contextmanager
def processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.stop()


def mark(driver: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The driver's counters now."""
    assert driver.stdin is not None
    assert driver.stdout is not None
    driver.stdin.write(b"mark\n")
    driver.stdin.flush()
    line = driver.stdout.readline()
    if not line:
        raise RuntimeError("the driver exited")
    counts: dict[str, Any] = json.loads(line)
    return counts


def our_command() -> list[str]:
    script = Path(sys.executable).parent / "readiness-exporter"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "exporter.cli"]


def probe_timeout(args: argparse.Namespace) -> float:
    """5 s, or half the interval when that is shorter (it must be below)."""
    return min(TIMEOUT_SECONDS, float(args.interval) / 2)


def write_configs(
    workdir: Path,
    args: argparse.Namespace,
    our_ports: list[int],
) -> tuple[Path, Path]:
    timeout = probe_timeout(args)
    scheduler = []
    if args.jitter is not None:
        scheduler.append(f"  jitter: {args.jitter}")
    if args.max_concurrency is not None:
        scheduler.append(f"  max_concurrency: {args.max_concurrency}")
    lines = ["scheduler:", *scheduler] if scheduler else []
    lines.append("probes:")
    lines.extend(
        f"  - {{kind: tcp, name: p{i}, host: 127.0.0.1,"
        f" port: {our_ports[i % len(our_ports)]},"
        f" interval: {args.interval:g}s, timeout: {timeout:g}s}}"
        for i in range(args.probes)
    )
    ours = workdir / "readiness.yml"
    ours.write_text("\n".join(lines) + "\n")
    blackbox = workdir / "blackbox.yml"
    blackbox.write_text(
        "modules:\n"
        "  tcp_connect:\n"
        "    prober: tcp\n"
        f"    timeout: {timeout:g}s\n"
        "    tcp:\n"
        "      preferred_ip_protocol: ip4\n"
    )
    return ours, blackbox


# --- the benchmark ------------------------------------------------------------------


@dataclass
class Row:
    name: str
    rate: float
    cpu_percent: float
    runs: int
    failures: int
    rss: float


def print_table(rows: list[Row], expected: float) -> None:
    print()
    print(
        f"{'':24} {'probes/s':>9} {'CPU % 1 core':>13} {'runs done':>10}"
        f" {'failures':>9} {'RSS MB':>7}"
    )
    for r in rows:
        print(
            f"{r.name:24} {r.rate:9.1f} {r.cpu_percent:13.1f} {r.runs:10d}"
            f" {r.failures:9d} {r.rss:7.0f}"
        )
    print(f"{'(asked for)':24} {expected:9.1f}")


def scheduler_text(args: argparse.Namespace) -> str:
    """The jitter and concurrency bound our daemon ran with."""
    from exporter.config import SchedulerConfig

    default = SchedulerConfig()
    jitter = (
        f"jitter {args.jitter:g}"
        if args.jitter is not None
        else f"jitter {default.jitter:g} (default)"
    )
    limit = (
        f"max_concurrency {args.max_concurrency}"
        if args.max_concurrency is not None
        else f"max_concurrency {default.max_concurrency} (default)"
    )
    return f"{jitter}, {limit}"


def bench(args: argparse.Namespace) -> None:
    rate = args.probes / args.interval
    blackbox_path = shutil.which(args.blackbox) or (
        args.blackbox if Path(args.blackbox).exists() else None
    )
    if blackbox_path is None:
        print(
            f"prometheus-blackbox-exporter not found ({args.blackbox}): measuring"
            " readiness-exporter only. To compare, install it (Debian:"
            " apt-get install prometheus-blackbox-exporter) or pass --blackbox PATH."
        )
    ports_per_side = max(1, math.ceil(args.probes / PROBES_PER_PORT))
    me = str(Path(__file__).resolve())
    with tempfile.TemporaryDirectory(prefix="bench-probes-") as tmp, processes() as ps:
        workdir = Path(tmp)
        sides = 2 if blackbox_path else 1
        target = ps.start(
            "target",
            [sys.executable, me, "_target", str(ports_per_side * sides)],
            pipes=True,
        )
        assert target.stdout is not None
        target_ports: list[int] = json.loads(target.stdout.readline())
        our_ports = target_ports[:ports_per_side]
        peer_ports = target_ports[ports_per_side:]
        our_config, blackbox_config = write_configs(workdir, args, our_ports)

        our_port = free_port()
        ours = ps.start(
            "readiness-exporter",
            [
                *our_command(),
                "run",
                "--config",
                str(our_config),
                "--web.listen-address",
                f"127.0.0.1:{our_port}",
            ],
            log=workdir / "readiness.log",
        )
        blackbox: subprocess.Popen[bytes] | None = None
        blackbox_port = 0
        driver: subprocess.Popen[bytes] | None = None
        if blackbox_path is not None:
            blackbox_port = free_port()
            blackbox = ps.start(
                "blackbox",
                [
                    blackbox_path,
                    f"--config.file={blackbox_config}",
                    f"--web.listen-address=127.0.0.1:{blackbox_port}",
                ],
                log=workdir / "blackbox.log",
            )
        try:
            startup = wait_http(our_port, "/-/healthy", ours, "readiness-exporter")
            if blackbox is not None:
                wait_http(blackbox_port, "/metrics", blackbox, "blackbox")
        except RuntimeError:
            for log in sorted(workdir.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[:2000]}", file=sys.stderr)
            raise
        if blackbox is not None:
            driver = ps.start(
                "driver",
                [
                    sys.executable,
                    me,
                    "_driver",
                    f"http://127.0.0.1:{blackbox_port}/probe",
                    ",".join(map(str, peer_ports)),
                    str(rate),
                    str(args.connections),
                    str(probe_timeout(args)),
                ],
                pipes=True,
            )
        print(
            f"{args.probes} tcp probes every {args.interval:g} s"
            f" ({rate:.1f} probes/s), timeout {probe_timeout(args):g} s, target on"
            f" {ports_per_side} port(s) per side; readiness-exporter up in"
            f" {startup:.1f} s; warm-up {1.5 * args.interval:g} s, window"
            f" {args.seconds:g} s",
            flush=True,
        )
        # One interval and a half: every probe has run, and the window starts
        # between two bursts of runs (the jitter spreads first runs over only
        # the first 10 % of the interval by default, and later runs keep that
        # phase), so its edges do not cut through a burst.
        time.sleep(1.5 * args.interval)

        # --- window ---
        first = scrape(our_port)
        watched = {name: p.pid for name, p in ps.started}
        cpu0 = {name: cpu_seconds(pid) for name, pid in watched.items()}
        t0 = time.monotonic()
        busy0 = machine_busy_seconds()
        driven0 = mark(driver) if driver else None
        time.sleep(args.seconds)
        cpu1 = {name: cpu_seconds(pid) for name, pid in watched.items()}
        t1 = time.monotonic()
        busy1 = machine_busy_seconds()
        driven1 = mark(driver) if driver else None
        rss = {name: rss_mb(pid) for name, pid in watched.items()}
        before = cpu_seconds(ours.pid)
        last = scrape(our_port)
        scrape_cpu = cpu_seconds(ours.pid) - before

        window = t1 - t0
        cpu = {n: 100 * (cpu1[n] - cpu0[n]) / window for n in watched}
        span = last.at - first.at
        runs = int(last.runs - first.runs)
        rows = [
            Row(
                "readiness-exporter",
                runs / span,
                cpu["readiness-exporter"],
                runs,
                int(last.failures - first.failures),
                rss["readiness-exporter"],
            )
        ]
        driver_note = ""
        if driven0 is not None and driven1 is not None:
            d = {k: driven1[k] - driven0[k] for k in DriverCounts().__dict__}
            answered = d["succeeded"] + d["probe_failed"]
            rows.append(
                Row(
                    "blackbox (driven)",
                    answered / window,
                    cpu["blackbox"],
                    answered,
                    d["probe_failed"] + d["errors"],
                    rss["blackbox"],
                )
            )
            p95 = driven1["p95_seconds"]
            driver_note = (
                f"blackbox: {d['sent']} requests sent, {d['succeeded']} probe_success"
                f" 1, {d['probe_failed']} probe_success 0, {d['errors']} without an"
                f" answer (timeout or not 200); answer p95 "
                + (f"{p95 * 1000:.1f} ms" if p95 is not None else "n/a")
            )

    lag = {
        le: last.lag_buckets.get(le, 0) - first.lag_buckets.get(le, 0)
        for le in last.lag_buckets
    }
    print_table(rows, rate)
    print()
    for row in rows:
        if row.rate < 0.95 * rate:
            print(
                f"!! {row.name} did not keep up: {row.rate:.0f} of {rate:.0f}"
                " probes/s asked for"
            )
    print(f"readiness-exporter scheduler: {scheduler_text(args)}")
    bounds = ", ".join(f"{b:g}" for b in sorted(lag) if not math.isinf(b))
    print(
        f"readiness-exporter scheduler lag over the window: p50 {lag_text(0.5, lag)},"
        f" p95 {lag_text(0.95, lag)} (buckets {bounds} s)"
    )
    print(
        f"readiness-exporter /metrics: {last.seconds:.3f} s for"
        f" {last.size / 1e6:.1f} MB of text ({last.wire / 1e6:.1f} MB gzip),"
        f" {scrape_cpu:.2f} s CPU"
        f" ({100 * scrape_cpu / args.interval:.1f} % of a core at one scrape per"
        f" {args.interval:g} s, not in the figure above); on the event loop"
        f" {last.collect_seconds:.3f} s; first scrape after warm-up {first.seconds:.3f} s"
    )
    if driver_note:
        print(driver_note)
        print(
            "blackbox has no scheduler: the driver (a separate process) stands in"
            " for Prometheus and issues the probes at the same rate; its CPU is"
            " not counted against blackbox."
        )
    others = ", ".join(f"{n} {cpu[n]:.1f} %" for n in ("target", "driver") if n in cpu)
    busy = 100 * (busy1[0] - busy0[0]) / (busy1[1] - busy0[1])
    print(
        f"also on the machine ({os.cpu_count()} cores, all competing): {others};"
        f" machine busy {busy:.0f} % of all cores over the window"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_target":
        run_target(int(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_driver":
        url, ports, rate, connections, timeout = sys.argv[2:7]
        asyncio.run(
            drive(
                url,
                [int(p) for p in ports.split(",")],
                float(rate),
                int(connections),
                float(timeout),
            )
        )
        return
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument("--probes", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=15, help="seconds")
    parser.add_argument("--seconds", type=float, default=60, help="measurement window")
    parser.add_argument(
        "--jitter",
        type=float,
        default=None,
        help="scheduler.jitter for our config (default: the daemon's own)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        help="scheduler.max_concurrency for our config (default: the daemon's own)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=64,
        help="the driver's connections to blackbox (default 64)",
    )
    parser.add_argument("--blackbox", default=BLACKBOX, help="blackbox binary")
    bench(parser.parse_args())


if __name__ == "__main__":
    main()
