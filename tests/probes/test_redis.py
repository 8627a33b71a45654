"""The redis probe against real, throwaway redis-server processes.

One server for the module (tests/servers/redis.py), with a TLS port as well;
each test starts from its defaults (`reset()`: no password, no maxmemory,
noeviction, AOF off, no client certificates, no data, fresh stats) and changes
settings with CONFIG SET. Only the fault cycles and the no-HELLO server get
processes of their own. Every test closes its probe contexts, so connections
never leak between tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from exporter.config import parse_config
from exporter.kinds import PROBES
from exporter.probes.base import ProbeResult, Reason, Severity
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.redis import RedisConfig
from exporter.probes.redis.connection import CLIENT_NAME
from exporter.probes.redis.hitratio import LookupLedger, ledger_key
from exporter.probes.redis.url import parse_url
from tests.conftest import StartServer, free_port
from tests.helpers import (
    config_problems,
    detail,
    eventually,
    failing,
    probe_config,
    run_once,
    sample,
    verdicts,
    wait_for_value,
)
from tests.servers.redis import BinaryMissing, RedisServer
from tests.servers.tls import server_context as tls_server_context

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-pw-4711"
WRONG_PASSWORD = "wrong-pw-0815"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def shared_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer.start(tls=True)
    except BinaryMissing as missing:
        pytest.skip(str(missing))
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def server(shared_server: RedisServer) -> RedisServer:
    """The module's server, back at its defaults."""
    shared_server.reset()
    return shared_server


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server of the test's own, for killing, stopping and restarting."""
    try:
        server = RedisServer.start()
    except BinaryMissing as missing:
        pytest.skip(str(missing))
    try:
        yield server
    finally:
        server.destroy()


Contexts = Callable[[], ProbeContext]


@pytest.fixture
async def contexts() -> AsyncIterator[Contexts]:
    """Factory of probe contexts, all closed when the test ends; they share
    one `SharedResources`, as the daemon's probes do."""
    made: list[ProbeContext] = []
    shared = SharedResources()

    def make() -> ProbeContext:
        made.append(ProbeContext("cache", shared))
        return made[-1]

    yield make
    for ctx in made:
        await ctx.aclose()
    await shared.aclose()


def redis_config(url: str, **fields: Any) -> RedisConfig:
    """The module's usual probe: name `cache`, timeout 2 s."""
    config: RedisConfig = probe_config("redis", name="cache", url=url, **fields)
    return config


def configure(server: RedisServer, **settings: str) -> None:
    for name, value in settings.items():
        server.command("CONFIG", "SET", name.replace("_", "-"), value)


async def our_clients(server: RedisServer, expected: int) -> list[dict[str, str]]:
    """The server's clients (the asking admin aside) once there are
    *expected*: a connection closed without waiting goes a moment later."""

    async def read() -> list[dict[str, str]]:
        return server.clients()

    return await wait_for_value(read, lambda clients: len(clients) == expected)


def redis_problems(**fields: Any) -> str:
    """The config problems of one redis probe entry with *fields*."""
    entry = {"kind": "redis", "name": "cache", **fields}
    return config_problems(yaml.safe_dump({"probes": [entry]}))


# --- a healthy server and settings -------------------------------------------------


async def test_healthy_server_passes_every_check(
    server: RedisServer, contexts: Contexts
) -> None:
    configure(
        server, maxmemory="64mb", maxmemory_policy="allkeys-lru", appendonly="yes"
    )
    config = redis_config(server.url(), maxmemory_max="2GB")

    result = await run_once(config, ctx=contexts())

    assert result.success, result.error
    assert not failing(result), result.checks
    assert sample(result, "redis_maxmemory_bytes") == 64 * MiB
    assert sample(result, "redis_eviction_policy_info", policy="allkeys-lru") == 1
    assert sample(result, "redis_role_info", role="master") == 1
    assert sample(result, "redis_aof_enabled") == 1
    assert sample(result, "redis_maxclients") == 10000
    assert (sample(result, "redis_memory_used_bytes") or 0) > 0
    assert (sample(result, "redis_connected_clients") or 0) >= 1
    assert sample(result, "redis_connect_seconds") is not None
    assert "RESP3" in detail(result, "reachable")


async def test_a_default_server_fails_the_setting_checks(
    server: RedisServer, contexts: Contexts
) -> None:
    result = await run_once(redis_config(server.url()), ctx=contexts())

    assert result.success  # only warnings fail
    assert failing(result) == {"maxmemory_set", "eviction_policy", "persistence"}
    found = verdicts(result)
    assert found["reachable"]
    assert found["memory_usage_warning"]
    assert found["memory_usage_critical"]
    assert "maxmemory is 0" in detail(result, "maxmemory_set")
    assert "noeviction, expected allkeys-lru" in detail(result, "eviction_policy")
    assert "AOF off" in detail(result, "persistence")
    assert sample(result, "redis_maxmemory_bytes") == 0
    assert sample(result, "redis_eviction_policy_info", policy="noeviction") == 1


@pytest.mark.parametrize(
    ("maxmemory", "limit", "passes"),
    [("3gb", "2GB", False), ("2gb", "2gb", True), ("512mb", 1024**3, True)],
)
async def test_maxmemory_against_maxmemory_max(
    server: RedisServer,
    contexts: Contexts,
    maxmemory: str,
    limit: str | int,
    passes: bool,
) -> None:
    configure(server, maxmemory=maxmemory)
    config = redis_config(server.url(), maxmemory_max=limit)

    result = await run_once(config, ctx=contexts())

    assert verdicts(result)["maxmemory_set"] is passes
    if not passes:
        assert "above maxmemory_max 2.00 GiB" in detail(result, "maxmemory_set")


@pytest.mark.parametrize(
    ("settings", "mode", "passes"),
    [
        ({"appendonly": "yes"}, "aof", True),
        ({"save": "900 1"}, "aof", False),
        ({"save": "900 1"}, "rdb", True),
        ({"appendonly": "yes"}, "rdb", False),
        ({"save": "900 1"}, "any", True),
        ({}, "any", False),
        ({}, "off", True),
        ({"appendonly": "yes"}, "off", False),
    ],
)
async def test_persistence_modes(
    server: RedisServer,
    contexts: Contexts,
    settings: dict[str, str],
    mode: str,
    passes: bool,
) -> None:
    configure(server, **settings)
    config = redis_config(server.url(), persistence=mode)

    result = await run_once(config, ctx=contexts())

    assert verdicts(result)["persistence"] is passes, detail(result, "persistence")


