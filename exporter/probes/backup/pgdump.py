"""pg_dump's own formats, read end to end: plain SQL endings, custom-format
archives (`-Fc`) and directory-format dumps (`-Fd`).

Blocking code for a worker thread, as the rest of the verifiers. What an
end-to-end read means here:

- plain SQL: the text must end exactly as pg_dump ends it: the footer
  `-- PostgreSQL database dump complete` and, since 15.14, 16.10 and 17.6,
  the `\\unrestrict <key>` line whose key matches the `\\restrict` line at
  the top. pg_dumpall ends with `-- PostgreSQL database cluster dump
  complete`.
- custom format: the header, every entry of the table of contents (TOC), and
  then every data block in the file: each block must belong to a TOC entry
  that has data, start where the TOC says (when pg_dump could seek), and end
  with its zero-length chunk; every entry with data must have its block.
  gzip-compressed data is decompressed to the end of each zlib stream (its
  Adler-32 checked); COPY data must end with pg_dump's `\\.` terminator.
  lz4 and zstd data (PostgreSQL 16+) is walked chunk by chunk, not
  decompressed.
- directory format: `toc.dat` as above, then every data file it names, read
  through its compression (gzip's CRC checked), with the same terminator
  rule, and every large object listed in the blobs TOC files.

The layout follows src/bin/pg_dump/pg_backup_archiver.c (ReadHead, ReadToc,
ReadInt, ReadStr, ReadOffset), pg_backup_custom.c and pg_backup_directory.c,
archive versions 1.12 (PostgreSQL 9.0) to 1.16 (PostgreSQL 17).
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, cast

PG_DUMP_MAGIC = b"PGDMP"

# The end of a plain dump: footer, then (15.14+, 16.10+, 17.6+) the line that
# lifts psql's restricted mode. Nothing else may follow.
_PLAIN_END = re.compile(
    rb"\n-- PostgreSQL database dump complete\n--\n\n"
    rb"(?:\\unrestrict ([A-Za-z0-9]+)\n\n)?\Z"
)
_CLUSTER_END = re.compile(rb"\n-- PostgreSQL database cluster dump complete\n--\n\n\Z")
_RESTRICT = re.compile(rb"^\\restrict ([A-Za-z0-9]+)$", re.MULTILINE)
# What pg_dump writes after the rows of a table dumped with COPY.
_COPY_END = re.compile(rb"\\\.\n\n*\Z")

_FORMAT_CUSTOM = 1
_FORMAT_TAR = 3  # also what a directory dump's toc.dat says it is
_FORMAT_DIRECTORY = 5
_BLK_DATA = 1
_BLK_BLOBS = 3
_OFFSET_NOT_SET = 1
_OFFSET_SET = 2
_OFFSET_NO_DATA = 3
_MIN_VERSION = (1, 12, 0)
_MAX_VERSION = (1, 16, 255)
# The largest string a sane TOC holds (a function body, a view); a bigger
# length is a corrupt or foreign file, not something to allocate.
_MAX_STRING = 1 << 28
_SUFFIXES = {"none": "", "gzip": ".gz", "lz4": ".lz4", "zstd": ".zst"}
_ALGORITHMS = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}


class Truncated(Exception):
    """The archive ends before its structure does; the message says where."""


class Corrupt(Exception):
    """The archive's structure is wrong; the message says how."""


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


# --- plain SQL ---------------------------------------------------------------


def plain_ending_problem(head: bytes, tail: bytes, cluster: bool) -> str:
    """Why a plain dump that starts with *head* and ends with *tail* is not
    whole; "" when it is."""
    if cluster:
        if _CLUSTER_END.search(tail):
            return ""
        return (
            "truncated: pg_dumpall text does not end with its"
            " 'cluster dump complete' footer"
        )
    ending = _PLAIN_END.search(tail)
    if ending is None:
        return (
            "truncated: pg_dump text does not end with its 'dump complete' footer"
            " (and \\unrestrict line, pg_dump 15.14+)"
        )
    restrict = _RESTRICT.search(head)
    key = ending.group(1)
    if restrict is not None and key is None:
        return (
            "truncated: pg_dump text starts with \\restrict but ends without its"
            " \\unrestrict line"
        )
    if restrict is not None and key != restrict.group(1):
        return (
            "pg_dump text ends with an \\unrestrict key that is not its \\restrict key"
        )
    return ""


# --- the archive header and TOC -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    """What ReadHead reads: version, integer sizes, format, compression."""

    version: tuple[int, int, int]
    int_size: int
    offset_size: int
    format: int
    compression: str

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)


