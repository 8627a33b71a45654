"""The vocabulary every probe kind shares: configs, checks, samples, results.

A kind declares its checks once, as data (`CHECKS`, a tuple of `CheckDef`),
the kind-specific series it may emit (`METRICS`), a config model (a subclass
of `BaseProbeConfig`) and `async def probe(config, ctx)`. The tables are read
by the runner, the config loader, the alert and dashboard generators, the
docs and the tests. Timing, deadlines and exception handling belong to the
runner, not to probes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

from exporter.redact import redact

# --- closed sets -----------------------------------------------------------


class Reason(StrEnum):
    """Why a probe run failed; the `reason` label of the failure series."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    TLS = "tls"
    AUTH = "auth"
    PROTOCOL = "protocol"
    CHECK = "check"
    CONFIG = "config"
    INTERNAL = "internal"


class Category(StrEnum):
    """The built-in readiness categories the kinds' checks count towards.

    A config may add its own (an attestation in `documentation`, a check
    moved to `code_quality`): a category is any `CategoryName`, and these
    are the ones with default weights.
    """

    RELIABILITY = "reliability"
    SECURITY = "security"
    PERFORMANCE = "performance"
    MONITORING = "monitoring"
    DATA = "data"


class Severity(StrEnum):
    """How much a failing check matters; critical ones fail the probe."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class ProbeError(Exception):
    """Raised when a probe cannot judge its target at all.

    The reason comes from the subclass or the *reason* argument; when
    neither gives one, the runner classifies the exception this one was
    raised `from` (a driver's timeout, TLS or socket error), as it would had
    the probe let that exception through. So a probe that must attach
    *samples* to a failed run (a status code 0, a gateway that is down)
    never repeats the runner's classification. The message goes to logs
    and the status page (never to a label), so it must not hold secrets.
    """

    reason: ClassVar[Reason | None] = None

    def __init__(
        self,
        message: str,
        *,
        reason: Reason | None = None,
        samples: tuple[Sample, ...] = (),
    ) -> None:
        super().__init__(message)
        self.instance_reason: Reason | None = reason or type(self).reason
        # Figures still worth exporting (a gateway that is down: up 0).
        self.samples = samples


class AuthError(ProbeError):
    """The target refused our credentials."""

    reason = Reason.AUTH


class ProtocolError(ProbeError):
    """The target answered with something we could not understand."""

    reason = Reason.PROTOCOL


class TargetConfigError(ProbeError):
    """The probe's config cannot work against this target (bad path, ...)."""

    reason = Reason.CONFIG


# --- durations ---------------------------------------------------------------

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}


def parse_duration(value: object) -> float:
    """Turn `500ms`, `30s`, `1h30m`, `7d` or a number of seconds into seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_duration_text(value.strip())
    else:
        raise ValueError("expected a duration such as 30s, 5m or 7d")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite, non-negative time")
    return seconds


def _parse_duration_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    total, number, matched = 0.0, "", False
    i = 0
    while i < len(text):
        char = text[i]
        if char.isdigit() or char == ".":
            number += char
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else char
        if unit not in _UNITS or not number:
            raise ValueError(
                f"invalid duration {text!r}: expected a number and a unit"
                " (ms, s, m, h, d, w, y) such as 500ms, 30s, 5m, 26h, 7d"
            )
        total += float(number) * _UNITS[unit]
        number, matched = "", True
        i += len(unit)
    if number or not matched:
        raise ValueError(
            f"invalid duration {text!r}: expected a number and a unit"
            " (ms, s, m, h, d, w, y) such as 500ms, 30s, 5m, 26h, 7d"
        )
    return total


def format_duration(seconds: float) -> str:
    """*seconds* as Prometheus writes a duration: 600 -> `10m`, 5400 ->
    `1h30m`, 0.5 -> `500ms` (days at most, so `7d` stays `7d`)."""
    millis = round(seconds * 1000)
    if millis < 0:
        raise ValueError("a duration must be non-negative")
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    seconds_part, millis = divmod(millis, 1000)
    if seconds_part:
        parts.append(f"{seconds_part}s")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written in config as `30s`, `5m`, `26h`, `7d` or a number."""

# Every unit is a power of 1024, as WORKER_MAX_MEMORY_MB and Redis's
# `maxmemory 2gb` mean it; `k`/`m`/`g` are accepted as the same.
_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z]*)\s*$")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    **{
        unit: 1024**power
        for power, letter in enumerate("kmgt", start=1)
        for unit in (letter, f"{letter}b", f"{letter}ib")
    },
}


