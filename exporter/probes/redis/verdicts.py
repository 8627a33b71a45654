"""The redis kind's verdicts: what the server said, and what that means.

Turns the pipeline's replies into `ServerFacts` and BullMQ queue counts,
keeps the backlog windows between runs (the hit ratio is `hitratio.py`), and
records the checks and samples the kind exports, such as:

    readiness_redis_maxmemory_bytes{probe="cache"} 2.147483648e+09
    readiness_check_passed{probe="cache",check="maxmemory_set",...} 1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.exceptions import ResponseError

from exporter.probes.base import Checks, ProtocolError, Sample, TargetConfigError
from exporter.probes.redis import bullmq
from exporter.probes.redis.config import EVICTION_POLICIES, RedisConfig
from exporter.probes.redis.connection import (
    Exchange,
    RedisSession,
    error_code,
    raise_if_error,
)
from exporter.probes.redis.hitratio import HitWindow, Keyspace

# --- what the server said ----------------------------------------------------

_CONFIG_PARAMETERS = ("maxmemory", "maxmemory-policy", "maxclients", "save")
SERVER_COMMANDS = 2 + len(_CONFIG_PARAMETERS)  # PING, INFO, CONFIG GET ...


def pipeline_commands(config: RedisConfig) -> list[tuple[str, ...]]:
    commands: list[tuple[str, ...]] = [("PING",), ("INFO",)]
    commands += [("CONFIG", "GET", name) for name in _CONFIG_PARAMETERS]
    if config.bullmq is not None:
        for queue in config.bullmq.queues:
            commands += bullmq.commands(config.bullmq.prefix, queue.name)
    return commands


def parse_info(text: str) -> dict[str, str]:
    """INFO's `field:value` lines; section headers and blanks are skipped."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, value = line.split(":", 1)
            fields[name] = value.strip()
    return fields