async def used_memory_after_a_run(
    server: RedisServer, config: RedisConfig, ctx: ProbeContext
) -> int:
    """used_memory with 8 MiB of ballast and the probe's connection open."""
    server.command("SET", "ballast", "x" * (8 * MiB))
    await run_once(config, ctx=ctx)  # connect first: our connection uses memory
    return int(server.command("INFO", "memory")["used_memory"])


async def test_memory_usage_warning_then_critical(
    server: RedisServer, contexts: Contexts
) -> None:
    ctx = contexts()
    config = redis_config(server.url())
    used = await used_memory_after_a_run(server, config, ctx)

    configure(server, maxmemory=str(int(used / 0.875)))
    warned = await run_once(config, ctx=ctx)
    configure(server, maxmemory=str(int(used / 0.95)))
    critical = await run_once(config, ctx=ctx)

    assert failing(warned) >= {"memory_usage_warning"}
    assert verdicts(warned)["memory_usage_critical"]
    assert warned.success
    assert "limit 85%" in detail(warned, "memory_usage_warning")
    assert not verdicts(critical)["memory_usage_critical"]
    assert "limit 90%" in detail(critical, "memory_usage_critical")
    assert not critical.success
    assert critical.reason is Reason.CHECK


async def test_memory_ratio_max_fields_set_the_limits(
    server: RedisServer, contexts: Contexts
) -> None:
    ctx = contexts()
    config = redis_config(
        server.url(), memory_ratio_max_warning=0.5, memory_ratio_max_critical=0.6
    )
    used = await used_memory_after_a_run(server, config, ctx)

    configure(server, maxmemory=str(int(used / 0.55)))
    result = await run_once(config, ctx=ctx)

    assert not verdicts(result)["memory_usage_warning"]
    assert "limit 50%" in detail(result, "memory_usage_warning")
    assert verdicts(result)["memory_usage_critical"]
    assert "limit 60%" in detail(result, "memory_usage_critical")
    assert result.success


def seed_half_a_queue(server: RedisServer, queue: str) -> None:
    """4 of the 8 keys the probe reads for *queue* exist: 4 hits, 4 misses."""
    server.command("RPUSH", f"bull:{queue}:wait", "1")
    server.command("RPUSH", f"bull:{queue}:active", "2")
    server.command("ZADD", f"bull:{queue}:failed", "1", "3")
    server.command("HSET", f"bull:{queue}:meta", "opts.maxLenEvents", "10000")


async def test_hit_ratio_is_judged_exactly_above_the_lookups_floor(
    server: RedisServer, contexts: Contexts
) -> None:
    ctx = contexts()
    config = redis_config(server.url())  # floors: 0.80, 100 lookups

    first = await run_once(config, ctx=ctx)
    server.look_up(hits=160, misses=40)
    good = await run_once(config, ctx=ctx)
    server.look_up(hits=90, misses=30)
    poor = await run_once(config, ctx=ctx)
    server.look_up(hits=10, misses=89)
    thin = await run_once(config, ctx=ctx)
    idle = await run_once(config, ctx=ctx)
    server.command("CONFIG", "RESETSTAT")
    reset = await run_once(config, ctx=ctx)

    assert verdicts(first)["hit_ratio"]
    assert detail(first, "hit_ratio") == "first run: baseline taken"
    assert sample(first, "redis_hit_ratio") is None
    assert sample(first, "redis_hit_ratio_lookups") is None
    assert verdicts(good)["hit_ratio"]
    assert sample(good, "redis_hit_ratio") == 0.8
    assert sample(good, "redis_hit_ratio_lookups") == 200
    assert detail(good, "hit_ratio") == (
        "ratio 0.80 (160 hits, 40 misses since the last run), floor 0.80"
    )
    assert not verdicts(poor)["hit_ratio"]
    assert sample(poor, "redis_hit_ratio") == 0.75
    assert poor.success  # an info check
    # 99 lookups, 10 % hits: too few to judge, so neither a failure nor a ratio.
    assert verdicts(thin)["hit_ratio"]
    assert detail(thin, "hit_ratio") == (
        "not enough traffic to judge: 99 lookups since the last run, floor 100"
    )
    assert sample(thin, "redis_hit_ratio") is None
    assert sample(thin, "redis_hit_ratio_lookups") == 99
    assert verdicts(idle)["hit_ratio"]
    assert "0 lookups" in detail(idle, "hit_ratio")
    assert sample(idle, "redis_hit_ratio_lookups") == 0
    assert detail(reset, "hit_ratio") == (
        "counters went back (CONFIG RESETSTAT): new baseline"
    )


async def test_without_hit_ratio_min_the_ratio_is_still_exported(
    server: RedisServer, contexts: Contexts
) -> None:
    ctx = contexts()
    config = redis_config(server.url(), hit_ratio_min=None)

    await run_once(config, ctx=ctx)
    server.look_up(hits=50, misses=50)
    result = await run_once(config, ctx=ctx)

    assert "hit_ratio" not in verdicts(result)
    assert sample(result, "redis_hit_ratio") == 0.5


async def test_hit_ratio_lookups_min_sets_the_floor(
    server: RedisServer, contexts: Contexts
) -> None:
    ctx = contexts()
    config = redis_config(server.url(), hit_ratio_lookups_min=10)

    await run_once(config, ctx=ctx)
    server.look_up(hits=1, misses=9)
    result = await run_once(config, ctx=ctx)

    assert not verdicts(result)["hit_ratio"]
    assert sample(result, "redis_hit_ratio") == pytest.approx(0.1)
    assert redis_problems(url="redis://localhost", hit_ratio_lookups_min=0).endswith(
        "field 'hit_ratio_lookups_min': expected at least 1, got 0"
    )


