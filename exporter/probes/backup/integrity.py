"""Read a backup archive end to end, streamed and bounded, and say if it is whole.

The format comes from the magic bytes, never from the file name: a mongodump
`--archive --gzip` file is often called `backup_X.archive`. Blocking code, meant
to run in a worker thread (`asyncio.to_thread`); a thread cannot be
cancelled, so it stops on its own at the next chunk when the byte or time
budget runs out or when the caller sets the *stop* event.

    >>> verify_archive(Path("backup_20240101.archive"), max_bytes=2**32, seconds=50)
    Verdict(ok=True, format='mongodump.gz', detail='mongodump.gz read to the end, ...')
"""

from __future__ import annotations

import bz2
import collections
import gzip
import io
import lzma
import math
import os
import tarfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20
HEAD = 4096

MONGODUMP_MAGIC = (0x8199E26D).to_bytes(4, "little")
PG_DUMP_TEXT = b"-- PostgreSQL database dump"
PG_DUMP_COMPLETE = b"-- PostgreSQL database dump complete"
# mongodump --archive ends every namespace block, and so the archive, with
# this; a file cut anywhere else does not end with it.
MONGODUMP_TERMINATOR = b"\xff\xff\xff\xff"
TAIL = len(PG_DUMP_COMPLETE) + 64
TAR_MAGIC_OFFSET = 257