def parse_size(value: object) -> int:
    """Bytes from `2GB`, `512MiB`, `512mb`, `1.5g` or a number of bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512MB or a number of bytes")
    if isinstance(value, int | float):
        size = float(value)
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        unit = match.group("unit").lower()
        if unit not in _SIZE_UNITS:
            raise ValueError(
                f"invalid size {value!r}: write a number of bytes or a number"
                " with KB, MB, GB or TB (powers of 1024)"
            )
        size = float(match.group("number")) * _SIZE_UNITS[unit]
    else:
        raise ValueError(f"invalid size {value!r}: write e.g. 512MB or 536870912")
    if not math.isfinite(size) or size <= 0:
        raise ValueError("a size must be above zero")
    return int(size)


ByteSize = Annotated[int, BeforeValidator(parse_size)]
"""Bytes, written in config as `2GB`, `512MiB`, `512mb` or a number."""


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(
            f"invalid regular expression: {error}; escape literal characters"
            " such as [ ( . * with a backslash"
        ) from None
    return pattern


Regex = Annotated[str, AfterValidator(_compiles)]
"""A regular expression, compiled once when the config loads to report
mistakes with the file, probe and field."""

Port = Annotated[int, Field(ge=1, le=65535)]

LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")]

CategoryName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
"""A readiness category: a built-in `Category` or one of the config's own."""

SystemName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
"""The system a probe belongs to (a checklist's unit); the `system` label."""

DEFAULT_SYSTEM = "default"

# Labels that the exporter itself sets; a user label may not shadow them.
RESERVED_LABELS = frozenset(
    {
        "kind",
        "probe",
        "system",
        "check",
        "category",
        "severity",
        "reason",
        "verdict",
        "le",
        "quantile",
        "job",
        "instance",
    }
)


# --- config -------------------------------------------------------------------


class Model(BaseModel):
    """Base of every config model: unknown fields are mistakes.

    A model lists in `SECRETS` the stems of its secret fields: `password`
    means a `password` field (inline, may come from `${ENV}`) and a
    `password_file` field (read at every use, so a rotated secret is picked
    up). Setting both is a mistake, for every model alike; an empty inline
    value (`${VAR:-}` with VAR unset) counts as not set. `RENAMED` maps the
    fields of earlier releases to where they went, so an old config gets an
    error that names the new field instead of "unknown field".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    SECRETS: ClassVar[tuple[str, ...]] = ()
    RENAMED: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _renamed_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.RENAMED:
            moved = [
                f"field {old!r} is now {new!r} (renamed in 0.2.0; see the"
                " README's changelog)"
                for old, new in cls.RENAMED.items()
                if old in data
            ]
            if moved:
                raise ValueError("; ".join(moved))
        return data

    @model_validator(mode="after")
    def _one_secret_source(self) -> Self:
        for stem in self.SECRETS:
            if secret_given(getattr(self, stem)) and getattr(self, f"{stem}_file"):
                raise ValueError(
                    f"set either {stem} or {stem}_file, not both"
                    f" ({stem}_file is read at every use, so rotation needs no"
                    " reload)"
                )
        return self


def secret_given(value: SecretStr | None) -> bool:
    """Whether an inline secret is set; an empty one (`${VAR:-}`) is not."""
    return value is not None and bool(value.get_secret_value())


class CheckOverride(Model):
    """Per-check changes a user may make to a probe's defaults."""

    category: CategoryName | None = None
    severity: Severity | None = None
    enabled: bool = True


class BaseProbeConfig(Model):
    """Fields every probe has, whatever its kind."""

    kind: str
    name: str = Field(min_length=1, max_length=200)
    system: SystemName = DEFAULT_SYSTEM
    interval: Duration = 30.0
    timeout: Duration = 10.0
    labels: dict[LabelName, str] = Field(default_factory=dict)
    category: CategoryName | None = None
    checks: dict[str, CheckOverride] = Field(default_factory=dict)
    failure_threshold: int = Field(default=1, ge=1)
    success_threshold: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> Self:
        if self.interval <= 0:
            raise ValueError("interval must be above zero")
        if self.timeout <= 0:
            raise ValueError("timeout must be above zero")
        if self.timeout >= self.interval:
            raise ValueError(
                f"timeout ({self.timeout:g}s) must be below interval"
                f" ({self.interval:g}s)"
            )
        reserved = sorted(
            name
            for name in self.labels
            # `__`-prefixed names are Prometheus's own; a scrape with one fails.
            if name in RESERVED_LABELS or name.startswith("__")
        )
        if reserved:
            raise ValueError(
                f"labels {reserved} are set by the exporter; pick other names"
            )
        return self

    def warnings(self) -> list[str]:
        """What loads but is probably a mistake, each naming its field
        (`field 'memory_max': ...`); the loader logs them and `check-config`
        prints them. None by default."""
        return []