async def test_a_bullmq_probe_leaves_the_cache_probes_hit_ratio_alone(
    server: RedisServer, contexts: Contexts
) -> None:
    """The issue's quiet server: a cache probe and a BullMQ probe whose reads
    are 4 hits and 4 misses a run. Floor 1 lookup, so that any lookup of
    ours counted as traffic would be judged (as ratio 0.50)."""
    seed_half_a_queue(server, "pdf")
    cache = redis_config(server.url(), hit_ratio_lookups_min=1)
    jobs: RedisConfig = probe_config(
        "redis",
        name="jobs",
        url=server.url(),
        hit_ratio_lookups_min=1,
        bullmq={"queues": [{"name": "pdf"}]},
    )
    cache_ctx, jobs_ctx = contexts(), contexts()

    quiet: list[ProbeResult] = []
    for _ in range(3):
        quiet.append(await run_once(cache, ctx=cache_ctx))
        quiet.append(await run_once(jobs, ctx=jobs_ctx))
    server.look_up(hits=30, misses=10)
    busy_jobs = await run_once(jobs, ctx=jobs_ctx)
    busy_cache = await run_once(cache, ctx=cache_ctx)

    for result in quiet[2:]:
        assert verdicts(result)["hit_ratio"], detail(result, "hit_ratio")
        assert sample(result, "redis_hit_ratio_lookups") == 0
        assert sample(result, "redis_hit_ratio") is None
    assert detail(quiet[2], "hit_ratio") == (
        "not enough traffic to judge: 0 lookups since the last run"
        " (8 of this exporter's own left out), floor 1"
    )
    # Both see the client's 40 lookups, and only those.
    for result in (busy_jobs, busy_cache):
        assert sample(result, "redis_hit_ratio") == 0.75
        assert sample(result, "redis_hit_ratio_lookups") == 40
    # The BullMQ reads are real lookups on the server: other tools see them.
    assert (sample(busy_cache, "redis_keyspace_misses_total") or 0) >= 4 * 4 + 10


async def test_bullmq_probes_of_one_server_leave_each_others_hit_ratio_alone(
    server: RedisServer, contexts: Contexts
) -> None:
    seed_half_a_queue(server, "pdf")
    one: RedisConfig = probe_config(
        "redis",
        name="one",
        url=server.url(),
        hit_ratio_lookups_min=1,
        bullmq={"queues": [{"name": "pdf"}]},
    )
    two: RedisConfig = probe_config(
        "redis",
        name="two",
        url=server.url().removesuffix("/0") + "/1",  # counters are server-wide
        hit_ratio_lookups_min=1,
        bullmq={"queues": [{"name": "mail"}, {"name": "sms"}]},  # 16 misses
    )
    one_ctx, two_ctx = contexts(), contexts()

    results: list[ProbeResult] = []
    for _ in range(3):
        results.append(await run_once(one, ctx=one_ctx))
        results.append(await run_once(two, ctx=two_ctx))

    for result in results[2:]:
        assert verdicts(result)["hit_ratio"], detail(result, "hit_ratio")
        assert sample(result, "redis_hit_ratio_lookups") == 0
    assert "(24 of this exporter's own left out)" in detail(results[2], "hit_ratio")


async def test_probes_of_one_server_running_at_once_count_only_others_lookups(
    server: RedisServer, contexts: Contexts
) -> None:
    """Three BullMQ probes and a cache probe started together each round (as
    with `scheduler.jitter: 0`), in a different order every round: each
    window holds the client's lookups of that round and nothing of ours."""
    seed_half_a_queue(server, "pdf")
    configs: list[RedisConfig] = [
        probe_config(
            "redis",
            name=f"jobs-{index}",
            url=server.url(),
            hit_ratio_lookups_min=1,
            bullmq={"queues": [{"name": "pdf"}, {"name": "mail"}]},
        )
        for index in range(3)
    ]
    configs.append(redis_config(server.url(), hit_ratio_lookups_min=1))
    probes = [(config, contexts()) for config in configs]

    rounds: list[list[ProbeResult]] = []
    for turn in range(40):
        server.look_up(hits=3, misses=1)
        order = probes[turn % 4 :] + probes[: turn % 4]
        if turn % 2:
            order.reverse()
        rounds.append(
            await asyncio.gather(*(run_once(config, ctx=ctx) for config, ctx in order))
        )

    for results in rounds[1:]:
        for result in results:
            assert sample(result, "redis_hit_ratio_lookups") == 4, detail(
                result, "hit_ratio"
            )
            assert sample(result, "redis_hit_ratio") == 0.75


async def test_reads_of_a_failing_bullmq_probe_are_accounted_as_the_server_counts(
    server: RedisServer, contexts: Contexts
) -> None:
    """WRONGTYPE is answered after the key was found (the server counts a
    hit); NOPERM before the lookup (nothing counted). Both runs fail, and
    the cache probe still sees exactly the client's lookups."""
    seed_half_a_queue(server, "pdf")
    server.command("SET", "bull:pdf:delayed", "not a sorted set")
    server.command("ACL", "SETUSER", "jobs", "on", ">jobs-pw", "~*", "+@all", "-zcard")
    cache = redis_config(server.url(), hit_ratio_lookups_min=1)
    wrong_type: RedisConfig = probe_config(
        "redis",
        name="wrong-type",
        url=server.url(),
        bullmq={"queues": [{"name": "pdf"}]},
    )
    refused: RedisConfig = probe_config(
        "redis",
        name="refused",
        url=server.url(),
        username="jobs",
        password="jobs-pw",
        bullmq={"queues": [{"name": "pdf"}]},
    )
    cache_ctx, wrong_ctx, refused_ctx = contexts(), contexts(), contexts()

    await run_once(cache, ctx=cache_ctx)
    failed = [
        await run_once(wrong_type, ctx=wrong_ctx),
        await run_once(refused, ctx=refused_ctx),
    ]
    server.look_up(hits=1, misses=1)
    result = await run_once(cache, ctx=cache_ctx)

    assert [r.reason for r in failed] == [Reason.CONFIG, Reason.CONFIG]
    assert sample(result, "redis_hit_ratio_lookups") == 2, detail(result, "hit_ratio")
    assert sample(result, "redis_hit_ratio") == 0.5


