"""Process settings (flags, READINESS_ env) and the YAML file of probes.

A mistake in the file becomes a `ConfigError` whose lines name the file, the
probe, the field and what was expected; the CLI prints them and exits 2.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from exporter.kinds import PROBES, ProbeKind, config_adapter
from exporter.probes.base import BaseProbeConfig, Duration, Model
from exporter.readiness import ScoringConfig

DEFAULT_PORT = 10113
DEFAULT_LISTEN_ADDRESS = f"0.0.0.0:{DEFAULT_PORT}"


class Settings(BaseSettings):
    """How the process runs; flags win over READINESS_* environment."""

    model_config = SettingsConfigDict(env_prefix="READINESS_", extra="forbid")

    config_file: Path = Path("config/example.yml")
    web_listen_address: str = DEFAULT_LISTEN_ADDRESS
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"

    def listen_host_port(self) -> tuple[str, int]:
        """Split `HOST:PORT` (`[::1]:PORT` for IPv6)."""
        host, _, port = self.web_listen_address.rpartition(":")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(
                "--web.listen-address must be HOST:PORT, got"
                f" {self.web_listen_address!r}"
            )
        return host.strip("[]") or "0.0.0.0", int(port)


class SchedulerConfig(Model):
    """How probes are spread and bounded."""

    max_concurrency: int = Field(default=64, ge=1, le=100_000)
    jitter: float = Field(default=0.1, ge=0, le=1)


class ProbeDefaults(Model):
    """Values every probe gets unless it sets its own."""

    interval: Duration | None = None
    timeout: Duration | None = None


class _FileModel(Model):
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    defaults: ProbeDefaults = Field(default_factory=ProbeDefaults)
    probes: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Config:
    """A validated config file."""

    path: Path
    scoring: ScoringConfig
    scheduler: SchedulerConfig
    probes: tuple[BaseProbeConfig, ...]


class ConfigError(Exception):
    """A config file that cannot be used; *problems* are one line each."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}: {p}" for p in problems))


# --- ${ENV} references ----------------------------------------------------------

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(
    value: Any, where: str, missing: list[str], path: tuple[int | str, ...] = ()
) -> Any:
    """*value* with `${VAR}` / `${VAR:-default}` replaced; `$$` is `$`."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            missing.append(
                f"{where}: field {_field_path(path)!r}: environment variable"
                f" {name} is not set (export it, or give a default as"
                f" ${{{name}:-value}})"
            )
            return ""

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {
            k: _expand(v, where, missing, (*path, str(k))) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand(v, where, missing, (*path, i)) for i, v in enumerate(value)]
    return value


# --- error messages -------------------------------------------------------------


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts)


def _describe(error: Mapping[str, Any], model: type[Model] | None) -> str:
    """One pydantic error as a sentence; *model* lists allowed fields."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    where = f"field {_field_path(loc)!r}: " if loc else ""
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(model.model_fields)) if model else ""
        return f"unknown field {_field_path(loc)!r}" + (
            f" (allowed: {allowed})" if allowed and len(loc) == 1 else ""
        )
    if kind == "missing":
        return f"{where}required field is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        kinds = ", ".join(sorted(PROBES))
        found = error.get("input", {})
        got = found.get("kind") if isinstance(found, dict) else None
        if got is None:
            return f"field 'kind' is missing (one of: {kinds})"
        return f"unknown kind {got!r} (expected one of: {kinds})"
    return f"{where}{message}"


# --- loading ---------------------------------------------------------------------


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
    if renamed:
        return "; ".join(
            f"check {old!r} is now {new!r} (renamed in 0.2.0)"
            for old, new in renamed.items()
        )
    return (
        f"{', '.join(unknown)} is not a check of this probe"
        f" (its checks: {', '.join(planned)})"
    )


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


def _validate_probes(
    raw_probes: list[dict[str, Any]], defaults: ProbeDefaults
) -> tuple[list[BaseProbeConfig], list[str]]:
    adapter = config_adapter()
    probes: list[BaseProbeConfig] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_probes):
        label = _probe_label(index, raw)
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
        raw = _expand(raw, label, missing)
        problems.extend(missing)
        if missing:
            continue
        for key in ("interval", "timeout"):
            value = getattr(defaults, key)
            if value is not None:
                raw.setdefault(key, value)
        try:
            probe = adapter.validate_python(raw)
        except ValidationError as error:
            kind = PROBES.get(str(raw.get("kind")))
            model = kind.config if kind else None
            for detail in error.errors():
                loc = tuple(detail.get("loc", ()))
                # The discriminated union puts the kind tag first.
                if kind and loc and loc[0] == raw.get("kind"):
                    detail = {**detail, "loc": loc[1:]}
                problems.append(f"{label}: {_describe(detail, model)}")
            if kind is not None:
                # Said now too, so that an old config is mended in one pass.
                problems.extend(
                    f"{label}: field 'checks': {renamed}"
                    for renamed in _renamed_overrides(kind, raw.get("checks"))
                )
            continue
        unknown = _unknown_checks(probe)
        if unknown:
            problems.append(f"{label}: field 'checks': {unknown}")
            continue
        clash = _label_clash(probe)
        if clash:
            problems.append(
                f"{label}: field 'labels': {clash} already used by the"
                f" {probe.kind} metrics; pick other names"
            )
            continue
        probes.append(probe)
    return probes, problems


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
    missing: list[str] = []
    top = {k: v for k, v in data.items() if k != "probes"}
    top = _expand(top, "top level", missing)
    try:
        model = _FileModel.model_validate({**top, "probes": []})
    except ValidationError as error:
        raise ConfigError(
            path, missing + [_describe(d, _FileModel) for d in error.errors()]
        ) from None
    raw_probes = data.get("probes") or []
    if not isinstance(raw_probes, list):
        raise ConfigError(path, ["`probes` must be a list of probes"])
    bad = [
        f"probes[{i}]: each probe must be a mapping with kind and name"
        for i, p in enumerate(raw_probes)
        if not isinstance(p, dict)
    ]
    if bad:
        raise ConfigError(path, bad)
    probes, problems = _validate_probes(raw_probes, model.defaults)
    problems = missing + problems
    if problems:
        raise ConfigError(path, problems)
    return Config(Path(path), model.scoring, model.scheduler, tuple(probes))


def load_config(path: Path) -> Config:
    """Read and validate the config file at *path*."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            path, [f"cannot read the file: {error.strerror or error}"]
        ) from None
    return parse_config(text, path)
