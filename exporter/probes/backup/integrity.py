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
import contextlib
import gzip
import io
import lzma
import math
import os
import stat
import tarfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from exporter.probes.backup import pgdump

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20
HEAD = 4096

MONGODUMP_MAGIC = (0x8199E26D).to_bytes(4, "little")
PG_DUMP_TEXT = b"-- PostgreSQL database dump"
PG_DUMPALL_TEXT = b"-- PostgreSQL database cluster dump"
# mongodump --archive ends every namespace block, and so the archive, with
# this; a file cut anywhere else does not end with it.
MONGODUMP_TERMINATOR = b"\xff\xff\xff\xff"
# Enough for pg_dump's footer and its \\unrestrict line with a long key.
TAIL = 1024
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
    if PG_DUMPALL_TEXT in head[:512]:
        return "pg_dumpall.sql"
    if head.startswith(pgdump.PG_DUMP_MAGIC):
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

RawOpener = Callable[[], io.RawIOBase]


class SourceChanged(Exception):
    """The backup changed while it was being read (a conditional read of a
    bucket object failed); the read says nothing about either version."""


class SourceFailed(Exception):
    """The store failed while the backup was being read (a connection broke
    off); not the archive's fault. The message says what happened."""


def verify_archive(
    path: Path,
    *,
    max_bytes: int,
    seconds: float,
    stop: threading.Event | None = None,
) -> Verdict:
    """Read the backup at *path*, a file or a directory, end to end.

    Never raises for a bad archive: corrupt, truncated, unknown and
    over-budget backups all come back as `ok=False` with a short detail.
    Setting *stop* from another thread ends the read at the next chunk.
    """
    limits = _Limits(time.monotonic() + seconds, stop)
    try:
        info = path.stat()
    except OSError as error:
        return Verdict(False, "unknown", f"unreadable: {_describe(error)}")
    if stat.S_ISDIR(info.st_mode):
        return _guarded(
            lambda: _verify_directory(path, limits, max_bytes), seconds, max_bytes
        )
    return verify_stream(
        lambda: path.open("rb", buffering=0),
        info.st_size,
        max_bytes=max_bytes,
        seconds=seconds,
        stop=stop,
        limits=limits,
    )


def verify_stream(
    open_raw: RawOpener,
    size: int,
    *,
    max_bytes: int,
    seconds: float,
    stop: threading.Event | None = None,
    limits: _Limits | None = None,
) -> Verdict:
    """Read the *size* bytes that *open_raw* gives, as their magic bytes say.

    *open_raw* returns a raw stream from the first byte; a zip archive needs
    it seekable. The same promises as `verify_archive`.
    """
    limits = limits or _Limits(time.monotonic() + seconds, stop)
    if size > max_bytes:
        return Verdict(
            False,
            "unknown",
            f"not verified: {size} bytes is above verify_max_bytes"
            f" ({max_bytes}); raise it or set verify: false",
        )
    return _guarded(
        lambda: _verify_one(open_raw, limits, max_bytes), seconds, max_bytes
    )


def _guarded(read: Callable[[], Verdict], seconds: float, max_bytes: int) -> Verdict:
    """*read*'s verdict, with budgets, store failures and decoder errors
    turned into verdicts too."""
    try:
        return read()
    except BudgetExceeded as budget:
        what = {
            "time": f"verify_timeout ({seconds:g}s) ran out",
            "bytes": f"verify_max_bytes ({max_bytes}) ran out",
        }.get(str(budget), "stopped (the run was cancelled)")
        return Verdict(False, "unknown", f"not verified: {what}", conclusive=False)
    except SourceChanged:
        return Verdict(
            False,
            "unknown",
            "changed while being read; retried next run",
            conclusive=False,
        )
    except SourceFailed as failed:
        return Verdict(False, "unknown", f"not verified: {failed}", conclusive=False)
    except _Failed as failed:
        return failed.verdict