class ReplyThief:
    """A relay to a Redis server that stops passing replies back on a
    connection once it has passed on BullMQ reads: the server runs them,
    the probe never hears. `reads_sent` is set at that moment."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.reads_sent = asyncio.Event()

    async def __call__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        upstream_reader, upstream = await asyncio.open_connection(
            "127.0.0.1", self.server.port
        )
        muted = False

        async def replies() -> None:
            while data := await upstream_reader.read(65536):
                if not muted:
                    writer.write(data)

        answering = asyncio.create_task(replies())
        try:
            while data := await reader.read(65536):
                muted = muted or b"LLEN" in data
                upstream.write(data)
                await upstream.drain()
                if muted:
                    self.reads_sent.set()
        except ConnectionError:
            pass
        finally:
            answering.cancel()
            upstream.close()
            writer.close()


async def test_a_bullmq_run_that_lost_its_replies_starts_new_baselines(
    server: RedisServer, tcp_server: StartServer, contexts: Contexts
) -> None:
    """The server counted the reads, nobody recorded them: every probe of
    that server starts over instead of judging them as traffic."""
    seed_half_a_queue(server, "pdf")
    url = f"redis://127.0.0.1:{await tcp_server(ReplyThief(server))}/0"
    cache = redis_config(url, hit_ratio_lookups_min=1)
    jobs: RedisConfig = probe_config(
        "redis", name="jobs", url=url, timeout=0.5, bullmq={"queues": [{"name": "pdf"}]}
    )
    cache_ctx = contexts()

    await run_once(cache, ctx=cache_ctx)
    cut_off = await run_once(jobs, ctx=contexts())
    after = await run_once(cache, ctx=cache_ctx)
    later = await run_once(cache, ctx=cache_ctx)

    assert cut_off.reason is Reason.TIMEOUT
    assert verdicts(after)["hit_ratio"]
    assert detail(after, "hit_ratio") == (
        "a run reading BullMQ keys of this server lost its replies or ran"
        " out of turn, so its lookups are unknown: new baseline"
    )
    assert sample(after, "redis_hit_ratio") is None
    assert sample(later, "redis_hit_ratio_lookups") == 0


async def test_a_probe_goes_ahead_when_another_round_trip_hangs(
    server: RedisServer, tcp_server: StartServer, contexts: Contexts
) -> None:
    """Round trips to one server take turns; a turn that does not come within
    half the budget is skipped: the server is judged, only the hit ratio's
    window starts over, every probe's since a read went unrecorded."""
    thief = ReplyThief(server)
    url = f"redis://127.0.0.1:{await tcp_server(thief)}/0"
    cache = redis_config(url, timeout=0.5, hit_ratio_lookups_min=1)
    jobs: RedisConfig = probe_config(
        "redis", name="jobs", url=url, timeout=1.5, bullmq={"queues": [{"name": "pdf"}]}
    )
    cache_ctx = contexts()
    assert (await run_once(cache, ctx=cache_ctx)).success  # connected

    hanging = asyncio.create_task(run_once(jobs, ctx=contexts()))
    await thief.reads_sent.wait()  # jobs holds the turn, waiting for replies
    went_ahead = await run_once(cache, ctx=cache_ctx)
    hung = await hanging
    after = await run_once(cache, ctx=cache_ctx)

    assert went_ahead.success, went_ahead.error
    assert detail(went_ahead, "hit_ratio") == (
        "another probe's round trip to this server held its turn past half"
        " this run's budget, so this window is unknown: new baseline"
    )
    assert sample(went_ahead, "redis_hit_ratio_lookups") is None
    assert hung.reason is Reason.TIMEOUT
    assert "Timeout reading" in hung.error
    assert detail(after, "hit_ratio") == "new baseline: the previous run had no window"


async def test_no_turns_while_no_probe_of_the_server_reads_keys(
    server: RedisServer, contexts: Contexts
) -> None:
    """Without key reads the ledger stays at zero: order does not matter, and
    a probe never waits for another."""
    ctx = contexts()
    config = redis_config(server.url(), hit_ratio_lookups_min=1)
    ledger = ctx.shared(ledger_key(parse_url(config.url)), LookupLedger)
    async with ledger.lock:  # as if another probe's round trip hung
        first = await run_once(config, ctx=ctx)
        server.look_up(hits=3, misses=1)
        second = await run_once(config, ctx=ctx)
    assert detail(first, "hit_ratio") == "first run: baseline taken"
    assert sample(second, "redis_hit_ratio") == 0.75


async def test_a_restarted_server_starts_a_new_hit_ratio_baseline(
    own_server: RedisServer, contexts: Contexts
) -> None:
    ctx = contexts()
    config = redis_config(own_server.url(), hit_ratio_lookups_min=1)
    own_server.look_up(hits=5, misses=5)
    await run_once(config, ctx=ctx)
    own_server.kill()
    own_server.restart()
    # More of each than before the restart: the counters did not go back.
    own_server.look_up(hits=20, misses=20)

    back = await run_once(config, ctx=ctx)

    assert detail(back, "hit_ratio") == (
        "the server restarted (new run_id): new baseline"
    )
    assert sample(back, "redis_hit_ratio") is None


# --- authentication --------------------------------------------------------------------


async def test_password_sources(
    server: RedisServer, contexts: Contexts, tmp_path: Path
) -> None:
    server.set_password(PASSWORD)
    secret_file = tmp_path / "redis-password"
    secret_file.write_text(PASSWORD + "\n")

    in_url = await run_once(redis_config(server.url(PASSWORD)), ctx=contexts())
    in_field = await run_once(
        redis_config(server.url(), password=PASSWORD), ctx=contexts()
    )
    in_file = await run_once(
        redis_config(server.url(), password_file=str(secret_file)), ctx=contexts()
    )
    # `${REDIS_PASSWORD:-}` with the variable unset: the file is used.
    empty_inline = await run_once(
        redis_config(server.url(), password="", password_file=str(secret_file)),
        ctx=contexts(),
    )
    no_file = await run_once(
        redis_config(server.url(), password_file=str(tmp_path / "absent")),
        ctx=contexts(),
    )

    for result in (in_url, in_field, in_file, empty_inline):
        assert result.success, result.error
    assert no_file.reason is Reason.CONFIG
    assert "cannot be read" in no_file.error


def test_password_and_password_file_together_is_one_error() -> None:
    problems = redis_problems(
        url="redis://h:6379/0", password=PASSWORD, password_file="/run/pw"
    )

    assert problems.splitlines() == [
        "probe 'cache' (probes[0]): set either password or password_file, not both"
        " (password_file is read at every use, so rotation needs no reload)"
    ]
    assert PASSWORD not in problems


