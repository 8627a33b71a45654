"""`python -m exporter.demo`: start the simulated estate, then the daemon."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from exporter.config import DEFAULT_PORT, ConfigError, Settings, load_config
from exporter.demo import (
    backups as demo_backups,
    modbus as demo_modbus,
    web as demo_web,
    workers as demo_workers,
)
from exporter.logs import setup_logging
from exporter.server import Daemon, serve

logger = logging.getLogger("exporter.demo")


async def _main(config_path: Path, workdir: Path, listen: str) -> int:
    async with contextlib.AsyncExitStack() as stack:
        # Each piece of the estate registers its own shutdown on the stack.
        pieces = (demo_web, demo_workers, demo_backups, demo_modbus)
        for start in (piece.start for piece in pieces):
            await start(stack, workdir)
        try:
            config = load_config(config_path)
        except ConfigError as error:
            print(error, file=sys.stderr)
            return 2
        host, port = Settings(web_listen_address=listen).listen_host_port()
        logger.info(
            "demo estate up; status page on http://%s:%d/ , metrics on /metrics",
            "127.0.0.1" if host in ("0.0.0.0", "") else host,
            port,
        )
        await serve(Daemon(config), host, port)
    return 0


def main() -> int:
    """Run the demo until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m exporter.demo")
    parser.add_argument("--config", default="config/demo.yml")
    parser.add_argument("--workdir", default=".demo")
    # The demo is for this machine only: loopback unless told otherwise.
    parser.add_argument(
        "--web.listen-address", dest="listen", default=f"127.0.0.1:{DEFAULT_PORT}"
    )
    args = parser.parse_args()
    setup_logging("info", "text")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    return asyncio.run(_main(Path(args.config), Path(args.workdir), args.listen))


if __name__ == "__main__":
    sys.exit(main())