# Compressed streams Python reads without extra packages: magic -> opener.
_COMPRESSORS: dict[
    str, tuple[bytes, Callable[[io.BufferedReader], io.BufferedIOBase]]
] = {
    "gz": (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
    "bz2": (b"BZh", lambda raw: bz2.BZ2File(raw, mode="rb")),
    "xz": (b"\xfd7zXZ\x00", lambda raw: lzma.LZMAFile(raw, mode="rb")),  # noqa: SIM115 (caller closes)
}

# Decoders raise these on corrupt or truncated input; OSError covers
# BadGzipFile and read errors of the file itself.
_CORRUPT = (
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    tarfile.TarError,
    zipfile.BadZipFile,
    NotImplementedError,  # a zip member compressed with an unknown method
    RuntimeError,  # zipfile's "File is encrypted, password required"
    ValueError,
)

# Heads of files that are encrypted: age, OpenPGP (armored and binary packet
# tags for encrypted session keys), `openssl enc` with a salt.
_ENCRYPTED_MAGICS = (
    b"age-encryption.org/",
    b"-----BEGIN AGE ENCRYPTED FILE-----",
    b"-----BEGIN PGP MESSAGE-----",
    b"Salted__",
    b"\x84",
    b"\x85",
    b"\x8c",
    b"\xc1",
    b"\xc3",
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of one verification; *format* is what `sniff` names.

    *conclusive* is False when reading stopped early (a budget ran out, or
    the caller stopped it): the file itself may be fine, so such a verdict
    must not be remembered for it.
    """

    ok: bool
    format: str
    detail: str
    bytes_read: int = 0
    conclusive: bool = True


class BudgetExceeded(Exception):
    """The byte or time budget ran out, or the caller said stop, before the
    end of the archive; the message is "bytes", "time" or "stopped"."""


@dataclass(frozen=True, slots=True)
class _Limits:
    """When to give up: a monotonic deadline and the caller's stop event."""

    deadline: float
    stop: threading.Event | None = None

    def check(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise BudgetExceeded("stopped")
        if time.monotonic() > self.deadline:
            raise BudgetExceeded("time")


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Meter(io.RawIOBase):
    """A raw stream over *source* that enforces the limits and a byte budget,
    counts what passes, and remembers the last *keep_tail* bytes."""

    def __init__(
        self,
        source: _Readable,
        limits: _Limits,
        max_bytes: int | None = None,
        keep_tail: int = 0,
    ) -> None:
        super().__init__()
        self._source = source
        self._limits = limits
        self._max_bytes = max_bytes
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_size = 0
        self._keep_tail = keep_tail
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return isinstance(self._source, io.IOBase) and self._source.seekable()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if not isinstance(self._source, io.IOBase):
            raise io.UnsupportedOperation("seek")
        return self._source.seek(offset, whence)

    def tell(self) -> int:
        if not isinstance(self._source, io.IOBase):
            raise io.UnsupportedOperation("tell")
        return self._source.tell()

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._limits.check()
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        if self._max_bytes is not None and self.consumed + len(data) > self._max_bytes:
            raise BudgetExceeded("bytes")
        view[: len(data)] = data
        self.consumed += len(data)
        self._remember(data)
        return len(data)

    def tail(self) -> bytes:
        """The last *keep_tail* bytes read so far."""
        return b"".join(self._tail)[-self._keep_tail :] if self._keep_tail else b""

    def _remember(self, data: bytes) -> None:
        if not self._keep_tail or not data:
            return
        self._tail.append(data[-self._keep_tail :])
        self._tail_size += len(self._tail[-1])
        while self._tail_size - len(self._tail[0]) >= self._keep_tail:
            self._tail_size -= len(self._tail.popleft())


def _buffered(meter: _Meter) -> io.BufferedReader:
    return io.BufferedReader(meter, buffer_size=CHUNK)


def _drain(stream: _Readable) -> None:
    """Read *stream* to its end: decoders check CRCs and trailers only there."""
    while stream.read(CHUNK):
        pass


# --- sniffing ----------------------------------------------------------------


def read_head(path: Path, size: int = HEAD) -> bytes:
    """The first *size* bytes of *path*."""
    with path.open("rb") as file:
        return file.read(size)


def sniff(head: bytes) -> str:
    """The outer format of a file from its first bytes (gz, tar, zip,
    mongodump, ..., or unknown)."""
    if not head:
        return "empty"
    for name, (magic, _opener) in _COMPRESSORS.items():
        if head.startswith(magic):
            return name
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head[TAR_MAGIC_OFFSET : TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "tar"
    if head.startswith(MONGODUMP_MAGIC):
        return "mongodump"
    if PG_DUMP_TEXT in head[:512]:
        return "pg_dump.sql"
    if head.startswith(b"PGDMP"):
        return "pg_dump.custom"
    if head.startswith(b"REDIS") and head[5:9].isdigit():
        return "redis.rdb"
    if head.startswith(_ENCRYPTED_MAGICS):
        return "encrypted"
    return "unknown"


def looks_encrypted(head: bytes) -> bool:
    """Whether a file starting with *head* is encrypted rather than plain.

    Known plain formats (archives, compressed streams, dumps) and text are
    not; known encrypted formats are; any other binary counts as encrypted
    only when it looks random (above 7.5 bits of entropy per byte).
    """
    outer = sniff(head)
    if outer == "encrypted":
        return True
    if outer != "unknown":
        return False
    if _is_text(head):
        return False
    return _entropy(head) > 7.5


def _is_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # The head may end inside a multi-byte character.
        try:
            text = data[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


def _entropy(data: bytes) -> float:
    counts = collections.Counter(data)
    total = len(data)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


# --- verification --------------------------------------------------------------


def verify_archive(
    path: Path,
    *,
    max_bytes: int,
    seconds: float,
    stop: threading.Event | None = None,
) -> Verdict:
    """Read *path* end to end as whatever its magic bytes say it is.

    Never raises for a bad archive: corrupt, truncated, unknown and
    over-budget files all come back as `ok=False` with a short detail.
    Setting *stop* from another thread ends the read at the next chunk.
    """
    limits = _Limits(time.monotonic() + seconds, stop)
    outer = "unknown"
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return Verdict(
                False,
                outer,
                f"not verified: {size} bytes is above verify_max_bytes"
                f" ({max_bytes}); raise it or set verify: false",
            )
        outer = sniff(read_head(path))
        with path.open("rb", buffering=0) as file:
            meter = _Meter(file, limits, max_bytes=max_bytes)
            verdict = _verify(outer, path, meter, limits, max_bytes)
        return Verdict(verdict.ok, verdict.format, verdict.detail, meter.consumed)
    except BudgetExceeded as budget:
        what = {
            "time": f"verify_timeout ({seconds:g}s) ran out",
            "bytes": f"verify_max_bytes ({max_bytes}) ran out",
        }.get(str(budget), "stopped (the run was cancelled)")
        return Verdict(False, outer, f"not verified: {what}", conclusive=False)
    except _CORRUPT as error:
        return Verdict(False, outer, f"{outer}: {_describe(error)}")


def _describe(error: BaseException) -> str:
    if isinstance(error, EOFError):
        return "truncated: the stream ends before its end marker"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"unreadable: {type(error).__name__}: {text}"[:160]


def _verify(
    outer: str, path: Path, meter: _Meter, limits: _Limits, max_bytes: int
) -> Verdict:
    if outer in _COMPRESSORS:
        inner = _inner_format(path, outer, limits, max_bytes)
        return _verify_compressed(outer, inner, meter, limits)
    if outer == "zip":
        return _verify_zip(meter)
    if outer == "tar":
        return _verify_tar(_buffered(meter), limits, "tar")
    if outer in ("mongodump", "pg_dump.sql", "redis.rdb"):
        return _verify_plain(outer, meter, limits)
    if outer == "empty":
        return Verdict(False, outer, "empty file")
    if outer == "pg_dump.custom":
        return Verdict(
            False,
            outer,
            "pg_dump custom format cannot be verified here; run pg_restore"
            " --list in the backup job and set verify: false",
        )
    if outer == "encrypted":
        return Verdict(False, outer, "encrypted: contents not verifiable")
    return Verdict(
        False,
        outer,
        "unknown format (not gzip, bzip2, xz, tar, zip, mongodump, pg_dump"
        " text or redis rdb)",
    )


def _open_compressed(outer: str, meter: _Meter) -> io.BufferedIOBase:
    _magic, opener = _COMPRESSORS[outer]
    return opener(_buffered(meter))


def _inner_format(path: Path, outer: str, limits: _Limits, max_bytes: int) -> str:
    """What the decompressed stream starts with, from a separate short read."""
    with (
        path.open("rb", buffering=0) as file,
        _open_compressed(outer, _Meter(file, limits, max_bytes)) as stream,
    ):
        head = stream.read(HEAD)
    inner = sniff(head)
    return inner if inner in ("tar", "mongodump", "pg_dump.sql") else ""


def _verify_compressed(
    outer: str, inner: str, meter: _Meter, limits: _Limits
) -> Verdict:
    with _open_compressed(outer, meter) as stream:
        if inner == "tar":
            return _verify_tar(stream, limits, f"tar.{outer}")
        content = _Meter(stream, limits, keep_tail=TAIL)
        _drain(content)
    name = f"{inner}.{outer}" if inner else outer
    problem = _ending_problem(inner, content.tail())
    if problem:
        return Verdict(False, name, problem)
    return Verdict(True, name, f"{name} read to the end, {content.consumed} bytes out")


def _ending_problem(inner: str, tail: bytes) -> str:
    """Why a dump whose last bytes are *tail* was cut short; "" if it was not.

    A gzip stream can be whole while the dump inside it is not (the job was
    killed and the compressor flushed), so the dump's own end marker decides.
    """
    if inner == "pg_dump.sql" and PG_DUMP_COMPLETE not in tail:
        return "pg_dump text ends without 'dump complete'"
    if inner == "mongodump" and not tail.endswith(MONGODUMP_TERMINATOR):
        return "truncated: mongodump archive does not end with its terminator"
    if inner == "redis.rdb" and (len(tail) < 9 or tail[-9] != 0xFF):
        return "truncated: redis rdb has no end-of-file opcode"
    return ""


def _verify_tar(stream: _Readable, limits: _Limits, name: str) -> Verdict:
    """Walk every member; the archive must end with its zero blocks."""
    content = _Meter(stream, limits, keep_tail=2 * tarfile.BLOCKSIZE)
    members = 0
    with tarfile.open(fileobj=_buffered(content), mode="r|") as tar:
        for _member in tar:
            members += 1
    _drain(content)
    if content.tail().strip(b"\0") or len(content.tail()) < 2 * tarfile.BLOCKSIZE:
        return Verdict(
            False, name, f"truncated: no end-of-archive after {members} member(s)"
        )
    return Verdict(True, name, f"{name} with {members} member(s) read to the end")


def _verify_zip(meter: _Meter) -> Verdict:
    """Read every member through its CRC check."""
    with zipfile.ZipFile(_buffered(meter)) as archive:
        members = archive.infolist()
        encrypted = sum(1 for info in members if info.flag_bits & 0x1)
        if encrypted:
            return Verdict(
                False, "zip", f"{encrypted} encrypted members: contents not verifiable"
            )
        for info in members:
            with archive.open(info) as member:
                _drain(member)
    return Verdict(True, "zip", f"zip with {len(members)} member(s), every CRC matches")


def _verify_plain(outer: str, meter: _Meter, limits: _Limits) -> Verdict:
    content = _Meter(_buffered(meter), limits, keep_tail=TAIL)
    _drain(content)
    problem = _ending_problem(outer, content.tail())
    if problem:
        return Verdict(False, outer, problem)
    return Verdict(True, outer, f"{outer} read to the end")