def _config_value(reply: object, name: str) -> str | None:
    """One CONFIG GET answer; None when refused (NOPERM, renamed) or unknown."""
    if isinstance(reply, dict):
        value = reply.get(name)
    elif isinstance(reply, list) and len(reply) == 2:
        value = reply[1]
    else:
        return None
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What PING, INFO and CONFIG GET said."""

    role: str
    used_memory: int
    maxmemory: int
    policy: str
    connected_clients: int
    maxclients: int | None
    evicted_keys: int
    keyspace: Keyspace
    aof_enabled: bool
    aof_write_ok: bool
    rdb_save_ok: bool
    rdb_snapshot_taken: bool
    save_schedule: str | None  # None: CONFIG GET was not permitted
    config_readable: bool


def _integer(info: dict[str, str], name: str, default: int | None = None) -> int:
    value = info.get(name)
    if value is None:
        if default is None:
            raise ProtocolError(f"INFO has no {name} field; is this a Redis server?")
        return default
    try:
        return int(float(value))
    except ValueError:
        raise ProtocolError(f"INFO field {name} is not a number") from None


def facts_from(replies: Sequence[object]) -> ServerFacts:
    pong = raise_if_error(replies[0])
    if str(pong) != "PONG":
        raise ProtocolError(f"PING answered {str(pong)[:20]!r}, not PONG")
    info_text = raise_if_error(replies[1])
    if not isinstance(info_text, str):
        raise ProtocolError("INFO did not answer with text")
    info = parse_info(info_text)
    config = {
        name: _config_value(reply, name)
        for name, reply in zip(
            _CONFIG_PARAMETERS, replies[2:SERVER_COMMANDS], strict=True
        )
    }
    maxmemory = config["maxmemory"] or info.get("maxmemory")
    maxclients = config["maxclients"] or info.get("maxclients")
    return ServerFacts(
        role=info.get("role", ""),
        used_memory=_integer(info, "used_memory"),
        maxmemory=int(maxmemory) if maxmemory and maxmemory.isdigit() else 0,
        policy=config["maxmemory-policy"] or info.get("maxmemory_policy", ""),
        connected_clients=_integer(info, "connected_clients", 0),
        maxclients=int(maxclients) if maxclients and maxclients.isdigit() else None,
        evicted_keys=_integer(info, "evicted_keys", 0),
        keyspace=Keyspace(
            run_id=info.get("run_id", ""),
            hits=_integer(info, "keyspace_hits", 0),
            misses=_integer(info, "keyspace_misses", 0),
        ),
        aof_enabled=info.get("aof_enabled") == "1",
        aof_write_ok=info.get("aof_last_write_status", "ok") == "ok",
        rdb_save_ok=info.get("rdb_last_bgsave_status") == "ok",
        rdb_snapshot_taken=_integer(info, "rdb_last_bgsave_time_sec", -1) >= 0,
        save_schedule=config["save"],
        config_readable=any(value is not None for value in config.values()),
    )


def queue_counts(
    config: bullmq.BullmqConfig, replies: Sequence[object]
) -> dict[str, bullmq.QueueCounts]:
    counts: dict[str, bullmq.QueueCounts] = {}
    width = bullmq.READS_PER_QUEUE
    for position, queue in enumerate(config.queues):
        chunk = replies[position * width : (position + 1) * width]
        for index, reply in enumerate(chunk):
            if isinstance(reply, ResponseError) and error_code(reply) == "WRONGTYPE":
                key = bullmq.key_of(config.prefix, queue.name, index)
                raise TargetConfigError(
                    f"key {key} is not what BullMQ stores there (WRONGTYPE);"
                    " check bullmq.prefix and the queue name"
                )
            raise_if_error(reply)
        try:
            counts[queue.name] = bullmq.counts_from(chunk)
        except (TypeError, ValueError) as error:
            raise ProtocolError(
                f"queue {queue.name}: unexpected reply ({error})"
            ) from None
    return counts


# --- state kept between runs -------------------------------------------------


class RedisState:
    """Connection, hit-ratio window and backlog windows of one probe."""

    def __init__(self) -> None:
        self.session = RedisSession()
        self.hit_window = HitWindow()
        self.backlogs: dict[str, bullmq.BacklogWindow] = {}

    def backlog(self, queue: bullmq.BullmqQueue) -> bullmq.BacklogWindow:
        runs = queue.backlog_growth_runs or 1
        window = self.backlogs.get(queue.name)
        if window is None or window.runs != runs:
            window = self.backlogs[queue.name] = bullmq.BacklogWindow(runs)
        return window

    async def aclose(self) -> None:
        await self.session.aclose()


# --- verdicts ----------------------------------------------------------------


def _gib(size: int) -> str:
    return (
        f"{size / 1024**3:.2f} GiB" if size >= 1024**3 else f"{size / 1024**2:.1f} MiB"
    )


def judge_maxmemory(checks: Checks, config: RedisConfig, facts: ServerFacts) -> None:
    if facts.maxmemory <= 0:
        checks.record("maxmemory_set", False, "maxmemory is 0: no memory limit")
    elif config.maxmemory_max is not None and facts.maxmemory > config.maxmemory_max:
        checks.record(
            "maxmemory_set",
            False,
            f"maxmemory {_gib(facts.maxmemory)} is above maxmemory_max"
            f" {_gib(config.maxmemory_max)}",
        )
    else:
        checks.record("maxmemory_set", True, f"maxmemory {_gib(facts.maxmemory)}")


def judge_policy(checks: Checks, config: RedisConfig, facts: ServerFacts) -> None:
    if checks.planned("eviction_policy"):
        checks.record(
            "eviction_policy",
            facts.policy == config.eviction_policy,
            f"maxmemory-policy {facts.policy or '?'}, expected"
            f" {config.eviction_policy}",
        )
    if checks.planned("bullmq_eviction_policy"):
        checks.record(
            "bullmq_eviction_policy",
            facts.policy == "noeviction",
            f"maxmemory-policy {facts.policy or '?'}; BullMQ needs noeviction",
        )


def persistence_verdict(mode: str, facts: ServerFacts) -> tuple[bool, str]:
    aof = facts.aof_enabled and facts.aof_write_ok
    if facts.save_schedule is not None:
        rdb_scheduled = bool(facts.save_schedule.strip())
        how = f"save {facts.save_schedule.strip() or 'off'}"
    else:  # without CONFIG GET the schedule is unknown: judge by a snapshot
        rdb_scheduled = facts.rdb_snapshot_taken
        how = "save schedule unreadable, " + (
            "a snapshot was taken" if rdb_scheduled else "no snapshot since start"
        )
    rdb = rdb_scheduled and facts.rdb_save_ok
    state = (
        f"AOF {'on' if facts.aof_enabled else 'off'}"
        f"{'' if facts.aof_write_ok else ' (last write failed)'}, {how}"
        f"{'' if facts.rdb_save_ok else ', last RDB save failed'}"
    )
    verdicts = {
        "aof": aof,
        "rdb": rdb,
        "any": aof or rdb,
        "off": not facts.aof_enabled and not rdb_scheduled,
    }
    return verdicts[mode], f"{state}; expected {mode}"


def judge_memory(checks: Checks, config: RedisConfig, facts: ServerFacts) -> None:
    if facts.maxmemory <= 0:
        detail = "no maxmemory: nothing to compare used memory with (see maxmemory_set)"
        checks.record("memory_usage_warning", True, detail)
        checks.record("memory_usage_critical", True, detail)
        return
    ratio = facts.used_memory / facts.maxmemory
    for name, limit in (
        ("memory_usage_warning", config.memory_ratio_max_warning),
        ("memory_usage_critical", config.memory_ratio_max_critical),
    ):
        checks.record(
            name,
            ratio < limit,
            f"{_gib(facts.used_memory)} of {_gib(facts.maxmemory)} used"
            f" ({ratio:.1%}, limit {limit:.0%})",
        )


def server_samples(facts: ServerFacts, exchange: Exchange) -> list[Sample]:
    role = {"master": "master", "slave": "replica"}.get(facts.role, "other")
    policy = facts.policy if facts.policy in EVICTION_POLICIES else "other"
    samples = [
        Sample("redis_memory_used_bytes", facts.used_memory),
        Sample("redis_maxmemory_bytes", facts.maxmemory),
        Sample("redis_connected_clients", facts.connected_clients),
        Sample("redis_evicted_keys_total", facts.evicted_keys),
        Sample("redis_keyspace_hits_total", facts.keyspace.hits),
        Sample("redis_keyspace_misses_total", facts.keyspace.misses),
        Sample.of("redis_role_info", 1, role=role),
        Sample("redis_aof_enabled", float(facts.aof_enabled)),
        Sample("redis_rdb_last_save_ok", float(facts.rdb_save_ok)),
        Sample.of("redis_eviction_policy_info", 1, policy=policy),
    ]
    if facts.maxclients is not None:
        samples.append(Sample("redis_maxclients", facts.maxclients))
    if exchange.connect_seconds is not None:
        samples.append(Sample("redis_connect_seconds", exchange.connect_seconds))
    return samples


def reachable_detail(
    config: RedisConfig, facts: ServerFacts, exchange: Exchange
) -> str:
    how = (
        f"connected in {exchange.connect_seconds:.3f}s"
        if exchange.connect_seconds is not None
        else "kept connection"
    )
    resp = "RESP3" if exchange.protocol == 3 else "RESP2"
    if exchange.protocol != config.protocol:
        resp += " (server rejected HELLO)"
    settings = "" if facts.config_readable else "; CONFIG GET refused, used INFO"
    return f"PONG; {how}, {resp}, role {facts.role}{settings}"


def judge_queues(
    checks: Checks,
    config: bullmq.BullmqConfig,
    state: RedisState,
    counts: dict[str, bullmq.QueueCounts],
) -> list[Sample]:
    samples: list[Sample] = []
    for queue in config.queues:
        found = counts[queue.name]
        if checks.planned(f"bullmq_{queue.name}_depth"):
            checks.record(
                f"bullmq_{queue.name}_depth", *bullmq.depth_verdict(queue, found)
            )
        if queue.backlog_growth_runs is not None:
            checks.record(
                f"bullmq_{queue.name}_backlog",
                *state.backlog(queue).observe(found.not_started),
            )
        samples += bullmq.samples(queue.name, found)
    return samples
