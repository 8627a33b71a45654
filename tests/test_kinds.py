"""Walk the table of kinds: a half-added kind fails here."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import yaml

from exporter.config import load_config
from exporter.kinds import PROBES

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_kind_is_complete(kind: str) -> None:
    entry = PROBES[kind]
    literal = typing.get_args(entry.config.model_fields["kind"].annotation)
    assert literal == (kind,), "the config's kind literal must match its key"
    assert (ROOT / "docs" / "probes" / f"{kind}.md").is_file(), "docs section missing"
    example = yaml.safe_load((ROOT / "config" / "example.yml").read_text())
    assert any(p.get("kind") == kind for p in example["probes"]), "no example"
    assert entry.metrics, "declare the kind's metrics"


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_metric_names_follow_conventions(kind: str) -> None:
    for spec in PROBES[kind].metrics:
        assert NAME.match(spec.name), spec.name
        assert spec.name.startswith(f"{kind}_"), f"{spec.name}: prefix with {kind}_"
        assert spec.help.strip().endswith("."), f"{spec.name}: HELP is a sentence"
        assert (spec.type == "counter") == spec.name.endswith("_total"), spec.name
        assert (spec.type == "info") == spec.name.endswith("_info"), spec.name
        assert "probe" not in spec.labels, f"{spec.name}: probe label is added"


@pytest.mark.parametrize("name", ["example.yml", "demo.yml"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(ROOT / "config" / name)
    assert config.probes
