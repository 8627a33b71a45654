"""alerts/thresholds.yml as one model, shared by both generators and their tests.

`load_thresholds()` reads the file into `Thresholds`: an unknown or misspelt
key is an error, ratios lie strictly between 0 and 1, the warning and
critical thresholds of one alert are ordered, and durations are the
exporter's own `Duration` (seconds, written `30s`, `10m`, `1h`), which the
alert generator writes back into PromQL with `format_duration`. The alert
rules (alerts/generate.py) and the dashboards (grafana/generator/) take every
threshold from here, so a number changed in the YAML moves the alert and the
dashboard's threshold line together.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Annotated, ClassVar, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from exporter.probes.base import Duration

THRESHOLDS_FILE = Path(__file__).resolve().parent / "thresholds.yml"

Ratio = Annotated[float, Field(gt=0, lt=1)]
Positive = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    """A block of thresholds.yml; `ASCENDING` lists fields that must rise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ASCENDING: ClassVar[tuple[tuple[str, ...], ...]] = ()

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        for names in self.ASCENDING:
            values = [getattr(self, name) for name in names]
            if any(low >= high for low, high in pairwise(values)):
                shown = ", ".join(
                    f"{n}={v:g}" for n, v in zip(names, values, strict=True)
                )
                raise ValueError(f"expected {' < '.join(names)}, got {shown}")
        return self


class Availability(Section):
    probe_down_for: Duration
    health_check_warning_for: Duration
    health_check_critical_for: Duration


class Errors(Section):
    ASCENDING = (("warning", "critical"),)
    warning: Ratio
    critical: Ratio
    for_: Duration = Field(alias="for")


class Latency(Section):
    ASCENDING = (("info", "warning", "critical"),)
    info: Positive
    warning: Positive
    critical: Positive
    for_: Duration = Field(alias="for")


class Certificates(Section):
    ASCENDING = (("critical_days", "warning_days"),)
    warning_days: Positive
    critical_days: Positive
    for_: Duration = Field(alias="for")


class Databases(Section):
    connections_warning: Ratio
    for_: Duration = Field(alias="for")


class Redis(Section):
    ASCENDING = (("memory_warning", "memory_critical"),)
    memory_warning: Ratio
    memory_critical: Ratio
    memory_for: Duration
    misconfigured_for: Duration


class Queues(Section):
    backlog_window: Duration
    backlog_for: Duration


class Modbus(Section):
    for_: Duration = Field(alias="for")


class Workers(Section):
    down_for: Duration
    memory_for: Duration


class Backups(Section):
    too_old_for: Duration
    retention_for: Duration
    integrity_for: Duration


class Score(Section):
    ASCENDING = (("critical", "warning"),)
    warning: Ratio
    critical: Ratio
    for_: Duration = Field(alias="for")


class Host(Section):
    ASCENDING = (
        ("memory_warning", "memory_critical"),
        ("disk_warning", "disk_critical"),
    )
    node_selector: str
    filesystem_selector: str
    cpu_warning: Ratio
    cpu_for: Duration
    memory_warning: Ratio
    memory_critical: Ratio
    memory_for: Duration
    disk_warning: Ratio
    disk_critical: Ratio
    disk_for: Duration

    def _selector(self, *matchers: str) -> str:
        used = [m for m in (self.node_selector, *matchers) if m]
        return "{" + ",".join(used) + "}" if used else ""

    @property
    def node(self) -> str:
        """`{<node_selector>}`, or nothing when it is empty."""
        return self._selector()

    @property
    def idle(self) -> str:
        return self._selector('mode="idle"')

    @property
    def filesystem(self) -> str:
        return self._selector(self.filesystem_selector)


class Slo(Section):
    objective: Ratio
    page_for: Duration
    ticket_for: Duration

    @property
    def budget(self) -> float:
        """The error budget: the share of runs that may fail."""
        return 1 - self.objective


class Thresholds(Section):
    """Every threshold and `for` duration of the bundled alerts."""

    runbook_base_url: str = Field(pattern=r"^https?://")
    availability: Availability
    errors: Errors
    latency_p95_seconds: Latency
    certificates: Certificates
    databases: Databases
    redis: Redis
    queues: Queues
    modbus: Modbus
    workers: Workers
    backups: Backups
    score: Score
    host: Host
    slo: Slo


def load_thresholds(path: Path = THRESHOLDS_FILE) -> Thresholds:
    """The thresholds in *path*; pydantic's ValidationError names a bad key."""
    return Thresholds.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