async def test_wrong_or_missing_password_is_an_auth_failure(
    server: RedisServer, contexts: Contexts
) -> None:
    server.set_password(PASSWORD)

    wrong = await run_once(redis_config(server.url(WRONG_PASSWORD)), ctx=contexts())
    missing = await run_once(redis_config(server.url()), ctx=contexts())

    for result in (wrong, missing):
        assert not result.success
        assert result.reason is Reason.AUTH
        assert not any(verdicts(result).values())
        shown = result.error + " ".join(check.detail for check in result.checks)
        assert WRONG_PASSWORD not in shown
        assert PASSWORD not in shown
    assert "refused the credentials" in wrong.error
    assert "requires a password; set password or password_file" in missing.error


async def test_auth_required_passes_only_when_the_server_refuses_strangers(
    server: RedisServer, contexts: Contexts
) -> None:
    open_result = await run_once(
        redis_config(server.url(), expect_auth=True), ctx=contexts()
    )
    server.set_password(PASSWORD)
    closed_result = await run_once(
        redis_config(server.url(), password=PASSWORD, expect_auth=True),
        ctx=contexts(),
    )

    assert not verdicts(open_result)["auth_required"]
    assert "PING answered 'PONG'" in detail(open_result, "auth_required")
    assert open_result.reason is Reason.CHECK  # a critical check
    assert verdicts(closed_result)["auth_required"]
    assert "NOAUTH" in detail(closed_result, "auth_required")
    assert closed_result.success, closed_result.error


async def test_config_get_refused_falls_back_to_info(
    server: RedisServer, contexts: Contexts
) -> None:
    server.command(
        "ACL", "SETUSER", "probe", "on", ">" + PASSWORD, "+@all", "-config", "~*"
    )
    server.command(
        "ACL", "SETUSER", "blind", "on", ">" + PASSWORD, "+ping", "+hello", "+client"
    )
    server.command(
        "ACL", "SETUSER", "minimal", "on", ">" + PASSWORD, "+ping", "+info",
        "+config|get", "+hello", "+client|setname", "+llen", "+zcard", "+hgetall",
        "~bull:*",
    )  # fmt: skip
    configure(server, maxmemory="64mb", maxmemory_policy="allkeys-lru")

    minimal = await run_once(
        redis_config(
            server.url(),
            username="minimal",
            password=PASSWORD,
            bullmq={"queues": [{"name": "pdf"}]},
        ),
        ctx=contexts(),
    )
    limited = await run_once(
        redis_config(server.url(), username="probe", password=PASSWORD),
        ctx=contexts(),
    )
    blind = await run_once(
        redis_config(server.url(), username="blind", password=PASSWORD),
        ctx=contexts(),
    )

    assert minimal.success, minimal.error  # the ACL the docs recommend
    assert "save off" in detail(minimal, "persistence")
    assert limited.success, limited.error
    assert sample(limited, "redis_maxmemory_bytes") == 64 * MiB
    assert verdicts(limited)["eviction_policy"]
    assert "schedule unreadable" in detail(limited, "persistence")
    assert "CONFIG GET refused" in detail(limited, "reachable")
    assert blind.reason is Reason.CONFIG
    assert "+info" in blind.error


# --- BullMQ ------------------------------------------------------------------------------


def seed_queue(server: RedisServer, prefix: str, queue: str) -> None:
    key = f"{prefix}:{queue}"
    server.command("RPUSH", f"{key}:wait", "1", "2", "3")
    server.command("ZADD", f"{key}:prioritized", "1", "4")
    server.command("RPUSH", f"{key}:active", "5")
    server.command("ZADD", f"{key}:delayed", "1", "6", "2", "7")
    server.command("ZADD", f"{key}:failed", "1", "8", "2", "9", "3", "10")
    server.command("ZADD", f"{key}:completed", "1", "11")
    server.command("HSET", f"{key}:meta", "opts.maxLenEvents", "10000")


async def test_bullmq_counts_and_depth_limits(
    server: RedisServer, contexts: Contexts
) -> None:
    seed_queue(server, "jobs", "pdf")
    config = redis_config(
        server.url(),
        bullmq={
            "prefix": "jobs",
            "queues": [
                {"name": "pdf", "waiting_max": 10, "failed_max": 2},
                {"name": "fresh", "waiting_max": 0, "failed_max": 0},
            ],
        },
    )

    result = await run_once(config, ctx=contexts())

    counts = {
        state: sample(result, "redis_bullmq_jobs", queue="pdf", state=state)
        for state in ("waiting", "active", "delayed", "paused", "failed", "completed")
    }
    assert counts == {
        "waiting": 4,
        "active": 1,
        "delayed": 2,
        "paused": 0,
        "failed": 3,
        "completed": 1,
    }
    assert sample(result, "redis_bullmq_jobs", queue="fresh", state="waiting") == 0
    found = verdicts(result)
    assert not found["bullmq_pdf_depth"]
    assert detail(result, "bullmq_pdf_depth") == "over limit: failed 3 > 2"
    assert found["bullmq_fresh_depth"]
    assert found["bullmq_eviction_policy"]  # noeviction: BullMQ-safe
    assert result.success


async def test_bullmq_paused_queue_counts_its_jobs_as_paused(
    server: RedisServer, contexts: Contexts
) -> None:
    seed_queue(server, "bull", "mail")
    server.command("HSET", "bull:mail:meta", "paused", "1")
    config = redis_config(server.url(), bullmq={"queues": [{"name": "mail"}]})

    result = await run_once(config, ctx=contexts())

    assert sample(result, "redis_bullmq_jobs", queue="mail", state="waiting") == 0
    assert sample(result, "redis_bullmq_jobs", queue="mail", state="paused") == 4
    assert sample(result, "redis_bullmq_queue_paused", queue="mail") == 1