# --- checks as data -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """A check one run of one probe will yield, with its default category
    and severity: a `CheckDef` applied to a config."""

    name: str
    category: Category
    severity: Severity
    description: str = ""


@dataclass(frozen=True, slots=True)
class CheckDef:
    """One check a kind can yield, declared once in the kind's `CHECKS`.

    *name* is the check's name, or a template with `{item}` for a family of
    checks named after config entries (`extension_{item}` for each required
    extension, `condition_{item}` for each named condition). *threshold* is
    the config field that sets the check's limit, if any; the name never
    states the limit, so it stays true when the limit changes. *when* says
    whether a config enables the check (None: always), *items* lists the
    `{item}` values a config yields. *formerly* lists names of earlier
    releases, so that an override of an old name gets a precise error.
    """

    name: str
    category: Category
    severity: Severity
    meaning: str
    threshold: str | None = None
    when: Callable[[Any], bool] | None = None
    items: Callable[[Any], Iterable[str]] | None = None
    formerly: tuple[str, ...] = ()

    @property
    def templated(self) -> bool:
        """Whether the name is a template (`extension_{item}`)."""
        return "{item}" in self.name

    @property
    def pattern(self) -> str:
        """A regular expression every name of this check matches (as in a
        PromQL `check=~` matcher): the name itself, or the template with
        `.+` for `{item}`."""
        prefix, _, suffix = self.name.partition("{item}")
        if not self.templated:
            return re.escape(self.name)
        return f"{re.escape(prefix)}.+{re.escape(suffix)}"

    def matches(self, name: str) -> bool:
        """Whether *name* is this check (or one of its family)."""
        return re.fullmatch(self.pattern, name) is not None

    def _names(self, config: Any) -> list[tuple[str, str]]:
        """(item, name) of each check this row gives for *config*."""
        if self.when is not None and not self.when(config):
            return []
        if self.items is None:
            return [("", self.name)]
        return [(item, self.name.format(item=item)) for item in self.items(config)]

    def specs(self, config: Any) -> list[CheckSpec]:
        """The checks this row gives for *config* (none when disabled)."""
        return [
            CheckSpec(name, self.category, self.severity, self.meaning)
            for _item, name in self._names(config)
        ]

    def renames(self, config: Any) -> dict[str, str]:
        """Former name -> current name of each check this row gives for
        *config*; a former name may be a template too (`{item}`)."""
        return {
            old.format(item=item): name
            for item, name in self._names(config)
            for old in self.formerly
        }


def plan_checks(table: Iterable[CheckDef], config: Any) -> list[CheckSpec]:
    """The checks a run of *config* yields, in table order."""
    return [spec for row in table for spec in row.specs(config)]


@dataclass(frozen=True, slots=True)
class Check:
    """One named verdict of one run. *detail* is short text for people;
    *evaluated* is False when the run never got to judge the check (the
    target could not be reached, the device did not answer), so its cause
    is the run's failure reason, not the check itself."""

    name: str
    passed: bool
    category: str
    severity: Severity
    detail: str = ""
    evaluated: bool = True


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of a kind-specific series; *name* has no `readiness_`."""

    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, value: float, **labels: str) -> Sample:
        """Build a sample with labels given as keyword arguments."""
        return cls(name, float(value), tuple(labels.items()))


MetricType = Literal["gauge", "counter", "info"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A kind-specific series family: name without `readiness_`, labels
    beyond `probe` (and the probe's own user labels)."""

    name: str
    help: str
    type: MetricType = "gauge"
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one run found. Probes fill checks and samples; the runner fills
    success, reason, duration and the error text."""

    checks: tuple[Check, ...] = ()
    samples: tuple[Sample, ...] = ()
    success: bool = True
    reason: Reason | None = None
    error: str = ""
    duration_seconds: float = 0.0
    finished_at: float = 0.0


class Checks:
    """Collects the verdicts of one run against the config's plan.

    Recording a check that is not in the plan is a bug and raises; planned
    checks that were never recorded come out failed, "not evaluated", so a
    half-run probe can never look healthy.
    """

    def __init__(self, table: Iterable[CheckDef], config: Any) -> None:
        self._plan = {spec.name: spec for spec in plan_checks(table, config)}
        self._results: dict[str, Check] = {}

    def record(self, name: str, passed: bool, detail: str = "") -> bool:
        """Record the verdict for *name*; return *passed* for chaining."""
        spec = self._plan[name]
        self._results[name] = Check(
            name, bool(passed), spec.category, spec.severity, redact(detail)[:200]
        )
        return passed

    def planned(self, name: str) -> bool:
        """Whether the config asked for check *name*."""
        return name in self._plan

    def finish(self, default_detail: str = "not evaluated") -> tuple[Check, ...]:
        """All planned checks in plan order, unrecorded ones failed."""
        return tuple(
            self._results.get(name)
            or Check(name, False, spec.category, spec.severity, default_detail, False)
            for name, spec in self._plan.items()
        )


def first_line(error: BaseException | str, limit: int = 200) -> str:
    """Short, single-line, redacted text of an error for logs and people."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    # Our own errors are worded for people; a driver's type name helps.
    if isinstance(error, BaseException) and not isinstance(error, ProbeError):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    # Redact before cutting: a cut inside `user:pass@` hides the `@` that
    # redact() looks for.
    return redact(text)[:limit]
