"""Every dashboard by file name, rendered to JSON text, written or compared;
`main()` is `python -m grafana.generator`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from alerts.thresholds import THRESHOLDS_FILE, Thresholds, load_thresholds
from grafana.generator import (
    backups,
    datastores,
    exporter_self,
    modbus,
    overview,
    services,
    workers,
)
from grafana.generator.panels import JSON

DASHBOARDS_DIR = Path(__file__).resolve().parent.parent / "dashboards"

BUILDERS: dict[str, Callable[[Thresholds], JSON]] = {
    "readiness-overview.json": overview.build,
    "readiness-services.json": services.build,
    "readiness-datastores.json": datastores.build,
    "readiness-modbus.json": modbus.build,
    "readiness-workers.json": workers.build,
    "readiness-backups.json": backups.build,
    "readiness-exporter.json": exporter_self.build,
}


def render_all(thresholds: Thresholds) -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        name: json.dumps(build(thresholds), indent=2, ensure_ascii=False) + "\n"
        for name, build in BUILDERS.items()
    }


def stale_files(
    files: Mapping[str, str], directory: Path = DASHBOARDS_DIR
) -> list[str]:
    """Dashboards whose file in *directory* differs from *files* or is missing."""
    return [
        name
        for name, text in files.items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]


def write(files: Mapping[str, str], directory: Path = DASHBOARDS_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the bundled dashboards.")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a file is out of date"
    )
    parser.add_argument("--thresholds", type=Path, default=THRESHOLDS_FILE)
    parser.add_argument("--out", type=Path, default=DASHBOARDS_DIR)
    args = parser.parse_args(argv)
    try:
        files = render_all(load_thresholds(args.thresholds))
    except ValidationError as error:
        print(f"{args.thresholds}: {error}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_files(files, args.out)
        for name in stale:
            print(f"out of date: {args.out / name}", file=sys.stderr)
        return 1 if stale else 0
    write(files, args.out)
    return 0
