"""Closing an asyncio stream without letting the peer hold the run."""

from __future__ import annotations

import asyncio
import contextlib

from exporter.probes.context import Deadline

# A close that takes longer than this is a peer that will never finish it.
CLOSE_WAIT_SECONDS = 1.0


async def close_stream(writer: asyncio.StreamWriter, deadline: Deadline) -> None:
    """Close *writer* and wait for the peer's side of the close (a TLS
    close_notify, a FIN) at most a second, and never past the run's budget:
    a peer that never finishes the close must not hold the run, nor the
    daemon's shutdown."""
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        # remaining() raises TimeoutError when the budget is spent: no wait.
        wait = min(CLOSE_WAIT_SECONDS, deadline.remaining())
        await asyncio.wait_for(writer.wait_closed(), wait)
