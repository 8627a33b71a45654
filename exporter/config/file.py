"""The YAML config file: scoring, scheduler, defaults, systems and probes.

    defaults: {interval: 30s, system: schedgen, http: {security_headers: [hsts]}}
    systems: {schedgen: {description: ..., scoring: ..., attestations: [...]}}
    probes: [...]

Every problem of the file is reported at once, each naming the probe or
system and the field: field errors and the cross-field rules of a probe
together, renamed fields and checks with their new names.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, ValidationError

from exporter.config.environment import expand
from exporter.config.messages import describe_all
from exporter.kinds import PROBES, ProbeKind, config_adapter
from exporter.probes.base import (
    DEFAULT_SYSTEM,
    BaseProbeConfig,
    Duration,
    Model,
    SystemName,
)
from exporter.readiness import DEFAULT_CATEGORY_WEIGHTS, ScoringConfig
from exporter.redact import redact
from exporter.systems import AttestationsFile, System, SystemConfig

logger = logging.getLogger("exporter.config")


class SchedulerConfig(Model):
    """How probes are spread and bounded."""

    max_concurrency: int = Field(default=64, ge=1, le=100_000)
    jitter: float = Field(default=0.1, ge=0, le=1)


class ProbeDefaults(Model):
    """Values every probe gets unless it sets its own; a kind's name takes
    the fields that kind's probes get (`http: {security_headers: [hsts]}`)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    interval: Duration | None = None
    timeout: Duration | None = None
    system: SystemName | None = None

    def for_kind(self, kind: str) -> dict[str, Any]:
        """The defaults a probe of *kind* gets, its kind's over the common."""
        common = {
            key: value
            for key in ("interval", "timeout", "system")
            if (value := getattr(self, key)) is not None
        }
        own = (self.model_extra or {}).get(kind) or {}
        return {**common, **own}


class _FileModel(Model):
    scoring: dict[str, Any] = Field(default_factory=dict)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    defaults: ProbeDefaults = Field(default_factory=ProbeDefaults)
    systems: dict[SystemName, Any] = Field(default_factory=dict)
    probes: list[Any] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Config:
    """A validated config file."""

    path: Path
    scoring: ScoringConfig
    scheduler: SchedulerConfig
    probes: tuple[BaseProbeConfig, ...]
    systems: Mapping[str, System]
    # What loads but is probably a mistake, one line each naming the probe.
    warnings: tuple[str, ...] = ()


