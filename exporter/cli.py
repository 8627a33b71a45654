"""Command line: `run` the daemon, `check-config` a file, `check` (deploy gate).

Exit codes: 0 fine; 1 `check` found the system not ready (score under the
minimum or a critical check failing); 2 the config or the flags are wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from exporter import __version__
from exporter.config import Config, ConfigError, Settings, load_config
from exporter.logs import setup_logging

EXIT_OK, EXIT_NOT_READY, EXIT_CONFIG = 0, 1, 2


def _add_common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps unset flags out of the namespace, so the READINESS_*
    # environment (read by Settings) is not overridden by a default.
    parser.add_argument(
        "--config",
        "--config.file",
        dest="config_file",
        default=argparse.SUPPRESS,
        help="YAML file of probes (env READINESS_CONFIG_FILE)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=["debug", "info", "warning", "error"],
        default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=["text", "json"],
        default=argparse.SUPPRESS,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs test)."""
    parser = argparse.ArgumentParser(
        prog="readiness-exporter",
        description="Production-readiness checklists as live Prometheus metrics.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the daemon")
    _add_common(run)
    run.add_argument(
        "--web.listen-address",
        dest="web_listen_address",
        default=argparse.SUPPRESS,
        help="HOST:PORT to serve on (env READINESS_WEB_LISTEN_ADDRESS)",
    )

    check_config = commands.add_parser(
        "check-config", help="validate a config file and exit"
    )
    check_config.add_argument("file", nargs="?", help="config file to validate")
    _add_common(check_config)

    check = commands.add_parser(
        "check", help="run every probe once, print the report, gate on the score"
    )
    _add_common(check)
    check.add_argument(
        "--system",
        default=None,
        help="run and judge only this system's probes (default: the estate)",
    )
    check.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="pass at this score instead of the verdict's ready band; a failing"
        " critical check still fails",
    )
    check.add_argument("--format", choices=["table", "json"], default="table")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    keys = ("config_file", "web_listen_address", "log_level", "log_format")
    given = {k: getattr(args, k) for k in keys if hasattr(args, k)}
    return Settings(**given)


def _load(path: Path, err: TextIO) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as error:
        print(f"invalid configuration in {error.path}:", file=err)
        for problem in error.problems:
            print(f"  - {problem}", file=err)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `readiness-exporter` command."""
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        host, port = settings.listen_host_port()
    except (ValidationError, ValueError) as error:
        print(f"invalid settings: {error}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.log_format)
    if args.command == "check-config":
        path = Path(args.file) if args.file else settings.config_file
        config = _load(path, sys.stderr)
        if config is None:
            return EXIT_CONFIG
        for warning in config.warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        count = len(config.probes)
        systems = sorted({p.system for p in config.probes} | set(config.systems))
        print(
            f"{path}: OK, {count} probe{'' if count == 1 else 's'} in"
            f" {len(systems)} system{'' if len(systems) == 1 else 's'}"
            f" ({', '.join(systems)})"
        )
        return EXIT_OK
    config = _load(settings.config_file, sys.stderr)
    if config is None:
        return EXIT_CONFIG
    if args.command == "check":
        from exporter.gate import UnknownSystem, run_gate

        try:
            return asyncio.run(
                run_gate(config, args.min_score, args.format, args.system)
            )
        except UnknownSystem as error:
            print(str(error), file=sys.stderr)
            return EXIT_CONFIG
    from exporter.server import Daemon, serve

    asyncio.run(serve(Daemon(config), host, port))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
