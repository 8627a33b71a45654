"""The one table of probe kinds.

Adding a kind: its module (config model, `METRICS`, `plan`, `probe`), one
entry in `PROBES`, tests, a section in
`docs/probes/`, and an entry in `config/example.yml`. `tests/test_kinds.py`
walks this table, so a half-added kind fails CI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from exporter.probes import (
    backup,
    http,
    modbus,
    mongodb,
    postgres,
    redis,
    tcp,
    tls,
    workers,
)
from exporter.probes.base import (
    BaseProbeConfig,
    CheckSpec,
    MetricSpec,
    ProbeResult,
)
from exporter.probes.context import ProbeContext


@dataclass(frozen=True, slots=True)
class ProbeKind:
    """Everything the daemon needs to know about one kind."""

    config: type[BaseProbeConfig]
    probe: Callable[[Any, ProbeContext], Awaitable[ProbeResult]]
    plan: Callable[[Any], Sequence[CheckSpec]]
    metrics: tuple[MetricSpec, ...]


PROBES: dict[str, ProbeKind] = {
    "http": ProbeKind(http.HttpConfig, http.probe, http.plan, http.METRICS),
    "backup": ProbeKind(backup.BackupConfig, backup.probe, backup.plan, backup.METRICS),
    "tcp": ProbeKind(tcp.TcpConfig, tcp.probe, tcp.plan, tcp.METRICS),
    "tls": ProbeKind(tls.TlsConfig, tls.probe, tls.plan, tls.METRICS),
    "modbus": ProbeKind(modbus.ModbusConfig, modbus.probe, modbus.plan, modbus.METRICS),
    "postgres": ProbeKind(
        postgres.PostgresConfig, postgres.probe, postgres.plan, postgres.METRICS
    ),
    "workers": ProbeKind(
        workers.WorkersConfig, workers.probe, workers.plan, workers.METRICS
    ),
    "mongodb": ProbeKind(
        mongodb.MongodbConfig, mongodb.probe, mongodb.plan, mongodb.METRICS
    ),
    "redis": ProbeKind(redis.RedisConfig, redis.probe, redis.plan, redis.METRICS),
}


def kind_of(config: BaseProbeConfig) -> ProbeKind:
    """The table entry for *config*'s kind."""
    return PROBES[config.kind]


def config_adapter() -> TypeAdapter[BaseProbeConfig]:
    """Validator for one probe entry, discriminated on `kind`."""
    models = tuple(kind.config for kind in PROBES.values())
    union: Any = models[0] if len(models) == 1 else Union[models]  # noqa: UP007
    return TypeAdapter(Annotated[union, Field(discriminator="kind")])