class ConfigError(Exception):
    """A config file that cannot be used; *problems* are one line each."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        # Told in logs, the reload reply and the status page: never a secret.
        self.problems = [redact(problem) for problem in problems]
        super().__init__("\n".join(f"{self.path}: {p}" for p in self.problems))


# --- probes -----------------------------------------------------------------------


def _probe_label(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    if isinstance(name, str) and name:
        return f"probe {name!r} (probes[{index}])"
    return f"probes[{index}]"


def _unknown_checks(probe: BaseProbeConfig) -> str:
    """A sentence about overrides naming checks this probe never makes."""
    kind = PROBES[probe.kind]
    planned = [spec.name for spec in kind.plan(probe)]
    unknown = sorted(set(probe.checks) - set(planned))
    if not unknown:
        return ""
    renamed = {
        old: new
        for row in kind.checks
        for old, new in row.renames(probe).items()
        if old in unknown
    }
    sentences = [
        f"check {old!r} is now {new!r} (renamed in 0.2.0)"
        for old, new in renamed.items()
    ]
    typos = [name for name in unknown if name not in renamed]
    if typos:
        sentences.append(
            f"{', '.join(typos)} is not a check of this probe"
            f" (its checks: {', '.join(planned)})"
        )
    return "; ".join(sentences)


def _renamed_overrides(kind: ProbeKind, overrides: object) -> list[str]:
    """Sentences about overrides naming a fixed former check name, told
    without a valid config (templated former names need one)."""
    if not isinstance(overrides, dict):
        return []
    return [
        f"check {old!r} is now {row.name!r} (renamed in 0.2.0)"
        for row in kind.checks
        if not row.templated
        for old in row.formerly
        if old in overrides and "{item}" not in old
    ]


def _label_clash(probe: BaseProbeConfig) -> list[str]:
    """User labels that a kind-specific series already carries."""
    taken = {label for spec in PROBES[probe.kind].metrics for label in spec.labels}
    return sorted(taken.intersection(probe.labels))


def _cross_field_problems(
    raw: dict[str, Any], errors: list[Any], model: type[BaseProbeConfig]
) -> list[Any]:
    """The probe's own rules (timeout below interval, one of two fields, ...)
    that its field errors hid: validated again with the fields in error at
    their defaults, so that a user mends the entry in one pass. Not when a
    required field is in error (the rules would not run), and never a rule
    that speaks of a field in error (it would judge the default)."""
    broken = {
        error["loc"][1]
        for error in errors
        if len(error.get("loc", ())) > 1 and isinstance(error["loc"][1], str)
    }
    fields = model.model_fields
    if not broken or any(
        name in fields and fields[name].is_required() for name in broken
    ):
        return []
    try:
        config_adapter().validate_python(
            {k: v for k, v in raw.items() if k not in broken}
        )
    except ValidationError as second:
        return [
            e
            for e in second.errors()
            if e.get("type") == "value_error"
            and len(e.get("loc", ())) <= 1
            and not any(name in str(e.get("msg", "")) for name in broken)
        ]
    return []


def _validate_probe(
    raw: dict[str, Any], label: str
) -> tuple[BaseProbeConfig | None, list[str]]:
    try:
        probe = config_adapter().validate_python(raw)
    except ValidationError as error:
        kind = PROBES.get(str(raw.get("kind")))
        if kind is None:
            return None, [f"{label}: {_unknown_kind(raw)}"]
        errors = list(error.errors()) + _cross_field_problems(
            raw, error.errors(), kind.config
        )
        problems = [
            f"{label}: {sentence}"
            for sentence in describe_all(errors, kind.config.model_fields, raw)
        ]
        # Said now too, so that an old config is mended in one pass.
        problems += [
            f"{label}: field 'checks': {renamed}"
            for renamed in _renamed_overrides(kind, raw.get("checks"))
        ]
        return None, problems
    problems = []
    unknown = _unknown_checks(probe)
    if unknown:
        problems.append(f"{label}: field 'checks': {unknown}")
    clash = _label_clash(probe)
    if clash:
        problems.append(
            f"{label}: field 'labels': {clash} already used by the"
            f" {probe.kind} metrics; pick other names"
        )
    return (None if problems else probe), problems


def _unknown_kind(raw: Mapping[str, Any]) -> str:
    kinds = ", ".join(sorted(PROBES))
    if "kind" not in raw:
        return f"field 'kind' is missing (one of: {kinds})"
    return f"unknown kind {raw['kind']!r} (expected one of: {kinds})"


def _validate_probes(
    raw_probes: list[Any], defaults: ProbeDefaults
) -> tuple[list[BaseProbeConfig], list[str]]:
    probes: list[BaseProbeConfig] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_probes):
        label = _probe_label(index, raw)
        if not isinstance(raw, dict):
            problems.append(f"{label}: each probe must be a mapping with kind and name")
            continue
        name = raw.get("name")
        if isinstance(name, str) and name in seen:
            problems.append(
                f"{label}: duplicate probe name {name!r}, already used by"
                f" probes[{seen[name]}]; names must be unique"
            )
            continue
        if isinstance(name, str):
            seen[name] = index
        missing: list[str] = []
        raw = expand(raw, label, missing)
        problems.extend(missing)
        if missing:
            continue
        raw = {**defaults.for_kind(str(raw.get("kind"))), **raw}
        probe, found = _validate_probe(raw, label)
        problems.extend(found)
        if probe is not None:
            probes.append(probe)
    return probes, problems


def _defaults_problems(defaults: ProbeDefaults) -> list[str]:
    """Per-kind defaults that name no kind or no field of it."""
    problems = []
    for kind_name, fields in (defaults.model_extra or {}).items():
        kind = PROBES.get(kind_name)
        if kind is None:
            problems.append(
                f"defaults: {kind_name!r} is neither a common default (interval,"
                f" timeout, system) nor a kind ({', '.join(sorted(PROBES))})"
            )
            continue
        if not isinstance(fields, dict):
            problems.append(f"defaults.{kind_name}: expected a mapping of fields")
            continue
        unknown = sorted(set(fields) - set(kind.config.model_fields))
        fixed = sorted(set(fields) & {"kind", "name"})
        for field in unknown:
            problems.append(
                f"defaults.{kind_name}: unknown field {field!r} (allowed:"
                f" {', '.join(sorted(kind.config.model_fields))})"
            )
        for field in fixed:
            problems.append(f"defaults.{kind_name}: {field!r} cannot have a default")
    return problems


# --- systems ----------------------------------------------------------------------


def _scoring(
    raw: Mapping[str, Any], where: str
) -> tuple[ScoringConfig | None, list[str]]:
    try:
        return ScoringConfig.model_validate(dict(raw)), []
    except ValidationError as error:
        return None, [
            f"{where}: {sentence}"
            for sentence in describe_all(
                error.errors(), ScoringConfig.model_fields, raw
            )
        ]


def _attestations_file(path: Path, base: Path, where: str) -> tuple[Any, list[str]]:
    file = path if path.is_absolute() else base / path
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if isinstance(data, list):
            data = {"attestations": data}
        return AttestationsFile.model_validate(data).attestations, []
    except OSError as error:
        return [], [f"{where}: cannot read {file}: {error.strerror or error}"]
    except yaml.YAMLError as error:
        return [], [f"{where}: {file} is not valid YAML: {error}"]
    except ValidationError as error:
        return [], [
            f"{where} ({file}): {sentence}"
            for sentence in describe_all(
                error.errors(), AttestationsFile.model_fields, data
            )
        ]


def _system_settings(
    raw: Mapping[str, Any],
) -> tuple[dict[str, SystemConfig], list[str]]:
    """Each declared system's settings, validated on its own so that one
    system's mistakes hide neither another's nor the probes'."""
    declared: dict[str, SystemConfig] = {}
    problems: list[str] = []
    for name, settings in raw.items():
        try:
            declared[name] = SystemConfig.model_validate(settings or {})
        except ValidationError as error:
            problems += [
                f"system {name!r}: {sentence}"
                for sentence in describe_all(
                    error.errors(), SystemConfig.model_fields, settings
                )
            ]
            declared[name] = SystemConfig()
    return declared, problems