async def test_bullmq_backlog_growing_on_every_run_fails(
    server: RedisServer, contexts: Contexts
) -> None:
    configure(server, maxmemory_policy="allkeys-lru")
    ctx = contexts()
    config = redis_config(
        server.url(),
        bullmq={"queues": [{"name": "pdf", "backlog_growth_runs": 3}]},
    )
    results = []
    for _ in range(4):
        server.command("RPUSH", "bull:pdf:wait", "job")
        results.append(await run_once(config, ctx=ctx))
    steady = await run_once(config, ctx=ctx)

    assert [verdicts(r)["bullmq_pdf_backlog"] for r in results] == [
        True,
        True,
        True,
        False,
    ]
    assert "grew on each of the last 3 runs (1 -> 4)" in detail(
        results[-1], "bullmq_pdf_backlog"
    )
    assert verdicts(steady)["bullmq_pdf_backlog"]
    assert not verdicts(steady)["bullmq_eviction_policy"]  # allkeys-lru loses jobs


async def test_bullmq_key_of_the_wrong_type_is_a_config_problem(
    server: RedisServer, contexts: Contexts
) -> None:
    server.command("SET", "bull:pdf:active", "not a list")
    config = redis_config(server.url(), bullmq={"queues": [{"name": "pdf"}]})

    result = await run_once(config, ctx=contexts())

    assert result.reason is Reason.CONFIG
    assert "bull:pdf:active" in result.error


# --- failures ------------------------------------------------------------------------


async def test_fault_cycle_kill_and_restart(
    own_server: RedisServer, contexts: Contexts
) -> None:
    ctx = contexts()
    config = redis_config(own_server.url())

    before = await run_once(config, ctx=ctx)
    kept = await run_once(config, ctx=ctx)
    own_server.kill()
    down = await run_once(config, ctx=ctx)
    still_down = await run_once(config, ctx=ctx)
    own_server.restart()
    back = await run_once(config, ctx=ctx)

    assert before.success and kept.success
    assert sample(kept, "redis_connect_seconds") is None  # reused the connection
    for result in (down, still_down):
        assert result.reason is Reason.CONNECT, result.error
        assert not any(verdicts(result).values())
    assert back.success, back.error
    assert sample(back, "redis_connect_seconds") is not None
    assert "connected in" in detail(back, "reachable")


async def test_nothing_listening_is_a_connect_failure(contexts: Contexts) -> None:
    port = free_port()
    result = await run_once(
        redis_config(f"redis://:{PASSWORD}@127.0.0.1:{port}/0"), ctx=contexts()
    )

    assert result.reason is Reason.CONNECT
    assert f"127.0.0.1:{port}" in result.error
    assert PASSWORD not in result.error


def the_runners_own_timeout(config: RedisConfig, result: ProbeResult) -> bool:
    """Whether *result* was cut off by the runner's hard timeout rather than
    ended by the probe's deadline (the runner's text for a bare timeout)."""
    return result.error == f"no answer within {config.timeout:g}s"


async def test_silent_server_times_out_on_the_probes_deadline_and_hangs_up(
    tcp_server: StartServer, contexts: Contexts
) -> None:
    hung_up = asyncio.Event()

    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the probe closes its end
        hung_up.set()
        writer.close()

    port = await tcp_server(silent)
    config = redis_config(f"redis://127.0.0.1:{port}/0", timeout=0.5)

    result = await run_once(config, ctx=contexts())

    assert result.reason is Reason.TIMEOUT
    # The driver's timeout from ctx.deadline fired, not the runner's.
    assert not the_runners_own_timeout(config, result), result.error
    assert f"127.0.0.1:{port}" in result.error
    await eventually(hung_up.is_set)


async def test_hanging_server_on_the_kept_connection_times_out_and_drops_it(
    own_server: RedisServer, contexts: Contexts
) -> None:
    ctx = contexts()
    config = redis_config(own_server.url(), timeout=0.5)
    assert (await run_once(config, ctx=ctx)).success
    assert own_server.process is not None

    own_server.process.send_signal(signal.SIGSTOP)  # up, but answers nothing
    try:
        hung = await run_once(config, ctx=ctx)
    finally:
        own_server.process.send_signal(signal.SIGCONT)
    # The timed-out connection is closed, not kept for the next run.
    assert await our_clients(own_server, 0) == []
    back = await run_once(config, ctx=ctx)

    assert hung.reason is Reason.TIMEOUT
    assert not the_runners_own_timeout(config, hung), hung.error
    assert "Timeout reading" in hung.error
    assert back.success, back.error
    assert sample(back, "redis_connect_seconds") is not None


