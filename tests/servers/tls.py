"""A TLS endpoint for tests that refuses handshakes the way real servers do.

asyncio's own TLS servers (and so aiohttp's) abort the connection when a
handshake fails, before the alert that says why has left: the client sees a
reset (reason connect) where nginx, Redis or PostgreSQL would have sent
`protocol_version` or `unknown_ca` (reason tls). This server runs OpenSSL
through memory BIOs on a plain asyncio socket and sends every byte OpenSSL
produced, alerts included, before closing. A completed handshake is held
open until the client leaves; nothing is spoken over it.

    context = server_context(ca, maximum=ssl.TLSVersion.TLSv1_2)
    async with handshake_server(context) as server:
        ...connect to 127.0.0.1:server.port...
    server.refusals   # the OpenSSL error of each refused handshake

`server_context` builds the server side of every TLS test server (aiohttp's
or asyncio's included): a trustme certificate, optionally a version cap,
client certificates, and a record of the SNI each client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import trustme


def server_context(
    ca: trustme.CA,
    *names: str,
    maximum: ssl.TLSVersion | None = None,
    client_ca: trustme.CA | None = None,
    server_names: list[str | None] | None = None,
) -> ssl.SSLContext:
    """A server context with a certificate from *ca* for *names* (127.0.0.1
    and localhost by default), at most TLS *maximum*, requiring a client
    certificate from *client_ca*; the SNI of each client (None for none) is
    appended to *server_names*."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1", "localhost"))).configure_cert(context)
    if maximum is not None:
        context.maximum_version = maximum
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    if server_names is not None:
        sent = server_names

        def record(
            sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext
        ) -> None:
            sent.append(name)

        context.sni_callback = record
    return context


@dataclass
class HandshakeServer:
    """Where the server listens and what it saw."""

    port: int = 0
    completed: int = 0
    refusals: list[ssl.SSLError] = field(default_factory=list)


async def _handshake(
    context: ssl.SSLContext,
    seen: HandshakeServer,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    with contextlib.suppress(ConnectionError):
        while True:
            try:
                tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            except ssl.SSLError as error:
                seen.refusals.append(error)
                writer.write(outgoing.read())  # the alert
                await writer.drain()
                break
            writer.write(outgoing.read())
            await writer.drain()
            if done:
                seen.completed += 1
                await reader.read()  # until the client leaves
                break
            data = await reader.read(65536)
            if not data:
                break
            incoming.write(data)
    writer.close()


@contextlib.asynccontextmanager
async def handshake_server(context: ssl.SSLContext) -> AsyncIterator[HandshakeServer]:
    """A TLS endpoint on 127.0.0.1 with the server *context*."""
    seen = HandshakeServer()

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await _handshake(context, seen, reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    seen.port = server.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        server.close()
        await server.wait_closed()