def _systems(
    declared: Mapping[str, SystemConfig],
    scoring_raw: Mapping[str, Any],
    probes: list[BaseProbeConfig],
    base: Path,
) -> tuple[dict[str, System], list[str], list[str]]:
    """The systems: declared ones with their settings, and those only probes
    name; the problems and the warnings. Every category a system's checks or
    attestations use must have a weight in its scoring."""
    problems: list[str] = []
    warnings: list[str] = []
    top, found = _scoring(scoring_raw, "scoring")
    problems += found
    names = list(declared)
    if declared:
        for probe in probes:
            if probe.system not in declared:
                problems.append(
                    f"probe {probe.name!r}: field 'system': {probe.system!r} is not"
                    f" declared under systems: ({', '.join(declared)}); set system"
                    " on the probe, or defaults.system"
                )
    names += [p.system for p in probes if p.system not in names]
    systems: dict[str, System] = {}
    for name in names:
        settings = declared.get(name, SystemConfig())
        where = f"system {name!r}"
        scoring, found = (
            _scoring({**scoring_raw, **settings.scoring}, f"{where}: field 'scoring'")
            if settings.scoring is not None
            else (top, [])
        )
        problems += found
        attestations = list(settings.attestations)
        if settings.attestations_file is not None:
            loaded, found = _attestations_file(
                settings.attestations_file, base, f"{where}: field 'attestations_file'"
            )
            attestations += loaded
            problems += found
        problems += _repeated_items(where, attestations)
        if scoring is None:
            continue
        found, warned = _unweighted(name, scoring, probes, attestations)
        problems += found
        warnings += warned
        systems[name] = System(name, settings.description, scoring, tuple(attestations))
    return systems, problems, warnings


def _repeated_items(where: str, attestations: list[Any]) -> list[str]:
    """An item attested twice in one system would count as half passed when
    one has expired: one attestation per item, the latest."""
    seen: dict[str, list[str]] = {}
    for attestation in attestations:
        seen.setdefault(attestation.item, []).append(f"{attestation.at:%Y-%m-%d}")
    return [
        f"{where}: attestation {item!r} appears {len(dates)} times (at"
        f" {', '.join(dates)}, inline and attestations_file together); keep one"
        " per item, the latest: re-attesting replaces the old entry"
        for item, dates in seen.items()
        if len(dates) > 1
    ]


