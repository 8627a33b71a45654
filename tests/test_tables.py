"""The kinds' tables are the one source of truth: walk them.

Every declared check and metric is named on the kind's docs page, every
threshold field exists, renamed fields and checks point somewhere real, and
the generated blocks of the docs pages are current.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from exporter.kinds import PROBES, check, declared_checks
from exporter.probes.base import CheckDef, Model

ROOT = Path(__file__).resolve().parent.parent
KINDS = sorted(PROBES)


def _page(kind: str) -> str:
    return (ROOT / "docs" / "probes" / f"{kind}.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", KINDS)
def test_docs_page_names_every_check_and_metric(kind: str) -> None:
    page = _page(kind)
    for row in PROBES[kind].checks:
        shown = row.name.replace("{item}", "<item>")
        assert f"`{shown}`" in page, f"docs/probes/{kind}.md does not name {shown}"
    for spec in PROBES[kind].metrics:
        assert f"readiness_{spec.name}" in page, (
            f"docs/probes/{kind}.md does not name readiness_{spec.name}"
        )


def test_generated_docs_blocks_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _field_names(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def _root_field(path: str) -> str:
    """`bullmq.queues[].<state>_max` -> `bullmq`; `registers[].min` ->
    `registers`."""
    return re.split(r"[.\[,]", path, maxsplit=1)[0].strip()


@pytest.mark.parametrize("kind", KINDS)
def test_threshold_fields_exist(kind: str) -> None:
    fields = _field_names(PROBES[kind].config)
    for row in PROBES[kind].checks:
        if row.threshold is None:
            continue
        for path in row.threshold.split(","):
            assert _root_field(path) in fields, (
                f"{kind}/{row.name}: threshold {path!r} is no field of"
                f" {PROBES[kind].config.__name__}"
            )
            # The meaning says which field sets the limit.
            leaf = re.split(r"[.\]]", path.strip())[-1]
            assert leaf in row.meaning, (kind, row.name, leaf)


@pytest.mark.parametrize("kind", KINDS)
def test_check_rows_are_well_formed(kind: str) -> None:
    rows = PROBES[kind].checks
    names = [row.name for row in rows]
    assert len(names) == len(set(names)), f"{kind}: a check is declared twice"
    for row in rows:
        assert re.fullmatch(r"[a-z][a-z0-9_]*(\{item\}[a-z0-9_]*)?", row.name), row
        assert row.meaning.endswith("."), f"{kind}/{row.name}: meaning is a sentence"
        assert row.templated == (row.items is not None), (
            f"{kind}/{row.name}: a template needs items(), items() a template"
        )
        for old in row.formerly:
            assert not any(other.matches(old) for other in rows), (
                f"{kind}/{row.name}: former name {old} is a current name"
            )


def test_a_family_and_a_fixed_check_never_collide() -> None:
    """No fixed name of a kind falls inside a family of the same kind, so an
    alert matcher on one never catches the other."""
    for kind in PROBES.values():
        families = [row for row in kind.checks if row.templated]
        for row in kind.checks:
            if row.templated:
                continue
            clash = [f.name for f in families if f.matches(row.name)]
            assert not clash, f"{kind.name}/{row.name} matches {clash}"


def test_check_lookup_refuses_undeclared_names() -> None:
    assert check("tls", "cert_expiry_warning") == "cert_expiry_warning"
    assert check("postgres", "extension_timescaledb") == "extension_timescaledb"
    with pytest.raises(KeyError, match="declares no check"):
        check("tls", "cert_expiry_30d")
    assert sum(1 for _ in declared_checks()) == sum(
        len(kind.checks) for kind in PROBES.values()
    )


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for arg in _types_in(field.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                _models(arg, seen)


def _types_in(annotation: object) -> list[object]:
    found = [annotation]
    for arg in getattr(annotation, "__args__", ()):
        found += _types_in(arg)
    return found


def _all_config_models() -> list[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    for kind in PROBES.values():
        _models(kind.config, seen)
    return sorted(seen, key=lambda m: m.__name__)


@pytest.mark.parametrize("model", _all_config_models(), ids=lambda m: m.__name__)
def test_renamed_and_secret_fields_point_somewhere_real(
    model: type[BaseModel],
) -> None:
    assert issubclass(model, Model), f"{model.__name__} must derive from Model"
    fields = _field_names(model)
    for old, new in model.RENAMED.items():
        assert old not in fields, f"{model.__name__}.{old} is renamed but still a field"
        assert _root_field(new) in fields, f"{model.__name__}: {old} -> {new}?"
    for stem in model.SECRETS:
        assert {stem, f"{stem}_file"} <= fields, f"{model.__name__}: secret {stem}"


def test_every_declared_check_row_is_a_checkdef() -> None:
    assert all(isinstance(row, CheckDef) for _kind, row in declared_checks())