@dataclass(frozen=True, slots=True)
class TocEntry:
    """One TOC entry, with what finding its data takes."""

    dump_id: int
    desc: str
    tag: str
    namespace: str
    copy_statement: str
    data_state: int = _OFFSET_NO_DATA  # custom format
    data_position: int = 0  # custom format, when data_state is SET
    filename: str = ""  # directory format

    @property
    def label(self) -> str:
        """How pg_restore --list names it: `TABLE DATA public t`."""
        parts = (self.desc, self.namespace, "" if self.tag == self.desc else self.tag)
        return " ".join(part for part in parts if part)

    @property
    def copy_data(self) -> bool:
        return self.desc == "TABLE DATA" and bool(self.copy_statement)


class ArchiveReader:
    """Reads pg_dump's primitives from a stream and counts the bytes."""

    def __init__(self, stream: Readable, where: str) -> None:
        self._stream = stream
        self.where = where  # "in the header", "in the TOC", ...
        self.position = 0
        self.int_size = 4
        self.offset_size = 8

    def exactly(self, count: int) -> bytes:
        parts: list[bytes] = []
        wanted = count
        while wanted:
            data = self._stream.read(min(wanted, 1 << 20))
            if not data:
                raise Truncated(f"the archive ends {self.where}")
            parts.append(data)
            wanted -= len(data)
        self.position += count
        return b"".join(parts)

    def byte(self) -> int:
        return self.exactly(1)[0]

    def maybe_byte(self) -> int | None:
        """The next byte, or None at the very end of the stream."""
        data = self._stream.read(1)
        if not data:
            return None
        self.position += 1
        return data[0]

    def integer(self) -> int:
        """ReadInt: a sign byte, then int_size bytes, least significant first."""
        sign = self.byte()
        value = int.from_bytes(self.exactly(self.int_size), "little")
        if sign not in (0, 1):
            raise Corrupt(f"bad integer sign byte {sign} {self.where}")
        return -value if sign else value

    def string(self) -> str | None:
        """ReadStr: a length (negative for NULL), then that many bytes."""
        length = self.integer()
        if length < 0:
            return None
        if length > _MAX_STRING:
            raise Corrupt(f"a string of {length} bytes {self.where}")
        return self.exactly(length).decode("utf-8", "replace")

    def offset(self) -> tuple[int, int]:
        """ReadOffset: a state byte, then offset_size bytes."""
        state = self.byte()
        value = int.from_bytes(self.exactly(self.offset_size), "little")
        return state, value


def read_header(reader: ArchiveReader) -> Header:
    """ReadHead, from the magic on (archive versions 1.12 to 1.16)."""
    reader.where = "in its header"
    if reader.exactly(5) != PG_DUMP_MAGIC:
        raise Corrupt("no PGDMP magic")
    version = (reader.byte(), reader.byte(), reader.byte())
    if not _MIN_VERSION <= version <= _MAX_VERSION:
        raise Corrupt(
            f"archive version {'.'.join(map(str, version))} is not one this"
            " exporter reads (1.12 to 1.16, PostgreSQL 9.0 to 17)"
        )
    reader.int_size = reader.byte()
    reader.offset_size = reader.byte()
    if not 1 <= reader.int_size <= 8 or not 1 <= reader.offset_size <= 8:
        raise Corrupt(
            f"integer size {reader.int_size}, offset size {reader.offset_size}"
        )
    archive_format = reader.byte()
    if version >= (1, 15, 0):
        algorithm = reader.byte()
        if algorithm not in _ALGORITHMS:
            raise Corrupt(f"unknown compression algorithm {algorithm}")
        compression = _ALGORITHMS[algorithm]
    else:
        compression = "none" if reader.integer() == 0 else "gzip"
    for _field in range(7):  # the creation time, as struct tm
        reader.integer()
    for _field in range(3):  # database name, server version, pg_dump version
        reader.string()
    return Header(
        version, reader.int_size, reader.offset_size, archive_format, compression
    )


def read_toc(
    reader: ArchiveReader,
    header: Header,
    extra: Callable[[ArchiveReader, TocEntry], TocEntry],
) -> list[TocEntry]:
    """ReadToc: every entry; *extra* reads the format's own fields."""
    reader.where = "in its table of contents"
    count = reader.integer()
    if not 0 <= count <= 50_000_000:
        raise Corrupt(f"a table of contents of {count} entries")
    entries = []
    for _index in range(count):
        dump_id = reader.integer()
        if dump_id <= 0:
            raise Corrupt(f"TOC entry id {dump_id}")
        reader.integer()  # had a dumper
        reader.string()  # table oid
        reader.string()  # oid
        tag = reader.string() or ""
        desc = reader.string() or ""
        reader.integer()  # section
        reader.string()  # definition
        reader.string()  # drop statement
        copy_statement = reader.string() or ""
        namespace = reader.string() or ""
        reader.string()  # tablespace
        if header.version >= (1, 14, 0):
            reader.string()  # table access method
        if header.version >= (1, 16, 0):
            reader.integer()  # relkind
        reader.string()  # owner
        reader.string()  # "false": with oids
        while reader.string() is not None:  # dependencies, then NULL
            pass
        entry = TocEntry(dump_id, desc, tag, namespace, copy_statement)
        entries.append(extra(reader, entry))
    return entries


