"""Shared fixtures: loopback TCP servers and config helpers."""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme

from exporter.config import Config, parse_config

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
StartServer = Callable[..., Awaitable[int]]


def config_from(yaml_text: str) -> Config:
    """Parse an indented YAML snippet as a config file."""
    return parse_config(textwrap.dedent(yaml_text), "test.yml")


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and never answer: a hanging target."""
    await reader.read()
    writer.close()


@pytest.fixture
async def tcp_server() -> AsyncIterator[StartServer]:
    """Factory: start a TCP server on 127.0.0.1 with a handler; gives the port."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler = _hold) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A test certificate authority (trustme) for TLS servers and clients."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    """*ca*'s certificate as a PEM file."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def demo_environment() -> dict[str, str]:
    """The environment for a demo on free ports (see demo/)."""
    from demo.__main__ import DEMO_PORTS

    return {**os.environ, **{name: str(free_port()) for name in DEMO_PORTS}}
