"""The backup kind's view of a directory: the finished backups, oldest
first, and those still being written.

A backup is a regular file, or a directory counted as one backup: a pg_dump
directory-format dump (`directories: pg_dump`, the default) or any matching
directory (`directories: all`). A directory's size is the sum of its files,
its mtime the newest of theirs.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from exporter.probes.backup.pgdump import is_pg_dump_directory
from exporter.probes.base import TargetConfigError

Directories = Literal["pg_dump", "all", "ignore"]


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One backup as listed; *identity* changes when the backup does.

    *path* is the file or directory on disk; an object in a bucket has its
    key in *key*, its ETag in *etag* and no path.
    """

    name: str
    size: int
    mtime: float
    identity: Hashable
    path: Path | None = None
    key: str | None = None
    etag: str = ""
    directory: bool = False


@dataclass(frozen=True, slots=True)
class Listing:
    """What the directory holds; *settled* is sorted oldest first."""

    exists: bool
    settled: tuple[BackupFile, ...] = ()
    writing: tuple[BackupFile, ...] = ()


def _backup_file(name: str, path: Path, info: os.stat_result) -> BackupFile:
    identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    return BackupFile(name, info.st_size, info.st_mtime, identity, path)


def _files_below(directory: Path) -> Iterator[os.stat_result]:
    """The regular files in *directory* and its subdirectories (links to
    files followed, links to directories not: no loops)."""
    pending = [directory]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue  # vanished or unreadable meanwhile: it counts as nothing
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                        continue
                    info = entry.stat()
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    yield info


def _backup_directory(name: str, path: Path, info: os.stat_result) -> BackupFile:
    """A directory as one backup: its files' total size and newest mtime."""
    files = list(_files_below(path))
    size = sum(file.st_size for file in files)
    newest = max(files, key=lambda file: file.st_mtime_ns, default=info)
    identity = (info.st_dev, info.st_ino, size, newest.st_mtime_ns, len(files))
    return BackupFile(name, size, newest.st_mtime, identity, path, directory=True)


def _counts_as_backup(path: Path, directories: Directories) -> bool:
    if directories == "all":
        return True
    if directories == "ignore":
        return False
    try:
        return is_pg_dump_directory(os.listdir(path))
    except OSError:
        return False


def _matching(directory: Path, glob: str, directories: Directories) -> list[BackupFile]:
    """Backups whose names match; each file or directory once."""
    found: dict[tuple[int, int], tuple[bool, BackupFile]] = {}
    try:
        entries = os.scandir(directory)
    except NotADirectoryError:
        raise TargetConfigError(f"path {directory} is not a directory") from None
    except PermissionError:
        raise TargetConfigError(
            f"cannot list {directory}: permission denied for uid {os.getuid()}"
        ) from None
    with entries:
        for entry in entries:
            if not fnmatch.fnmatchcase(entry.name, glob):
                continue
            try:
                info = entry.stat()  # follows symlinks
            except OSError:
                continue  # broken link, link loop, vanished meanwhile
            path = Path(entry.path)
            if stat.S_ISREG(info.st_mode):
                backup = _backup_file(entry.name, path, info)
            elif stat.S_ISDIR(info.st_mode) and _counts_as_backup(path, directories):
                backup = _backup_directory(entry.name, path, info)
            else:
                continue
            link = entry.is_symlink()
            key = (info.st_dev, info.st_ino)
            # A `latest` link to a backup must not count it twice.
            if key in found and (link or not found[key][0]):
                continue
            found[key] = (link, backup)
    return [backup for _link, backup in found.values()]


def restat(backup: BackupFile) -> BackupFile | None:
    """*backup* as it is on disk now; None if it is gone."""
    assert backup.path is not None  # noqa: S101 (only local backups are restated)
    try:
        info = os.stat(backup.path)
    except OSError:
        return None
    if backup.directory:
        return _backup_directory(backup.name, backup.path, info)
    return _backup_file(backup.name, backup.path, info)


def changed(backup: BackupFile) -> bool:
    """Whether *backup* differs on disk from when it was listed."""
    now = restat(backup)
    return now is None or now.identity != backup.identity


def scan_backup_set(
    directory: Path,
    glob: str,
    settle_time: float,
    directories: Directories = "pg_dump",
) -> Listing:
    """List the set, split into finished backups and ones still being written.

    A backup counts as being written while its mtime is within *settle_time*
    of now, or when its size or mtime changed since the listing stat.
    """
    try:
        backups = _matching(directory, glob, directories)
    except FileNotFoundError:
        return Listing(exists=False)
    return settle(backups, settle_time)


def settle(backups: list[BackupFile], settle_time: float) -> Listing:
    """Sort *backups* and set apart those still being written."""
    now = time.time()
    backups.sort(key=lambda backup: backup.mtime)
    writing = [b for b in backups if abs(now - b.mtime) < settle_time]
    settled = [b for b in backups if abs(now - b.mtime) >= settle_time]
    while settled and settled[-1].path is not None and changed(settled[-1]):
        writing.append(settled.pop())
    return Listing(True, tuple(settled), tuple(writing))
