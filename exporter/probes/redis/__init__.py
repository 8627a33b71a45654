"""The redis kind: a Redis server's reachability, memory limits, policy,
persistence and BullMQ queues.

Each run sends one pipeline on the probe's one kept connection (named
`readiness-exporter` in CLIENT LIST): PING, INFO, a few CONFIG GETs (a server
that refuses CONFIG falls back to INFO fields) and, when configured, the
BullMQ queue reads of `bullmq.py`. Retries are off: a run is one attempt.
The config lives in `config.py`, the connection in `connection.py`, the
verdicts in `verdicts.py`, the queues in `bullmq.py`, the hit ratio and the
daemon's ledger of its own key lookups in `hitratio.py`; this module is the
kind: its checks, metrics and the run.

    readiness_redis_memory_used_bytes{probe="cache"} 1.2e+06
    readiness_redis_maxmemory_bytes{probe="cache"} 2.147483648e+09
    readiness_redis_keyspace_hits_total{probe="cache"} 4711
    readiness_redis_eviction_policy_info{probe="cache",policy="allkeys-lru"} 1
    readiness_redis_hit_ratio_lookups{probe="cache"} 1250
    readiness_redis_hit_ratio{probe="cache"} 0.93
    readiness_check_passed{probe="cache",check="eviction_policy",...} 1
"""

from __future__ import annotations

from exporter.probes.base import (
    Category,
    CheckDef,
    Checks,
    MetricSpec,
    ProbeResult,
    Severity,
)
from exporter.probes.context import ProbeContext
from exporter.probes.redis import bullmq
from exporter.probes.redis.config import RedisConfig
from exporter.probes.redis.connection import translate_error, unauthenticated_ping
from exporter.probes.redis.hitratio import (
    LedgerTurn,
    LookupLedger,
    judge_hit_ratio,
    ledger_key,
)
from exporter.probes.redis.url import parse_url
from exporter.probes.redis.verdicts import (
    SERVER_COMMANDS,
    RedisState,
    facts_from,
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

__all__ = ["CHECKS", "METRICS", "RedisConfig", "probe", "translate_error"]

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
        "redis_hit_ratio_lookups",
        "Key lookups since the previous run, this exporter's own left out: what"
        " redis_hit_ratio is based on; absent on a first run or a new baseline.",
    ),
    MetricSpec(
        "redis_hit_ratio",
        "Share of those lookups that hit, the figure hit_ratio judges; absent"
        " below hit_ratio_lookups_min lookups.",
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
    *bullmq.METRICS,
)


CHECKS = (
    CheckDef(
        "reachable",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The probe connected, authenticated and got PONG and INFO.",
    ),
    CheckDef(
        "auth_required",
        Category.SECURITY,
        Severity.CRITICAL,
        "A PING on a separate connection without credentials is refused with NOAUTH "
        "(with `expect_auth`).",
        when=lambda config: config.expect_auth,
    ),
    CheckDef(
        "maxmemory_set",
        Category.PERFORMANCE,
        Severity.WARNING,
        "maxmemory is set (not 0), and at most `maxmemory_max` when that is "
        "configured.",
        threshold="maxmemory_max",
    ),
    # With bullmq, bullmq_eviction_policy checks the one policy allowed.
    CheckDef(
        "eviction_policy",
        Category.PERFORMANCE,
        Severity.WARNING,
        "maxmemory-policy equals `eviction_policy` (allkeys-lru by default;"
        " `null` drops the check; with `bullmq`, bullmq_eviction_policy checks it"
        " instead).",
        when=lambda config: (
            config.eviction_policy is not None and config.bullmq is None
        ),
    ),
    CheckDef(
        "persistence",
        Category.DATA,
        Severity.WARNING,
        "`persistence: aof`: AOF on and its last write ok; `rdb`: a save schedule and "
        "the last snapshot ok; `any`: either; `off`: neither.",
    ),
    CheckDef(
        "memory_usage_warning",
        Category.PERFORMANCE,
        Severity.WARNING,
        "used_memory is under `memory_ratio_max_warning` of maxmemory.",
        threshold="memory_ratio_max_warning",
        formerly=("memory_usage",),
    ),
    CheckDef(
        "memory_usage_critical",
        Category.PERFORMANCE,
        Severity.CRITICAL,
        "used_memory is under `memory_ratio_max_critical` of maxmemory.",
        threshold="memory_ratio_max_critical",
    ),
    CheckDef(
        "hit_ratio",
        Category.PERFORMANCE,
        Severity.INFO,
        "Keyspace hits over hits and misses since the previous run, this "
        "exporter's own key reads left out, are at least `hit_ratio_min`; passes "
        "below `hit_ratio_lookups_min` lookups (not enough traffic to judge).",
        threshold="hit_ratio_min",
        when=lambda config: config.hit_ratio_min is not None,
    ),
    *bullmq.CHECKS,
)


# --- the probe ---------------------------------------------------------------


async def probe(config: RedisConfig, ctx: ProbeContext) -> ProbeResult:
    """One pipeline (and an unauthenticated PING if asked); judge the answers."""
    checks = Checks(CHECKS, config)
    state = ctx.state(RedisState)
    target = parse_url(config.url)
    deadline = ctx.deadline
    commands = pipeline_commands(config)
    turn = LedgerTurn(
        ctx.shared(ledger_key(target), LookupLedger),
        first_read=SERVER_COMMANDS,
        reads=len(commands) - SERVER_COMMANDS,
    )
    try:
        exchange = await state.session.exchange(
            config, target, commands, deadline, turn
        )
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
    except BaseException:
        state.hit_window.reset()
        raise
    checks.record("reachable", True, reachable_detail(config, facts, exchange))
    judge_maxmemory(checks, config, facts)
    judge_policy(checks, config, facts)
    checks.record("persistence", *persistence_verdict(config.persistence, facts))
    judge_memory(checks, config, facts)
    samples = server_samples(facts, exchange)
    samples += judge_hit_ratio(
        checks, config, state.hit_window, facts.keyspace, turn.before, turn.in_order
    )
    if config.bullmq is not None:
        samples += judge_queues(checks, config.bullmq, state, queues)
    return ProbeResult(checks=checks.finish(), samples=tuple(samples))