async def test_garbage_reply_is_a_protocol_failure(
    tcp_server: StartServer, contexts: Contexts
) -> None:
    async def http_server(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    port = await tcp_server(http_server)
    result = await run_once(redis_config(f"redis://127.0.0.1:{port}/0"), ctx=contexts())

    assert result.reason is Reason.PROTOCOL, result.error
    assert f"127.0.0.1:{port}" in result.error


async def test_max_clients_reached_is_a_protocol_failure(
    server: RedisServer, contexts: Contexts
) -> None:
    with contextlib.closing(server.admin()) as admin:
        admin.execute_command("CONFIG", "SET", "maxclients", "1")
        try:
            result = await run_once(redis_config(server.url()), ctx=contexts())
        finally:
            admin.execute_command("CONFIG", "SET", "maxclients", "10000")

    assert result.reason is Reason.PROTOCOL
    assert "max number of clients" in result.error


async def test_replica_without_master_is_a_protocol_failure(
    server: RedisServer, contexts: Contexts
) -> None:
    configure(server, replica_serve_stale_data="no")
    server.command("REPLICAOF", "127.0.0.1", str(free_port()))
    config = redis_config(server.url(), bullmq={"queues": [{"name": "pdf"}]})

    result = await run_once(config, ctx=contexts())

    assert result.reason is Reason.PROTOCOL
    assert "MASTERDOWN" in result.error


# --- connections and protocols -------------------------------------------------------


async def test_one_connection_after_100_runs(
    server: RedisServer, contexts: Contexts
) -> None:
    server.set_password(PASSWORD)
    ctx = contexts()
    config = redis_config(
        server.url(PASSWORD),
        expect_auth=True,
        bullmq={"queues": [{"name": "pdf"}]},
    )

    results = [await run_once(config, ctx=ctx) for _ in range(100)]

    assert all(result.success for result in results), results[-1].error
    clients = await our_clients(server, 1)
    assert clients[0]["name"] == CLIENT_NAME
    assert sum(sample(r, "redis_connect_seconds") is not None for r in results) == 1


async def test_fresh_connection_connects_every_run_and_leaves_none(
    server: RedisServer, contexts: Contexts
) -> None:
    ctx = contexts()
    config = redis_config(server.url(), fresh_connection=True)

    results = [await run_once(config, ctx=ctx) for _ in range(3)]

    assert all(sample(r, "redis_connect_seconds") is not None for r in results)
    assert await our_clients(server, 0) == []


async def test_protocol_2_explicitly(server: RedisServer, contexts: Contexts) -> None:
    result = await run_once(redis_config(server.url(), protocol=2), ctx=contexts())

    assert result.success, result.error
    assert "RESP2" in detail(result, "reachable")
    clients = await our_clients(server, 1)
    assert clients[0]["resp"] == "2"


async def test_falls_back_to_resp2_when_hello_is_rejected(contexts: Contexts) -> None:
    # Redis 7 always knows HELLO; renaming it away makes it answer as Redis 5 does.
    try:
        old_style = RedisServer.start("--rename-command", "HELLO", "")
    except BinaryMissing as missing:
        pytest.skip(str(missing))
    try:
        ctx = contexts()
        config = redis_config(old_style.url())
        first = await run_once(config, ctx=ctx)
        old_style.command("CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal")
        reconnected = await run_once(config, ctx=ctx)
        clients = await our_clients(old_style, 1)
    finally:
        old_style.destroy()

    assert first.success, first.error
    assert "RESP2 (server rejected HELLO)" in detail(first, "reachable")
    assert reconnected.success, reconnected.error
    assert clients[0]["resp"] == "2"
    assert clients[0]["name"] == CLIENT_NAME


# --- TLS (tls_config) -------------------------------------------------------------------


def other_ca_file(tmp_path: Path) -> Path:
    """A CA that did not sign the server's certificate."""
    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


async def test_tls_config_ca_file_verifies_the_server(
    server: RedisServer, contexts: Contexts, tmp_path: Path
) -> None:
    url = server.url(tls=True)

    verified = await run_once(
        redis_config(url, tls_config={"ca_file": str(server.ca_file)}),
        ctx=contexts(),
    )
    system_store = await run_once(redis_config(url), ctx=contexts())
    wrong_ca = await run_once(
        redis_config(url, tls_config={"ca_file": str(other_ca_file(tmp_path))}),
        ctx=contexts(),
    )
    skipped = await run_once(
        redis_config(url, tls_config={"insecure_skip_verify": True}), ctx=contexts()
    )

    assert verified.success, verified.error
    for refused in (system_store, wrong_ca):
        assert refused.reason is Reason.TLS, refused.error
        assert f"TLS with 127.0.0.1:{server.tls_port} failed" in refused.error
    assert skipped.success, skipped.error


async def test_tls_config_server_name_is_the_name_verified(
    server: RedisServer, contexts: Contexts
) -> None:
    # The certificate names 127.0.0.1 and localhost.
    url = server.url(tls=True)
    ca_file = str(server.ca_file)

    named = await run_once(
        redis_config(url, tls_config={"ca_file": ca_file, "server_name": "localhost"}),
        ctx=contexts(),
    )
    mismatch = await run_once(
        redis_config(
            url, tls_config={"ca_file": ca_file, "server_name": "cache.example"}
        ),
        ctx=contexts(),
    )

    assert named.success, named.error
    assert mismatch.reason is Reason.TLS, mismatch.error
    assert "cache.example" in mismatch.error


async def test_tls_config_server_name_is_sent_as_sni(
    ca: trustme.CA, ca_file: Path, contexts: Contexts
) -> None:
    offered: list[str | None] = []
    server_context = tls_server_context(ca, "cache.example", server_names=offered)

    async def hang_up(
        _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.close()

    tls_server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=server_context)
    port = tls_server.sockets[0].getsockname()[1]
    try:
        result = await run_once(
            redis_config(
                f"rediss://127.0.0.1:{port}/0",
                tls_config={"ca_file": str(ca_file), "server_name": "cache.example"},
            ),
            ctx=contexts(),
        )
    finally:
        tls_server.close()
        await tls_server.wait_closed()

    assert offered == ["cache.example"]
    # The certificate names only cache.example: it verified against that name.
    assert result.reason is not Reason.TLS, result.error


async def test_tls_config_client_certificate(
    server: RedisServer, contexts: Contexts, tmp_path: Path
) -> None:
    assert server.ca is not None
    client = server.ca.issue_cert("readiness-exporter")
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert_file))
    client.private_key_pem.write_to_path(str(key_file))
    configure(server, tls_auth_clients="yes")
    url = server.url(tls=True)

    with_cert = await run_once(
        redis_config(
            url,
            tls_config={
                "ca_file": str(server.ca_file),
                "cert_file": str(cert_file),
                "key_file": str(key_file),
            },
        ),
        ctx=contexts(),
    )
    without = await run_once(
        redis_config(url, tls_config={"ca_file": str(server.ca_file)}),
        ctx=contexts(),
    )

    assert with_cert.success, with_cert.error
    # Over TLS 1.3 the server judges the client certificate after the
    # client's handshake has ended, and a reset may overtake its alert:
    # over TLS 1.2 the refusal is part of the handshake, so it is always
    # told as TLS.
    configure(server, tls_protocols="TLSv1.2")
    without_tls12 = await run_once(
        redis_config(url, tls_config={"ca_file": str(server.ca_file)}),
        ctx=contexts(),
    )
    assert without.reason in (Reason.TLS, Reason.CONNECT), without.error
    assert without_tls12.reason is Reason.TLS, without_tls12.error
    assert "handshake failure" in without_tls12.error.lower(), without_tls12.error


async def test_tls_context_follows_a_rotated_ca_file(
    server: RedisServer, contexts: Contexts, tmp_path: Path
) -> None:
    # Contexts are shared and cached per tls_config; the cache key holds the
    # files' stamps, so a rewritten ca_file applies from the next connect.
    assert server.ca is not None
    ca_file = tmp_path / "ca.pem"
    server.ca.cert_pem.write_to_path(str(ca_file))
    ctx = contexts()
    config = redis_config(
        server.url(tls=True), fresh_connection=True, tls_config={"ca_file": ca_file}
    )

    trusted = await run_once(config, ctx=ctx)
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    rotated_away = await run_once(config, ctx=ctx)
    server.ca.cert_pem.write_to_path(str(ca_file))
    trusted_again = await run_once(config, ctx=ctx)

    assert trusted.success, trusted.error
    assert rotated_away.reason is Reason.TLS, rotated_away.error
    assert trusted_again.success, trusted_again.error


