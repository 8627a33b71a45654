"""The demo's backup directories: a healthy MongoDB set (30 daily
`mongodump --archive --gzip`-shaped files, newest an hour old) and a stale
PostgreSQL set (7 daily `pg_dump | gzip` files, newest 3 days old, so
`backup_fresh` fails).

    .demo/backups/mongodb/backup_20240130_020000.archive.gz  (30 files)
    .demo/backups/postgres/backup_20240127_020000.sql.gz     (7 files)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import os
import random
import shutil
from pathlib import Path

DAY = 86400.0
HOUR = 3600.0
MONGODUMP_MAGIC = (0x8199E26D).to_bytes(4, "little")


def _mongodump_archive(rng: random.Random, size: int) -> bytes:
    """Magic, then data shaped enough to compress like a real dump."""
    words = [b"_id", b"user", b"email", b"created", b"chat", b"pdf", b"page"]
    body = b"".join(rng.choice(words) + rng.randbytes(4) for _ in range(size // 7))
    # A real `mongodump --archive` ends with the 0xffffffff terminator; the
    # integrity check reads to it.
    return gzip.compress(MONGODUMP_MAGIC + body + b"\xff\xff\xff\xff", mtime=0)


def _pg_dump(rng: random.Random, rows: int) -> bytes:
    # The shape of a current pg_dump (15.14+): \restrict at the top, the
    # same key in \unrestrict after the footer.
    lines = [
        b"--",
        b"-- PostgreSQL database dump",
        b"--",
        b"",
        b"\\restrict demo0key",
        b"",
        b"COPY public.jobs FROM stdin;",
    ]
    lines += [f"{n}\tjob-{rng.randrange(10**6)}\tdone".encode() for n in range(rows)]
    lines += [
        b"\\.",
        b"",
        b"",
        b"--",
        b"-- PostgreSQL database dump complete",
        b"--",
        b"",
        b"\\unrestrict demo0key",
        b"",
        b"",
    ]
    return gzip.compress(b"\n".join(lines), mtime=0)


def _write(directory: Path, ages: list[float], suffix: str, make: bytes) -> None:
    now = datetime.datetime.now(datetime.UTC).timestamp()
    for age in ages:
        stamp = now - age
        when = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
        path = directory / f"backup_{when:%Y%m%d_%H%M%S}{suffix}"
        path.write_bytes(make)
        os.utime(path, (stamp, stamp))


def create_backup_sets(root: Path) -> None:
    """(Re)create both sets under *root*; mtimes are relative to now."""
    shutil.rmtree(root, ignore_errors=True)
    mongodb, postgres = root / "mongodb", root / "postgres"
    mongodb.mkdir(parents=True)
    postgres.mkdir(parents=True)
    rng = random.Random(1)
    for day in range(30):
        _write(
            mongodb, [HOUR + day * DAY], ".archive.gz", _mongodump_archive(rng, 20_000)
        )
    for day in range(7):
        _write(postgres, [3 * DAY + day * DAY], ".sql.gz", _pg_dump(rng, 500))


async def start(stack: contextlib.AsyncExitStack, workdir: Path) -> None:
    """Write the backup sets under *workdir*/backups; nothing to stop later."""
    del stack  # files only: they stay for the next run to replace
    await asyncio.to_thread(create_backup_sets, workdir / "backups")
