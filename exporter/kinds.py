"""The one table of probe kinds.

Each kind is a module or package under `exporter/probes/` with a config
model, `CHECKS` (its checks, as data), `METRICS` (its series), `probe()`
and, when it talks through a driver, `translate_error()`. Adding a kind
touches its module, one row here, its tests and its docs page;
`tests/test_kinds.py` walks this table, so a half-added kind fails CI.
The runner, the config loader, the alert and dashboard generators and the
docs all read the checks from here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
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
    websocket,
    workers,
)
from exporter.probes.base import (
    BaseProbeConfig,
    CheckDef,
    CheckSpec,
    MetricSpec,
    ProbeResult,
    plan_checks,
)
from exporter.probes.context import ProbeContext

# A driver's exception -> the exception the runner classifies (a
# ProbeError with its reason, or a builtin TimeoutError / OSError), or
# None for one the kind does not know.
Translate = Callable[[Exception, Any], BaseException | None]


@dataclass(frozen=True, slots=True)
class ProbeKind:
    """Everything the daemon needs to know about one kind."""

    name: str
    config: type[BaseProbeConfig]
    probe: Callable[[Any, ProbeContext], Awaitable[ProbeResult]]
    checks: tuple[CheckDef, ...]
    metrics: tuple[MetricSpec, ...]
    translate_error: Translate | None = None

    def plan(self, config: BaseProbeConfig) -> list[CheckSpec]:
        """The checks a run of *config* yields."""
        return plan_checks(self.checks, config)

    def check(self, name: str) -> CheckDef:
        """The declared check *name* (a family's template or a member of
        it); KeyError when the kind declares no such check."""
        for row in self.checks:
            if row.name == name or row.matches(name):
                return row
        raise KeyError(f"kind {self.name} declares no check {name!r}")


PROBES: dict[str, ProbeKind] = {
    kind.name: kind
    for kind in (
        ProbeKind(
            "http",
            http.HttpConfig,
            http.probe,
            http.CHECKS,
            http.METRICS,
            http.translate_error,
        ),
        ProbeKind("tcp", tcp.TcpConfig, tcp.probe, tcp.CHECKS, tcp.METRICS),
        ProbeKind("tls", tls.TlsConfig, tls.probe, tls.CHECKS, tls.METRICS),
        ProbeKind(
            "postgres",
            postgres.PostgresConfig,
            postgres.probe,
            postgres.CHECKS,
            postgres.METRICS,
            postgres.translate_error,
        ),
        ProbeKind(
            "redis",
            redis.RedisConfig,
            redis.probe,
            redis.CHECKS,
            redis.METRICS,
            redis.translate_error,
        ),
        ProbeKind(
            "mongodb",
            mongodb.MongodbConfig,
            mongodb.probe,
            mongodb.CHECKS,
            mongodb.METRICS,
            mongodb.translate_error,
        ),
        ProbeKind(
            "modbus", modbus.ModbusConfig, modbus.probe, modbus.CHECKS, modbus.METRICS
        ),
        ProbeKind(
            "workers",
            workers.WorkersConfig,
            workers.probe,
            workers.CHECKS,
            workers.METRICS,
            workers.translate_error,
        ),
        ProbeKind(
            "backup", backup.BackupConfig, backup.probe, backup.CHECKS, backup.METRICS
        ),
        ProbeKind(
            "websocket",
            websocket.WebsocketConfig,
            websocket.probe,
            websocket.CHECKS,
            websocket.METRICS,
            websocket.translate_error,
        ),
    )
}


def kind_of(config: BaseProbeConfig) -> ProbeKind:
    """The table entry for *config*'s kind."""
    return PROBES[config.kind]


def check(kind: str, name: str) -> str:
    """*name*, after making sure that *kind* declares it: the generators
    name checks through this, so a renamed check fails them loudly."""
    PROBES[kind].check(name)
    return name


def declared_checks() -> Iterator[tuple[str, CheckDef]]:
    """Every check of every kind, with its kind's name."""
    for kind in PROBES.values():
        for row in kind.checks:
            yield kind.name, row


def config_adapter() -> TypeAdapter[BaseProbeConfig]:
    """Validator for one probe entry, discriminated on `kind`."""
    models = tuple(kind.config for kind in PROBES.values())
    union: Any = models[0] if len(models) == 1 else Union[models]  # noqa: UP007
    return TypeAdapter(Annotated[union, Field(discriminator="kind")])