class _Failed(Exception):
    """Carries a failed verdict out of nested readers."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.detail)
        self.verdict = verdict


def _verify_one(open_raw: RawOpener, limits: _Limits, max_bytes: int) -> Verdict:
    outer = "unknown"
    try:
        with open_raw() as raw:
            meter = _Meter(raw, limits, max_bytes=max_bytes)
            buffered = _buffered(meter)
            head = _read_up_to(buffered, HEAD)
            outer = sniff(head)
            verdict = _verify(outer, head, buffered, limits)
        return Verdict(verdict.ok, verdict.format, verdict.detail, meter.consumed)
    except _CORRUPT as error:
        raise _Failed(Verdict(False, outer, f"{outer}: {_describe(error)}")) from None


def _pg_problem(name: str, problem: Exception) -> str:
    kind = "truncated" if isinstance(problem, pgdump.Truncated) else "corrupt"
    return f"{name}: {kind}: {problem}"[:200]


def _describe(error: BaseException) -> str:
    if isinstance(error, EOFError):
        return "truncated: the stream ends before its end marker"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"unreadable: {type(error).__name__}: {text}"[:160]


def _read_up_to(stream: _Readable, size: int) -> bytes:
    """The first *size* bytes of *stream* (fewer only at its end)."""
    parts: list[bytes] = []
    wanted = size
    while wanted and (data := stream.read(wanted)):
        parts.append(data)
        wanted -= len(data)
    return b"".join(parts)


class _Prefixed:
    """*head* (already read), then the rest of *stream*."""

    def __init__(self, head: bytes, stream: _Readable) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            if size < 0 or size >= len(self._head):
                data, self._head = self._head, b""
            else:
                data, self._head = self._head[:size], self._head[size:]
            return data
        return self._stream.read(size)


def _verify(
    outer: str, head: bytes, buffered: io.BufferedReader, limits: _Limits
) -> Verdict:
    if outer in _COMPRESSORS:
        return _verify_compressed(outer, _Prefixed(head, buffered), limits)
    if outer == "zip":
        buffered.seek(0)
        return _verify_zip(buffered)
    if outer == "tar":
        return _verify_tar(_Prefixed(head, buffered), limits, "tar")
    if outer == "pg_dump.custom":
        return _verify_custom(outer, _Prefixed(head, buffered), limits)
    if outer in _PLAIN:
        return _verify_plain(outer, head, _Prefixed(head, buffered), limits)
    if outer == "empty":
        return Verdict(False, outer, "empty file")
    if outer == "encrypted":
        return Verdict(False, outer, "encrypted: contents not verifiable")
    return Verdict(
        False,
        outer,
        "unknown format (not gzip, bzip2, xz, tar, zip, mongodump, pg_dump"
        " text, custom or directory format, or redis rdb)",
    )


_PLAIN = ("mongodump", "pg_dump.sql", "pg_dumpall.sql", "redis.rdb")


def _verify_compressed(outer: str, compressed: _Readable, limits: _Limits) -> Verdict:
    _magic, opener = _COMPRESSORS[outer]
    with opener(io.BufferedReader(_Raw(compressed), buffer_size=CHUNK)) as stream:
        inner_head = _read_up_to(stream, HEAD)
        inner = sniff(inner_head)
        content = _Prefixed(inner_head, stream)
        name = f"{inner}.{outer}" if inner in _INNER else outer
        if inner == "tar":
            return _verify_tar(content, limits, name)
        if inner == "pg_dump.custom":
            verdict = _verify_custom(name, content, limits)
            _drain(stream)  # the gzip trailer (CRC, length) is checked at the end
            return verdict
        metered = _Meter(content, limits, keep_tail=TAIL)
        _drain(metered)
    problem = (
        _ending_problem(inner, inner_head, metered.tail()) if inner in _INNER else ""
    )
    if problem:
        return Verdict(False, name, problem)
    return Verdict(True, name, f"{name} read to the end, {metered.consumed} bytes out")


_INNER = ("tar", "mongodump", "pg_dump.sql", "pg_dumpall.sql", "pg_dump.custom")


class _Raw(io.RawIOBase):
    """A raw stream over anything with read(), for BufferedReader."""

    def __init__(self, source: _Readable) -> None:
        super().__init__()
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        view[: len(data)] = data
        return len(data)


def _ending_problem(inner: str, head: bytes, tail: bytes) -> str:
    """Why a dump that starts with *head* and ends with *tail* was cut
    short; "" if it was not.

    A gzip stream can be whole while the dump inside it is not (the job was
    killed and the compressor flushed), so the dump's own end marker decides.
    """
    if inner in ("pg_dump.sql", "pg_dumpall.sql"):
        return pgdump.plain_ending_problem(
            head, tail, cluster=inner == "pg_dumpall.sql"
        )
    if inner == "mongodump" and not tail.endswith(MONGODUMP_TERMINATOR):
        return "truncated: mongodump archive does not end with its terminator"
    if inner == "redis.rdb" and (len(tail) < 9 or tail[-9] != 0xFF):
        return "truncated: redis rdb has no end-of-file opcode"
    return ""


def _verify_custom(name: str, stream: _Readable, limits: _Limits) -> Verdict:
    """A pg_dump custom-format archive, header to last data block."""
    try:
        summary = pgdump.verify_custom(_Meter(stream, limits))
    except (pgdump.Truncated, pgdump.Corrupt) as problem:
        raise _Failed(Verdict(False, name, _pg_problem(name, problem))) from None
    if name != "pg_dump.custom":
        summary = f"{name}: {summary}"
    return Verdict(True, name, summary)


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


def _verify_zip(stream: io.BufferedReader) -> Verdict:
    """Read every member through its CRC check."""
    with zipfile.ZipFile(stream) as archive:
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


def _verify_plain(
    outer: str, head: bytes, stream: _Readable, limits: _Limits
) -> Verdict:
    content = _Meter(stream, limits, keep_tail=TAIL)
    _drain(content)
    problem = _ending_problem(outer, head, content.tail())
    if problem:
        return Verdict(False, outer, problem)
    return Verdict(True, outer, f"{outer} read to the end")


# --- directories -------------------------------------------------------------------


def _verify_directory(directory: Path, limits: _Limits, max_bytes: int) -> Verdict:
    """A pg_dump directory-format dump, or any other directory file by file."""
    files = sorted(
        (path for path in directory.rglob("*") if path.is_file()),
        key=lambda path: str(path),
    )
    size = sum(path.stat().st_size for path in files)
    if size > max_bytes:
        return Verdict(
            False,
            "directory",
            f"not verified: {size} bytes is above verify_max_bytes"
            f" ({max_bytes}); raise it or set verify: false",
        )
    names = [path.name for path in files if path.parent == directory]
    if pgdump.is_pg_dump_directory(names):
        return _verify_pg_directory(directory, limits, max_bytes)
    if not files:
        return Verdict(False, "directory", "empty directory")
    formats: collections.Counter[str] = collections.Counter()
    consumed = 0
    for path in files:
        try:
            verdict = _verify_one(_opener(path), limits, max_bytes)
        except _Failed as failed:
            verdict = failed.verdict
        if not verdict.ok:
            shown = path.relative_to(directory)
            return Verdict(False, "directory", f"{shown}: {verdict.detail}"[:200])
        formats[verdict.format] += 1
        consumed += verdict.bytes_read
    kinds = ", ".join(f"{count} {name}" for name, count in sorted(formats.items()))
    return Verdict(
        True,
        "directory",
        f"directory of {len(files)} files ({kinds}), each read to the end",
        consumed,
    )


def _opener(path: Path) -> RawOpener:
    return lambda: path.open("rb", buffering=0)


def _verify_pg_directory(directory: Path, limits: _Limits, max_bytes: int) -> Verdict:
    name = "pg_dump.directory"
    with contextlib.ExitStack() as files:

        def open_file(path: Path) -> _Readable:
            raw = files.enter_context(path.open("rb", buffering=0))
            return _buffered(_Meter(raw, limits, max_bytes=max_bytes))

        try:
            summary = pgdump.verify_directory(directory, open_file)
        except (pgdump.Truncated, pgdump.Corrupt) as problem:
            return Verdict(False, name, _pg_problem(name, problem))
    return Verdict(True, name, summary)
