"""Data stores: PostgreSQL, Redis (with BullMQ queues) and MongoDB probes."""

from __future__ import annotations

from alerts.thresholds import Thresholds
from exporter.kinds import check
from grafana.generator.common import dashboard, default_limit, percent, rate, sel
from grafana.generator.panels import (
    ALL_GOOD_STEPS,
    JSON,
    YES_NO,
    Look,
    Query,
    row,
    stat,
    state_timeline,
    steps,
    table,
    timeseries,
    value_map,
)

DATASTORE_KINDS = "postgres|redis|mongodb"


def ratio_by_probe(numerator: str, denominator: str) -> str:
    return f"sum by (probe) ({numerator}) / sum by (probe) ({denominator})"


def hit_ratio() -> str:
    hits = f"sum by (probe) ({rate(sel('readiness_redis_keyspace_hits_total'))})"
    misses = f"sum by (probe) ({rate(sel('readiness_redis_keyspace_misses_total'))})"
    return f"{hits} / ({hits} + {misses})"


def build(t: Thresholds) -> JSON:
    mongo = "readiness_mongodb_connections"
    connections, redis = t.databases.connections_warning, t.redis
    memory_steps = steps(
        "green", (redis.memory_warning, "orange"), (redis.memory_critical, "red")
    )
    # Not alert thresholds: the probes' default limits, as their checks judge.
    hit_ratio_min = default_limit(("redis", "hit_ratio"))
    lag_checks = (("postgres", "replica_lag"), ("mongodb", "replica_lag"))
    lag_max = default_limit(*lag_checks)
    panels = [
        row("Connections"),
        timeseries(
            "Connections in use vs max",
            "PostgreSQL: client backends / (max_connections minus reserved slots);"
            " MongoDB: current / (current + available). Dashed line at the"
            f" {percent(connections)} alert threshold.",
            [
                Query(
                    ratio_by_probe(
                        sel("readiness_postgres_backends"),
                        sel("readiness_postgres_max_connections_usable"),
                    ),
                    "{{probe}}",
                ),
                Query(
                    ratio_by_probe(
                        sel(mongo, 'state="current"'),
                        sel(mongo, 'state=~"current|available"'),
                    ),
                    "{{probe}}",
                ),
            ],
            Look("percentunit", steps("green", (connections, "orange")), min=0, max=1),
        ),
        timeseries(
            "Connections",
            "Connections in use and the most the server accepts: PostgreSQL"
            " backends and usable max_connections, MongoDB current and available,"
            " Redis clients and maxclients.",
            [
                Query(sel("readiness_postgres_backends"), "{{probe}} in use"),
                Query(
                    sel("readiness_postgres_max_connections_usable"), "{{probe}} max"
                ),
                Query(sel(mongo), "{{probe}} {{state}}"),
                Query(sel("readiness_redis_connected_clients"), "{{probe}} clients"),
                Query(sel("readiness_redis_maxclients"), "{{probe}} maxclients"),
            ],
            Look("short"),
        ),
        row("Redis"),
        timeseries(
            "Redis memory used / maxmemory",
            "used_memory over maxmemory (servers without a limit drop out: the"
            f" {check('redis', 'maxmemory_set')} check fails for them). Dashed lines"
            f" at the {percent(redis.memory_warning)} warning and"
            f" {percent(redis.memory_critical)} critical alert thresholds.",
            [
                Query(
                    f"{sel('readiness_redis_memory_used_bytes')}"
                    f" / ({sel('readiness_redis_maxmemory_bytes')} > 0)",
                    "{{probe}}",
                )
            ],
            Look("percentunit", memory_steps, min=0, max=1),
        ),
        timeseries(
            "Redis memory",
            "readiness_redis_memory_used_bytes and readiness_redis_maxmemory_bytes"
            " (0 means no limit).",
            [
                Query(sel("readiness_redis_memory_used_bytes"), "{{probe}} used"),
                Query(sel("readiness_redis_maxmemory_bytes"), "{{probe}} maxmemory"),
            ],
            Look("bytes"),
        ),
        table(
            "Redis eviction policy and role",
            "maxmemory-policy (readiness_redis_eviction_policy_info; the"
            f" {check('redis', 'eviction_policy')} check compares it with the"
            " expected one) and the"
            " replication role.",
            [
                Query(f"{sel('readiness_redis_eviction_policy_info')} == 1"),
                Query(f"{sel('readiness_redis_role_info')} == 1"),
            ],
            Look("short"),
            w=8,
            columns=("probe", "policy", "role"),
            hide=("Value #A", "Value #B"),
        ),
        stat(
            "Redis persistence",
            "Append-only file on (readiness_redis_aof_enabled) and last RDB"
            " snapshot succeeded (readiness_redis_rdb_last_save_ok).",
            [
                Query(sel("readiness_redis_aof_enabled"), "{{probe}} AOF"),
                Query(sel("readiness_redis_rdb_last_save_ok"), "{{probe}} RDB save"),
            ],
            Look("none", ALL_GOOD_STEPS, mappings=YES_NO),
            w=8,
        ),
        timeseries(
            "Redis keyspace hit ratio",
            "Hits / (hits + misses) from the keyspace counters, and the ratio"
            f" between the last two runs that the {check('redis', 'hit_ratio')} check"
            " judges (readiness_redis_hit_ratio); red under its default"
            f" {percent(hit_ratio_min)} floor. Empty while fewer than"
            " hit_ratio_lookups_min (default 100) key lookups happen between"
            " two runs.",
            [
                Query(hit_ratio(), "{{probe}}"),
                Query(sel("readiness_redis_hit_ratio"), "{{probe}} between runs"),
            ],
            Look("percentunit", steps("red", (hit_ratio_min, "green")), min=0, max=1),
            w=8,
        ),
        timeseries(
            "Redis evictions",
            "Keys evicted per second (readiness_redis_evicted_keys_total).",
            [
                Query(
                    "sum by (probe) "
                    f"({rate(sel('readiness_redis_evicted_keys_total'))})",
                    "{{probe}}",
                )
            ],
            Look("cps"),
            w=12,
        ),
        state_timeline(
            "BullMQ queues paused",
            "readiness_redis_bullmq_queue_paused per queue: a paused queue keeps"
            " its jobs waiting.",
            [
                Query(
                    sel("readiness_redis_bullmq_queue_paused"),
                    "{{probe}} {{queue}}",
                )
            ],
            Look(
                "none",
                mappings=value_map((0, "running", "green"), (1, "paused", "orange")),
            ),
            w=12,
        ),
        timeseries(
            "BullMQ queue depths",
            "Jobs per BullMQ queue and state (readiness_redis_bullmq_jobs);"
            " completed jobs are left out.",
            [
                Query(
                    sel("readiness_redis_bullmq_jobs", 'state!="completed"'),
                    "{{queue}} {{state}}",
                )
            ],
            Look("short"),
            w=24,
        ),
        row("Replication and round trips"),
        timeseries(
            "Replica lag",
            "PostgreSQL standby replay lag (0 on a primary) and MongoDB replica-set"
            f" member lag. Dashed line at the {lag_max:g} s default limit of the"
            f" {check(*lag_checks[0])} checks.",
            [
                Query(sel("readiness_postgres_replica_lag_seconds"), "{{probe}}"),
                Query(
                    sel("readiness_mongodb_replset_member_lag_seconds"),
                    "{{probe}} {{member}}",
                ),
            ],
            Look("s", steps("green", (lag_max, "red"))),
        ),
        state_timeline(
            "MongoDB replica-set members",
            "readiness_mongodb_replset_member_healthy: reachable and primary,"
            " secondary or arbiter.",
            [
                Query(
                    sel("readiness_mongodb_replset_member_healthy"),
                    "{{probe}} {{member}}",
                )
            ],
            Look("none", ALL_GOOD_STEPS, mappings=YES_NO),
        ),
        timeseries(
            "Round trips",
            "Last run's PostgreSQL readiness query, MongoDB ping, and connect"
            " times (only from runs that opened a connection).",
            [
                Query(sel("readiness_postgres_query_seconds"), "{{probe}} query"),
                Query(sel("readiness_mongodb_ping_seconds"), "{{probe}} ping"),
                Query(sel("readiness_postgres_connect_seconds"), "{{probe}} connect"),
                Query(sel("readiness_mongodb_connect_seconds"), "{{probe}} connect"),
                Query(sel("readiness_redis_connect_seconds"), "{{probe}} connect"),
            ],
            Look("s"),
            w=24,
        ),
    ]
    return dashboard(
        "readiness-datastores",
        "Readiness: data stores",
        "PostgreSQL, Redis (with BullMQ queues) and MongoDB probes.",
        DATASTORE_KINDS,
        panels,
    )
