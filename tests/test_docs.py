"""Every probe config the docs show loads as written.

A ```yaml block of a docs page, the README or config/ is one of: a whole
file (a mapping with `probes:`), a list of probes, or the fields of one
probe, merged into a minimal probe of the page's kind. Alert rules and
Modbus profile files are told apart and checked for what they are.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs" / "probes").glob("*.md"))
# What a page's field fragment is merged into.
MINIMAL: dict[str, dict[str, Any]] = {
    "http": {"kind": "http", "name": "fragment", "url": "https://example.com/h"},
    "redis": {"kind": "redis", "name": "fragment", "url": "redis://127.0.0.1:6379"},
    "workers": {
        "kind": "workers",
        "name": "fragment",
        "url": "http://127.0.0.1:3001",
        "endpoints": {"status": "/api/threading/status"},
    },
    "modbus": {
        "kind": "modbus",
        "name": "fragment",
        "host": "127.0.0.1",
        "registers": [{"name": "r", "address": 0}],
    },
}
PROFILES_HEADER = "# /etc/readiness/modbus-profiles.yml"


def _blocks(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [
        textwrap.dedent(b)
        for b in re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)
    ]


def _cases() -> list[Any]:
    cases = []
    for page in [*PAGES, ROOT / "README.md"]:
        for index, block in enumerate(_blocks(page)):
            cases.append(pytest.param(page, block, id=f"{page.name}#{index}"))
    return cases


def _is_alert_rules(data: Any) -> bool:
    if isinstance(data, dict):
        return "groups" in data
    return isinstance(data, list) and bool(data) and "alert" in data[0]


def _is_scrape_config(data: Any) -> bool:
    return isinstance(data, dict) and "scrape_configs" in data


@pytest.mark.parametrize(("page", "block"), _cases())
def test_yaml_examples_load(
    page: Path, block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Secrets the examples take from the environment, as a user would set.
    for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", block):
        monkeypatch.setenv(name, "x")
    # The page's own profiles file, for the examples that use a profile.
    profiles = tmp_path / "modbus-profiles.yml"
    shown = [b for b in _blocks(page) if b.lstrip().startswith(PROFILES_HEADER)]
    profiles.write_text(shown[0] if shown else "{}\n", encoding="utf-8")
    if block.lstrip().startswith(PROFILES_HEADER):
        profile = next(iter(yaml.safe_load(block)))
        block = (
            f"- {{kind: modbus, name: p, host: 127.0.0.1, profile: {profile},"
            f" profiles_file: {profiles}}}\n"
        )
    block = block.replace("/etc/readiness/modbus-profiles.yml", str(profiles))
    data = yaml.safe_load(block)
    if _is_alert_rules(data) or _is_scrape_config(data) or data is None:
        pytest.skip("not a probe config (alert rules, scrape config)")
    if isinstance(data, list):
        text = "probes:\n" + textwrap.indent(block, "  ")
    elif "probes" in data or data.keys() <= {
        "defaults",
        "scheduler",
        "scoring",
        "systems",
    }:
        text = block
    else:
        # The README's fragments (tls_config) are shown on an http probe.
        kind = "http" if page.name == "README.md" else page.stem
        if kind not in MINIMAL:
            pytest.fail(f"a fragment on {page.name} that is no probe config")
        text = yaml.safe_dump({"probes": [{**MINIMAL[kind], **data}]})
    parse_config(text, f"{page.name}")