def _custom_extra(reader: ArchiveReader, entry: TocEntry) -> TocEntry:
    """Where the entry's data block is: a state and a file offset."""
    state, position = reader.offset()
    if state not in (_OFFSET_NOT_SET, _OFFSET_SET, _OFFSET_NO_DATA):
        raise Corrupt(f"data offset state {state} {reader.where}")
    return dataclasses.replace(entry, data_state=state, data_position=position)


def _directory_extra(reader: ArchiveReader, entry: TocEntry) -> TocEntry:
    """The name of the entry's data file, "" for none."""
    name = reader.string() or ""
    if "/" in name or name.startswith("."):
        raise Corrupt(f"data file name {name!r} {reader.where}")
    return dataclasses.replace(entry, filename=name)


# --- data streams --------------------------------------------------------------


class _Content:
    """One data item's bytes as they arrive: decompressed when we can, with
    the last few bytes kept for the COPY terminator."""

    def __init__(self, compression: str) -> None:
        self.compression = compression
        self._zlib = zlib.decompressobj() if compression == "gzip" else None
        self.tail = b""
        self.size = 0

    @property
    def readable(self) -> bool:
        """Whether the content itself is seen (not lz4 or zstd)."""
        return self.compression in ("none", "gzip")

    def feed(self, data: bytes) -> None:
        if self._zlib is not None:
            if self._zlib.eof:
                raise Corrupt("data after the end of a compressed stream")
            data = self._zlib.decompress(data)
        self.size += len(data)
        self.tail = (self.tail + data)[-16:]

    def finish(self, entry: TocEntry) -> None:
        """Raise if the item's data is not whole."""
        if self._zlib is not None:
            self.tail = (self.tail + self._zlib.flush())[-16:]
            if not self._zlib.eof:
                raise Truncated(f"the compressed data of {entry.label} stops short")
        if entry.copy_data and self.readable and not _COPY_END.search(self.tail):
            raise Truncated(f"the COPY data of {entry.label} has no \\. terminator")


def _chunks(reader: ArchiveReader, content: _Content) -> None:
    """A custom-format data item: length-prefixed chunks up to a zero length."""
    while True:
        length = reader.integer()
        if length == 0:
            return
        if length < 0 or length > _MAX_STRING:
            raise Corrupt(f"a data chunk of {length} bytes {reader.where}")
        content.feed(reader.exactly(length))


def verify_custom(stream: Readable) -> str:
    """Read a custom-format archive from its first byte to its last; the
    summary of what was read, or `Truncated` / `Corrupt`."""
    reader = ArchiveReader(stream, "in its header")
    header = read_header(reader)
    if header.format != _FORMAT_CUSTOM:
        raise Corrupt(f"archive format {header.format} is not custom (1)")
    entries = read_toc(reader, header, _custom_extra)
    expected = {e.dump_id: e for e in entries if e.data_state != _OFFSET_NO_DATA}
    done = 0
    while True:
        start = reader.position
        reader.where = f"after {done} of {len(expected)} data blocks"
        block = reader.maybe_byte()
        if block is None:
            break
        if block not in (_BLK_DATA, _BLK_BLOBS):
            raise Corrupt(f"block type {block} at byte {start}")
        dump_id = reader.integer()
        entry = expected.pop(dump_id, None)
        if entry is None:
            raise Corrupt(
                f"a data block for entry {dump_id}, which has none or had one"
            )
        if entry.data_state == _OFFSET_SET and entry.data_position != start:
            raise Corrupt(
                f"the data of {entry.label} is at byte {start}, the TOC says"
                f" {entry.data_position}"
            )
        reader.where = f"inside the data of {entry.label}"
        if block == _BLK_DATA:
            content = _Content(header.compression)
            _chunks(reader, content)
            content.finish(entry)
        else:
            while reader.integer() != 0:  # one large object per oid, then 0
                content = _Content(header.compression)
                _chunks(reader, content)
                content.finish(entry)
        done += 1
    if expected:
        missing = sorted(expected.values(), key=lambda e: e.dump_id)
        raise Truncated(
            f"the archive ends after {done} of {done + len(missing)} data blocks;"
            f" missing the data of {missing[0].label}"
        )
    return (
        f"pg_dump custom archive {header.version_text}, {len(entries)} TOC"
        f" entries and {done} data blocks read to the end{_unchecked(header)}"
    )


