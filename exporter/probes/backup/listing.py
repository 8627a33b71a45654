"""The backup kind's view of a directory: the finished backups, oldest
first, and those still being written."""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from exporter.probes.base import TargetConfigError


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One backup as found on disk; *identity* changes when the file does."""

    name: str
    path: Path
    size: int
    mtime: float
    identity: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Listing:
    """What the directory holds; *settled* is sorted oldest first."""

    exists: bool
    settled: tuple[BackupFile, ...] = ()
    writing: tuple[BackupFile, ...] = ()


def _backup_file(name: str, path: Path, info: os.stat_result) -> BackupFile:
    identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    return BackupFile(name, path, info.st_size, info.st_mtime, identity)


def _matching_files(directory: Path, glob: str) -> list[BackupFile]:
    """Regular files (symlinks followed) whose names match; each file once."""
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
            if not stat.S_ISREG(info.st_mode):
                continue
            link = entry.is_symlink()
            key = (info.st_dev, info.st_ino)
            # A `latest` link to a backup must not count it twice.
            if key in found and (link or not found[key][0]):
                continue
            found[key] = (link, _backup_file(entry.name, Path(entry.path), info))
    return [file for _link, file in found.values()]


def changed(file: BackupFile) -> bool:
    """Whether *file* differs on disk from when it was listed."""
    try:
        info = os.stat(file.path)
    except OSError:
        return True
    return _backup_file(file.name, file.path, info).identity != file.identity


def scan_backup_set(directory: Path, glob: str, settle_time: float) -> Listing:
    """List the set, split into finished backups and ones still being written.

    A file counts as being written while its mtime is within *settle_time* of
    now, or when its size or mtime changed since the listing stat.
    """
    try:
        files = _matching_files(directory, glob)
    except FileNotFoundError:
        return Listing(exists=False)
    now = time.time()
    files.sort(key=lambda file: file.mtime)
    writing = [file for file in files if abs(now - file.mtime) < settle_time]
    settled = [file for file in files if abs(now - file.mtime) >= settle_time]
    while settled and changed(settled[-1]):
        writing.append(settled.pop())
    return Listing(True, tuple(settled), tuple(writing))
