"""Write each kind's checks and metrics into its docs page, from the tables.

`docs/probes/<kind>.md` holds two generated blocks, between
`<!-- BEGIN GENERATED checks -->` / `<!-- END GENERATED checks -->` and the
same for `metrics`; everything else on the page is written by hand. Run
`python scripts/generate_docs.py` after changing a kind's `CHECKS` or
`METRICS`; `--check` writes nothing and exits 1 when a page is stale (a
test runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from exporter.kinds import PROBES, ProbeKind
from exporter.probes.base import CheckDef, MetricSpec

DOCS = Path(__file__).resolve().parent.parent / "docs" / "probes"
NAMESPACE = "readiness_"


def _cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def check_name(row: CheckDef) -> str:
    """The name as a reader writes it: `extension_<item>` for a family."""
    return row.name.replace("{item}", "<item>")


def checks_table(kind: ProbeKind) -> str:
    lines = [
        "| check | category | severity | threshold | passes when |",
        "|---|---|---|---|---|",
    ]
    for row in kind.checks:
        meaning = row.meaning
        if row.formerly:
            former = ", ".join(
                f"`{name.replace('{item}', '<item>')}`" for name in row.formerly
            )
            meaning += f" Formerly {former}."
        threshold = f"`{row.threshold}`" if row.threshold else ""
        lines.append(
            f"| `{check_name(row)}` | {row.category.value} | {row.severity.value}"
            f" | {_cell(threshold)} | {_cell(meaning)} |"
        )
    return "\n".join(lines)


def _labels(spec: MetricSpec) -> str:
    return ", ".join(("probe", *spec.labels))


def metrics_table(kind: ProbeKind) -> str:
    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for spec in kind.metrics:
        lines.append(
            f"| `{NAMESPACE}{spec.name}` | {spec.type} | {_labels(spec)}"
            f" | {_cell(spec.help)} |"
        )
    return "\n".join(lines)


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- BEGIN GENERATED {name} [^>]*-->\n).*?(<!-- END GENERATED {name} -->)",
        re.DOTALL,
    )


def _filler(table: str) -> Callable[[re.Match[str]], str]:
    return lambda match: f"{match.group(1)}{table}\n{match.group(2)}"


def render_page(kind: ProbeKind, text: str) -> str:
    """*text* (a docs page) with its generated blocks rewritten."""
    for name, table in (
        ("checks", checks_table(kind)),
        ("metrics", metrics_table(kind)),
    ):
        pattern = _block(name)
        if not pattern.search(text):
            raise ValueError(
                f"docs/probes/{kind.name}.md has no generated {name} block;"
                f" add <!-- BEGIN GENERATED {name} (scripts/generate_docs.py)"
                f" --> and <!-- END GENERATED {name} --> where the table goes"
            )
        text = pattern.sub(_filler(table), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when stale")
    args = parser.parse_args(argv)
    stale = []
    for kind in PROBES.values():
        path = DOCS / f"{kind.name}.md"
        old = path.read_text(encoding="utf-8")
        new = render_page(kind, old)
        if new == old:
            continue
        stale.append(str(path))
        if not args.check:
            path.write_text(new, encoding="utf-8")
    if args.check and stale:
        print("stale, run python scripts/generate_docs.py:", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