def _unchecked(header: Header) -> str:
    if header.compression in ("lz4", "zstd"):
        return f" ({header.compression} data framed correctly, not decompressed)"
    return ""


# --- directory format ----------------------------------------------------------------

DATA_FILE = re.compile(
    r"(?:\d+\.dat|blob_\d+\.dat|blobs(?:_\d+)?\.toc)(?:\.gz|\.lz4|\.zst)?"
)


def is_pg_dump_directory(names: list[str]) -> bool:
    """Whether a directory holding *names* is (or is becoming) a pg_dump
    directory-format dump: a toc.dat, or the data files pg_dump writes
    before it (toc.dat comes last)."""
    if "toc.dat" in names:
        return True
    return bool(names) and all(DATA_FILE.fullmatch(name) for name in names)


Opener = Callable[[Path], Readable]


def verify_directory(directory: Path, open_file: Opener) -> str:
    """Read a directory-format dump: toc.dat, then every file it names.

    *open_file* opens one file as a metered raw stream (the caller's byte
    and time budgets); it raises `FileNotFoundError` for a missing file.
    """
    toc_path = directory / "toc.dat"
    if not toc_path.exists():
        raise Truncated(
            "no toc.dat: pg_dump writes it last, so it did not finish this dump"
        )
    stream = open_file(toc_path)
    reader = ArchiveReader(stream, "in its header")
    try:
        header = read_header(reader)
        if header.format not in (_FORMAT_TAR, _FORMAT_DIRECTORY):
            raise Corrupt(f"toc.dat says archive format {header.format}")
        entries = read_toc(reader, header, _directory_extra)
        if stream.read(1):
            raise Corrupt("toc.dat goes on after its table of contents")
    except Truncated as cut:
        raise Truncated(f"toc.dat: {cut}") from None
    files = 0
    for entry in entries:
        if not entry.filename:
            continue
        if entry.filename.endswith(".toc"):
            files += _verify_blobs(directory, entry, header, open_file)
        else:
            _verify_data_file(directory, entry.filename, entry, header, open_file)
            files += 1
    return (
        f"pg_dump directory {header.version_text}, toc.dat with {len(entries)}"
        f" entries and {files} data files read to the end{_unchecked(header)}"
    )


def _verify_data_file(
    directory: Path, name: str, entry: TocEntry, header: Header, open_file: Opener
) -> None:
    shown = name + _SUFFIXES[header.compression]
    try:
        raw = open_file(directory / shown)
    except FileNotFoundError:
        raise Truncated(f"{shown}, the data of {entry.label}, is missing") from None
    content = _Content("none" if header.compression == "gzip" else header.compression)
    try:
        stream: Readable = raw
        if header.compression == "gzip":
            stream = gzip.GzipFile(fileobj=cast(BinaryIO, raw), mode="rb")
        while data := stream.read(1 << 20):
            content.feed(data)
    except EOFError:
        raise Truncated(f"{shown}, the data of {entry.label}, is cut short") from None
    except (OSError, zlib.error) as error:
        raise Corrupt(f"{shown}: {type(error).__name__}: {error}") from None
    try:
        content.finish(entry)
    except Truncated:
        raise Truncated(
            f"{shown}, the data of {entry.label}, is cut short (no \\. terminator)"
        ) from None


def _verify_blobs(
    directory: Path, entry: TocEntry, header: Header, open_file: Opener
) -> int:
    """The large objects' TOC (`<oid> blob_<oid>.dat` lines), then each file."""
    try:
        listing = _read_all(open_file(directory / entry.filename))
    except FileNotFoundError:
        raise Truncated(
            f"{entry.filename}, the list of large objects, is missing"
        ) from None
    if listing and not listing.endswith(b"\n"):
        raise Truncated(f"{entry.filename} ends inside a line")
    count = 0
    for line in listing.decode("ascii", "replace").splitlines():
        parts = line.split(" ")
        if (
            len(parts) != 2
            or not parts[0].isdigit()
            or not DATA_FILE.fullmatch(parts[1])
        ):
            raise Corrupt(f"{entry.filename}: line {line[:60]!r}")
        blob = TocEntry(entry.dump_id, "LARGE OBJECT", parts[0], "", "")
        _verify_data_file(directory, parts[1], blob, header, open_file)
        count += 1
    return count + 1


def _read_all(stream: Readable) -> bytes:
    parts = []
    while data := stream.read(1 << 20):
        parts.append(data)
    return b"".join(parts)