def _categories_used(
    name: str, probes: list[BaseProbeConfig], attestations: list[Any]
) -> dict[str, str]:
    """Every category system *name*'s checks and attestations count in,
    with the first probe or attestation that uses it."""
    used: dict[str, str] = {}
    for probe in probes:
        if probe.system != name:
            continue
        for spec in PROBES[probe.kind].plan(probe):
            override = probe.checks.get(spec.name)
            category = (
                (override.category if override else None)
                or probe.category
                or spec.category
            )
            used.setdefault(str(category), f"probe {probe.name!r}")
    for attestation in attestations:
        used.setdefault(attestation.category, f"attestation {attestation.item!r}")
    return used


def _unweighted(
    name: str,
    scoring: ScoringConfig,
    probes: list[BaseProbeConfig],
    attestations: list[Any],
) -> tuple[list[str], list[str]]:
    """Problems: categories in use without a weight (a table of the
    system's own is the whole table). Warnings: weights no check uses (a
    misspelt category)."""
    used = _categories_used(name, probes, attestations)
    weighted = [str(category) for category in scoring.category_weights]
    problems = []
    for category, user in used.items():
        if scoring.has_weight(category):
            continue
        close = difflib.get_close_matches(category, weighted, n=1)
        hint = f"did you mean {close[0]!r}? Else add it" if close else "add it"
        problems.append(
            f"system {name!r}: category {category!r} (used by {user}) has no"
            f" weight in scoring.category_weights ({', '.join(weighted)}); {hint}"
            " to the weights, or move the checks to a weighted category"
            " (`category:` on the probe, or per check under `checks:`)"
        )
    # A weight no check uses is allowed (a category not covered yet); one
    # that looks like a used or built-in category misspelt is worth a word.
    known = [*used, *map(str, DEFAULT_CATEGORY_WEIGHTS)]
    warnings = [
        f"system {name!r}: scoring.category_weights has {category!r}, which no"
        f" check or attestation of the system uses; did you mean {close[0]!r}?"
        for category in weighted
        if category not in known
        and (close := difflib.get_close_matches(category, known, n=1))
    ]
    return problems, warnings


# --- the file ---------------------------------------------------------------------


def parse_config(text: str, path: Path | str = "<config>") -> Config:
    """Validate config *text*; raise `ConfigError` listing every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(path, [f"{where}invalid YAML: {problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, ["the file must be a mapping with `probes:`"])
    problems: list[str] = []
    top = expand(
        {k: v for k, v in data.items() if k != "probes"}, "top level", problems
    )
    try:
        model = _FileModel.model_validate({**top, "probes": []})
    except ValidationError as error:
        raise ConfigError(
            path,
            problems + describe_all(error.errors(), _FileModel.model_fields, top),
        ) from None
    raw_probes = data.get("probes") or []
    if not isinstance(raw_probes, list):
        raise ConfigError(path, ["`probes` must be a list of probes"])
    problems += _defaults_problems(model.defaults)
    probes, found = _validate_probes(raw_probes, model.defaults)
    problems += found
    base = Path(path).parent
    declared, found = _system_settings(model.systems)
    problems += found
    systems, found, system_warnings = _systems(declared, model.scoring, probes, base)
    problems += found
    if problems:
        raise ConfigError(path, problems)
    scoring = ScoringConfig.model_validate(model.scoring)
    warnings = tuple(
        f"probe {probe.name!r}: {warning}"
        for probe in probes
        for warning in probe.warnings()
    ) + tuple(system_warnings)
    return Config(
        Path(path), scoring, model.scheduler, tuple(probes), systems, warnings
    )


def load_config(path: Path) -> Config:
    """Read and validate the config file at *path*."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            path, [f"cannot read the file: {error.strerror or error}"]
        ) from None
    config = parse_config(text, path)
    for warning in config.warnings:
        logger.warning("%s: %s", path, warning)
    return config


__all__ = [
    "DEFAULT_SYSTEM",
    "Config",
    "ConfigError",
    "SchedulerConfig",
    "load_config",
    "parse_config",
]
