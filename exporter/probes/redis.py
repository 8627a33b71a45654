"""Probe that judges a Redis server: reachable, memory limits, policy, persistence.

Each run sends one pipeline on the probe's one kept connection (named
`readiness-exporter` in CLIENT LIST): PING, INFO, a few CONFIG GETs (a server
that refuses CONFIG falls back to INFO fields) and, when configured, the
BullMQ queue reads of `redis_bullmq.py`. Retries are off: a run is one attempt.
The connection lives in `redis_conn.py`, the verdicts in `redis_checks.py`;
this module is the kind: config, metrics, plan and the run.

    readiness_redis_memory_used_bytes{probe="cache"} 1.2e+06
    readiness_redis_maxmemory_bytes{probe="cache"} 2.147483648e+09
    readiness_redis_keyspace_hits_total{probe="cache"} 4711
    readiness_redis_eviction_policy_info{probe="cache",policy="allkeys-lru"} 1
    readiness_redis_hit_ratio{probe="cache"} 0.93
    readiness_check_passed{probe="cache",check="eviction_policy",...} 1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from redis.exceptions import RedisError

from exporter.probes import redis_bullmq
from exporter.probes.base import (
    BaseProbeConfig,
    ByteSize,
    Category,
    Checks,
    CheckSpec,
    MetricSpec,
    ProbeResult,
    Severity,
)
from exporter.probes.context import ProbeContext
from exporter.probes.redis_checks import (
    SERVER_COMMANDS,
    EvictionPolicy,
    RedisState,
    facts_from,
    judge_hit_ratio,
    judge_maxmemory,
    judge_memory,
    judge_policy,
    judge_queues,
    persistence_verdict,
    pipeline_commands,
    queue_counts,
    reachable_detail,
    server_samples,
)
from exporter.probes.redis_conn import (
    Deadline,
    parse_url,
    translate,
    unauthenticated_ping,
)

METRICS = (
    MetricSpec(
        "redis_connect_seconds",
        "Time to connect and authenticate, for runs that opened a connection.",
    ),
    MetricSpec("redis_memory_used_bytes", "used_memory from INFO memory."),
    MetricSpec("redis_maxmemory_bytes", "maxmemory; 0 means no limit."),
    MetricSpec("redis_connected_clients", "Client connections, ours included."),
    MetricSpec("redis_maxclients", "Most client connections the server accepts."),
    MetricSpec(
        "redis_evicted_keys_total", "Keys evicted since start (INFO).", "counter"
    ),
    MetricSpec(
        "redis_keyspace_hits_total", "Key lookups that found a key (INFO).", "counter"
    ),
    MetricSpec(
        "redis_keyspace_misses_total",
        "Key lookups that found no key (INFO).",
        "counter",
    ),
    MetricSpec(
        "redis_hit_ratio",
        "Share of key lookups that hit since the previous run (others' lookups"
        " only); absent when there were none.",
    ),
    MetricSpec(
        "redis_role_info",
        "Replication role: master, replica or other.",
        "info",
        ("role",),
    ),
    MetricSpec("redis_aof_enabled", "1 when the append-only file is on."),
    MetricSpec("redis_rdb_last_save_ok", "1 when the last RDB snapshot succeeded."),
    MetricSpec(
        "redis_eviction_policy_info",
        "maxmemory-policy (other for names this exporter does not know).",
        "info",
        ("policy",),
    ),
    *redis_bullmq.METRICS,
)


# --- config ------------------------------------------------------------------


class RedisConfig(BaseProbeConfig):
    """Which server, as whom, and what its settings and queues must look like."""

    kind: Literal["redis"] = "redis"
    url: str = Field(min_length=1, repr=False)  # may hold a password
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None
    protocol: Literal[2, 3] = 3
    ca_file: Path | None = None
    insecure_skip_verify: bool = False
    maxmemory_max: ByteSize | None = None
    eviction_policy: EvictionPolicy | None = "allkeys-lru"
    persistence: Literal["aof", "rdb", "any", "off"] = "aof"
    expect_auth: bool = False
    memory_warning_ratio: float = Field(default=0.85, gt=0, le=1)
    memory_critical_ratio: float = Field(default=0.90, gt=0, le=1)
    hit_ratio_min: float | None = Field(default=0.80, ge=0, le=1)
    fresh_connection: bool = False
    bullmq: redis_bullmq.BullmqConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _bullmq_needs_noeviction(cls, data: Any) -> Any:
        # allkeys-lru, the default for a cache, would evict BullMQ's jobs;
        # with bullmq set, the default becomes the policy BullMQ requires.
        if (
            isinstance(data, dict)
            and data.get("bullmq") is not None
            and "eviction_policy" not in data
        ):
            return {**data, "eviction_policy": "noeviction"}
        return data

    @field_validator("url")
    @classmethod
    def _url_parses(cls, url: str) -> str:
        parse_url(url)
        return url

    @model_validator(mode="after")
    def _consistent(self) -> RedisConfig:
        target = parse_url(self.url)
        if self.password is not None and self.password_file is not None:
            raise ValueError("set either password or password_file, not both")
        if target.password and (self.password or self.password_file):
            raise ValueError(
                "the url holds a password and password/password_file is set too;"
                " keep one (password_file keeps it out of the config)"
            )
        if target.username and self.username:
            raise ValueError("set the user either in the url or in username")
        if not target.tls and (self.ca_file or self.insecure_skip_verify):
            raise ValueError(
                "ca_file and insecure_skip_verify apply to TLS only;"
                " use a rediss:// url"
            )
        if self.bullmq is not None and self.eviction_policy not in (
            None,
            "noeviction",
        ):
            raise ValueError(
                f"eviction_policy {self.eviction_policy} evicts BullMQ's jobs;"
                " with bullmq, leave eviction_policy out (noeviction is then"
                " checked by bullmq_eviction_policy)"
            )
        if self.memory_warning_ratio > self.memory_critical_ratio:
            raise ValueError(
                "memory_warning_ratio must be at most memory_critical_ratio"
            )
        return self


def plan(config: RedisConfig) -> list[CheckSpec]:
    """The checks a run of *config* yields."""
    specs = [
        CheckSpec(
            "reachable",
            Category.RELIABILITY,
            Severity.CRITICAL,
            "Connects, authenticates and answers PING and INFO.",
        )
    ]
    if config.expect_auth:
        specs.append(
            CheckSpec(
                "auth_required",
                Category.SECURITY,
                Severity.CRITICAL,
                "An unauthenticated PING is refused (NOAUTH).",
            )
        )
    specs.append(
        CheckSpec(
            "maxmemory_set",
            Category.PERFORMANCE,
            Severity.WARNING,
            "maxmemory is set, and at most maxmemory_max when configured.",
        )
    )
    # With bullmq, bullmq_eviction_policy checks the one policy allowed.
    if config.eviction_policy is not None and config.bullmq is None:
        specs.append(
            CheckSpec(
                "eviction_policy",
                Category.PERFORMANCE,
                Severity.WARNING,
                f"maxmemory-policy is {config.eviction_policy}.",
            )
        )
    specs += [
        CheckSpec(
            "persistence",
            Category.DATA,
            Severity.WARNING,
            f"Persistence matches `{config.persistence}`.",
        ),
        CheckSpec(
            "memory_usage",
            Category.PERFORMANCE,
            Severity.WARNING,
            f"used_memory is under {config.memory_warning_ratio:.0%} of maxmemory.",
        ),
        CheckSpec(
            "memory_usage_critical",
            Category.PERFORMANCE,
            Severity.CRITICAL,
            f"used_memory is under {config.memory_critical_ratio:.0%} of maxmemory.",
        ),
    ]
    if config.hit_ratio_min is not None:
        specs.append(
            CheckSpec(
                "hit_ratio",
                Category.PERFORMANCE,
                Severity.INFO,
                f"Keyspace hit ratio since the last run is at least"
                f" {config.hit_ratio_min:.0%} (passes without traffic).",
            )
        )
    if config.bullmq is not None:
        specs += redis_bullmq.plan(config.bullmq)
    return specs


# --- the probe ---------------------------------------------------------------


async def probe(config: RedisConfig, ctx: ProbeContext) -> ProbeResult:
    """One pipeline (and an unauthenticated PING if asked); judge the answers."""
    checks = Checks(plan(config))
    state = ctx.state(RedisState)
    target = parse_url(config.url)
    deadline = Deadline(config.timeout)
    commands = pipeline_commands(config)
    try:
        exchange = await state.session.exchange(config, target, commands, deadline)
        facts = facts_from(exchange.replies)
        queues = (
            queue_counts(config.bullmq, exchange.replies[SERVER_COMMANDS:])
            if config.bullmq is not None
            else {}
        )
        if config.expect_auth:
            checks.record(
                "auth_required", *await unauthenticated_ping(config, target, deadline)
            )
    except RedisError as error:
        state.baseline = None  # this run's own lookups are unknown
        has_password = bool(config.password or config.password_file or target.password)
        raise translate(error, target, has_password) from error
    except BaseException:
        state.baseline = None
        raise
    checks.record("reachable", True, reachable_detail(config, facts, exchange))
    judge_maxmemory(checks, config, facts)
    judge_policy(checks, config, facts)
    checks.record("persistence", *persistence_verdict(config.persistence, facts))
    judge_memory(checks, config, facts)
    samples = server_samples(facts, exchange)
    samples += judge_hit_ratio(checks, config, state, facts, queues)
    if config.bullmq is not None:
        samples += judge_queues(checks, config.bullmq, state, queues)
    return ProbeResult(checks=checks.finish(), samples=tuple(samples))
