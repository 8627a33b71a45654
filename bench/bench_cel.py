"""What a CEL condition costs per run, for each CEL library installed.

    .venv/bin/python bench/bench_cel.py [--runs 2000]

The project uses `cel-expr-python` (Google's cel-cpp, type-checked at
config load); install `common-expression-language` (Rust cel-interpreter)
or `cel-python` (pure Python) beside it, in a scratch venv, to compare.
For each library it prints the import time, the compile time of each
expression, and the time of one run: building the `body` from a realistic
reply (a queue-keyed jobs endpoint, a health reply with a dependency map, a
worker pool), then evaluating the seven expressions on it, as a probe run
does. Figures are microseconds, median of `--runs` repeats.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

# Queue-keyed jobs metrics (checklist 002), a health reply with a map of
# dependencies (003/004), an MCP worker pool (000): one reply, as a body.
BODY: dict[str, Any] = {
    "status": "healthy",
    "version": "2.4.1",
    "dependencies": {
        "postgres": "up",
        "redis": "up",
        "minio": "up",
        "pdf-worker": "up",
    },
    "pool": {"inUse": 7, "size": 10, "waiting": 0},
    "queues": {
        name: {
            "waiting": 4 + i,
            "active": 2,
            "completed": 310,
            "failed": 3,
            "delayed": 0,
            "maxSize": 1000,
            "workers": 3,
        }
        for i, name in enumerate(
            ["pdf-processing", "calendar-sync", "email", "thumbnails", "ocr"]
        )
    },
    "workers": [
        {
            "id": f"w{n}",
            "state": "RUNNING",
            "memoryUsage": {"heapUsed": 190840832, "rss": 232783872},
            "memoryLimitMb": 512,
            "restartCount": 0,
        }
        for n in range(8)
    ],
}

EXPRESSIONS = (
    'body.status == "healthy"',
    'body.dependencies.all(k, body.dependencies[k] == "up")',
    "body.pool.inUse / body.pool.size < 0.8",
    "body.queues.all(q, body.queues[q].waiting < body.queues[q].maxSize)",
    'body.workers.all(w, w.state in ["RUNNING", "IDLE", "BUSY"])',
    "body.workers.all(w, w.memoryUsage.heapUsed < w.memoryLimitMb * 1048576.0)",
    'body.version.startsWith("2.") && body.version.matches("^[0-9]+[.][0-9]+")',
)


def doubles(value: Any) -> Any:
    """JSON numbers as doubles, as blackbox_exporter's CEL sees them (the
    conversion of exporter.probes.shared.cel.json_doubles, copied so that
    the comparison runs in a venv that has only the CEL libraries)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: doubles(v) for k, v in value.items()}
    if isinstance(value, list):
        return [doubles(v) for v in value]
    return value


def median_us(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def load(module: str) -> tuple[Any, float] | None:
    started = time.perf_counter()
    try:
        loaded = importlib.import_module(module)
    except ImportError:
        return None
    return loaded, time.perf_counter() - started


def bench_cel_expr_python(runs: int, text: str) -> None:
    found = load("cel_expr_python.cel")
    if found is None:
        print("cel-expr-python: not installed")
        return
    cel, imported = found
    env = cel.NewEnv(variables={"body": cel.Type.DYN})
    compile_us = [
        median_us(functools.partial(env.compile, e), runs // 10) for e in EXPRESSIONS
    ]
    programs = [env.compile(e) for e in EXPRESSIONS]

    def run() -> list[Any]:
        activation = env.Activation({"body": doubles(json.loads(text))})
        return [p.eval(activation).value() for p in programs]

    assert run() == [True] * len(EXPRESSIONS), run()
    report("cel-expr-python", imported, compile_us, median_us(run, runs))


def bench_common_expression_language(runs: int, text: str) -> None:
    found = load("cel")
    if found is None:
        print("common-expression-language: not installed")
        return
    cel, imported = found
    compile_us = [
        median_us(functools.partial(cel.compile, e), runs // 10) for e in EXPRESSIONS
    ]
    programs = [cel.compile(e) for e in EXPRESSIONS]

    def run() -> list[Any]:
        context = cel.Context({"body": doubles(json.loads(text))})
        return [p.execute(context) for p in programs]

    assert run() == [True] * len(EXPRESSIONS), run()
    report("common-expression-language", imported, compile_us, median_us(run, runs))


def compile_celpy(env: Any, expression: str) -> Any:
    return env.program(env.compile(expression))


def bench_cel_python(runs: int, text: str) -> None:
    found = load("celpy")
    if found is None:
        print("cel-python: not installed")
        return
    celpy, imported = found
    env = celpy.Environment()
    compile_us = [
        median_us(functools.partial(compile_celpy, env, e), runs // 10)
        for e in EXPRESSIONS
    ]
    programs = [env.program(env.compile(e)) for e in EXPRESSIONS]

    def run() -> list[Any]:
        activation = {"body": celpy.json_to_cel(doubles(json.loads(text)))}
        return [bool(p.evaluate(activation)) for p in programs]

    assert run() == [True] * len(EXPRESSIONS), run()
    report("cel-python", imported, compile_us, median_us(run, runs))


def report(name: str, imported: float, compile_us: list[float], run_us: float) -> None:
    print(
        f"{name:28} import {imported * 1e3:6.1f} ms   compile"
        f" {min(compile_us):7.1f}-{max(compile_us):7.1f} us/expr   run"
        f" {run_us:8.1f} us ({len(EXPRESSIONS)} expressions,"
        f" {run_us / len(EXPRESSIONS):7.1f} us each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    runs = parser.parse_args().runs
    text = json.dumps(BODY)
    print(f"body: {len(text)} bytes of JSON; parse alone", end=" ")
    print(f"{median_us(lambda: json.loads(text), runs):.1f} us")
    bench_cel_expr_python(runs, text)
    bench_common_expression_language(runs, text)
    bench_cel_python(runs, text)


if __name__ == "__main__":
    main()