async def test_unreadable_ca_file_is_a_config_failure(
    server: RedisServer, contexts: Contexts, tmp_path: Path
) -> None:
    config = redis_config(
        server.url(tls=True), tls_config={"ca_file": str(tmp_path / "absent.pem")}
    )

    result = await run_once(config, ctx=contexts())

    assert result.reason is Reason.CONFIG
    assert "ca_file" in result.error


# --- config --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "size"),
    [
        ("2GB", 2 * 1024**3),
        ("2gb", 2 * 1024**3),
        ("512mb", 512 * MiB),
        # The exporter's one size type: k/m/g are powers of 1024 too, unlike
        # redis.conf, where `1g` means 10^9 bytes.
        ("1g", 1024**3),
        ("1.5GiB", 3 * 512 * MiB),
        (4096, 4096),
    ],
)
def test_maxmemory_max_sizes_are_powers_of_1024(written: object, size: int) -> None:
    config = redis_config("redis://h:6379", maxmemory_max=written)
    assert config.maxmemory_max == size


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "http://127.0.0.1:6379"}, "url must start with redis://"),
        ({"url": "redis://127.0.0.1:6379/zero"}, "database number"),
        ({"url": "redis://127.0.0.1:6379/0?ssl=true"}, "query options"),
        ({"url": "rediss://127.0.0.1:6379/0?ssl_ca_certs=x"}, "tls_config"),
        (
            {"url": f"redis://:{PASSWORD}@h:6379/0", "password": "other"},
            "keep one",
        ),
        (
            {"url": "redis://h:6379/0", "tls_config": {"ca_file": "/ca.pem"}},
            "tls_config applies to TLS only; use a rediss:// url",
        ),
        (
            {"url": "rediss://h:6379/0", "tls_config": {"key_file": "/k.pem"}},
            "key_file needs cert_file",
        ),
        (
            {"url": "rediss://h:6379/0", "tls_config": {"min_version": "TLS11"}},
            "tls_config.min_version",
        ),
        ({"url": "redis://h:6379", "maxmemory_max": "2 bananas"}, "invalid size"),
        (
            {"url": "redis://h:6379", "memory_ratio_max_warning": 0.95},
            "memory_ratio_max_warning must be at most memory_ratio_max_critical",
        ),
        ({"url": "redis://h:6379", "persistence": "sometimes"}, "persistence"),
        (
            {"url": "redis://h:6379", "bullmq": {"queues": [{"name": "a:b"}]}},
            "name",
        ),
        (
            {
                "url": "redis://h:6379",
                "bullmq": {"queues": [{"name": "a"}, {"name": "a"}]},
            },
            "more than once",
        ),
        (
            {
                "url": "redis://h:6379",
                "eviction_policy": "allkeys-lru",
                "bullmq": {"queues": [{"name": "a"}]},
            },
            "eviction_policy allkeys-lru evicts BullMQ's jobs",
        ),
    ],
)
def test_bad_config_says_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    problems = redis_problems(**fields)

    assert message in problems
    assert PASSWORD not in problems


@pytest.mark.parametrize(
    ("old", "value", "new"),
    [
        ("memory_warning_ratio", 0.8, "memory_ratio_max_warning"),
        ("memory_critical_ratio", 0.95, "memory_ratio_max_critical"),
        ("ca_file", "/ca.pem", "tls_config.ca_file"),
        ("insecure_skip_verify", True, "tls_config.insecure_skip_verify"),
    ],
)
def test_renamed_fields_name_their_new_place(old: str, value: object, new: str) -> None:
    problems = redis_problems(url="rediss://h:6379/0", **{old: value})

    assert f"field {old!r} is now {new!r} (renamed in 0.2.0" in problems


def test_override_of_the_old_memory_usage_check_names_the_new_one() -> None:
    problems = redis_problems(
        url="redis://h:6379/0", checks={"memory_usage": {"severity": "critical"}}
    )

    assert (
        "check 'memory_usage' is now 'memory_usage_warning' (renamed in 0.2.0)"
        in problems
    )


def test_override_of_memory_usage_warning_applies() -> None:
    config = parse_config(
        yaml.safe_dump(
            {
                "probes": [
                    {
                        "kind": "redis",
                        "name": "cache",
                        "url": "redis://h:6379/0",
                        "checks": {"memory_usage_warning": {"severity": "critical"}},
                    }
                ]
            }
        )
    ).probes[0]

    assert config.checks["memory_usage_warning"].severity is Severity.CRITICAL


def test_bullmq_defaults_the_eviction_policy_to_noeviction() -> None:
    plain = redis_config("redis://h:6379")
    queued = redis_config("redis://h:6379", bullmq={"queues": [{"name": "pdf"}]})
    unchecked = redis_config(
        "redis://h:6379", eviction_policy=None, bullmq={"queues": [{"name": "a"}]}
    )
    assert plain.eviction_policy == "allkeys-lru"
    assert queued.eviction_policy == "noeviction"
    assert unchecked.eviction_policy is None
    # One check of the policy, not two that say the same.
    names = [spec.name for spec in PROBES["redis"].plan(queued)]
    assert "bullmq_eviction_policy" in names
    assert "eviction_policy" not in names


def test_example_config_entry_parses() -> None:
    config = parse_config(
        """
        probes:
          - kind: redis
            name: cache
            url: rediss://127.0.0.1:6379/0
            maxmemory_max: 2gb
            memory_ratio_max_warning: 0.8
            tls_config:
              ca_file: /etc/ssl/redis-ca.pem
              server_name: cache.internal
            bullmq:
              queues:
                - {name: pdf, waiting_max: 100, failed_max: 10}
        """.replace("\n        ", "\n"),
        "test.yml",
    )

    probe = config.probes[0]
    assert isinstance(probe, RedisConfig)
    assert probe.maxmemory_max == 2 * 1024**3
    assert probe.memory_ratio_max_warning == 0.8
    assert probe.tls_config.ca_file == Path("/etc/ssl/redis-ca.pem")
    assert probe.tls_config.server_name == "cache.internal"
    assert probe.bullmq is not None and probe.bullmq.prefix == "bull"
