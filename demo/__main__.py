"""`python -m demo`: start the simulated estate, then the daemon."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import logging
import os
import sys
from pathlib import Path

from demo import (
    backups as demo_backups,
    modbus as demo_modbus,
    web as demo_web,
    workers as demo_workers,
)
from exporter.config import DEFAULT_PORT, ConfigError, Settings, load_config
from exporter.logs import setup_logging
from exporter.server import Daemon, serve

logger = logging.getLogger("demo")


# The estate's ports. Each may be moved with its environment variable, which
# config/demo.yml reads too (`${DEMO_API_PORT:-18080}`), so two demos (or a
# demo and the test suite) can run side by side.
DEMO_PORTS = {
    "DEMO_API_PORT": 18080,
    "DEMO_FRONTEND_PORT": 18081,
    "DEMO_WORKERS_PORT": 18082,
    "DEMO_HTTPS_PORT": 18443,
    "DEMO_MODBUS_PORT": 15020,
}


def demo_ports() -> dict[str, int]:
    """The ports to use, published in the environment for the config, with
    the dates its attestations were made (one current, one long expired)."""
    ports = {name: int(os.environ.get(name, port)) for name, port in DEMO_PORTS.items()}
    os.environ.update({name: str(port) for name, port in ports.items()})
    today = datetime.datetime.now(datetime.UTC).date()
    os.environ["DEMO_LAST_WEEK"] = str(today - datetime.timedelta(days=7))
    os.environ["DEMO_LAST_YEAR"] = str(today - datetime.timedelta(days=365))
    return ports


async def _main(config_path: Path, workdir: Path, listen: str) -> int:
    ports = demo_ports()
    async with contextlib.AsyncExitStack() as stack:
        # Each piece of the estate registers its own shutdown on the stack.
        await demo_web.start(
            stack,
            workdir,
            api_port=ports["DEMO_API_PORT"],
            frontend_port=ports["DEMO_FRONTEND_PORT"],
            https_port=ports["DEMO_HTTPS_PORT"],
        )
        await demo_workers.start(stack, workdir, port=ports["DEMO_WORKERS_PORT"])
        await demo_modbus.start(stack, workdir, port=ports["DEMO_MODBUS_PORT"])
        await demo_backups.start(stack, workdir)
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
    parser = argparse.ArgumentParser(prog="python -m demo")
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
