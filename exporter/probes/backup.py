"""Probe that judges a set of backup files in one directory.

Is the newest backup fresh, does the set cover its retention window without
gaps, was old stuff cleaned up, is the newest not suspiciously small, and can
it be read end to end. Series never vanish: with no backups they read 0.

readiness_backup_newest_timestamp_seconds{probe="mongodb-backups"} 1.7040672e+09
readiness_backup_max_age_seconds{probe="mongodb-backups"} 93600
readiness_backup_files{probe="mongodb-backups"} 30
readiness_backup_largest_gap_seconds{probe="mongodb-backups"} 86400
readiness_backup_verify_success{probe="mongodb-backups"} 1
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import math
import os
import stat
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from exporter.probes.backup_integrity import (
    Verdict,
    looks_encrypted,
    read_head,
    sniff,
    verify_archive,
)
from exporter.probes.base import (
    BaseProbeConfig,
    ByteSize,
    Category,
    Checks,
    CheckSpec,
    Duration,
    MetricSpec,
    ProbeResult,
    Sample,
    Severity,
    TargetConfigError,
)
from exporter.probes.context import ProbeContext

DAY = 86400.0
# A scheduled job may slip by half its interval before a gap counts, and the
# cleanup may keep a file up to that long past retention (`find -mtime +N`
# keeps files until they are N+1 days old, plus the job's own delay).
TOLERANCE = 1.5
SIZE_HISTORY = 7

METRICS = (
    MetricSpec(
        "backup_newest_timestamp_seconds",
        "Modification time of the newest finished backup; 0 when there is none.",
    ),
    MetricSpec(
        "backup_max_age_seconds",
        "The configured max_age: the newest backup may be at most this old.",
    ),
    MetricSpec(
        "backup_newest_size_bytes",
        "Size of the newest finished backup; 0 when there is none.",
    ),
    MetricSpec(
        "backup_oldest_timestamp_seconds",
        "Modification time of the oldest finished backup; 0 when there is none.",
    ),
    MetricSpec(
        "backup_files", "Files matching the glob, those being written included."
    ),
    MetricSpec(
        "backup_total_size_bytes",
        "Bytes in all files matching the glob, those being written included.",
    ),
    MetricSpec(
        "backup_verify_success",
        "1 if the newest backup was read end to end without error (when verify is on).",
    ),
    MetricSpec(
        "backup_largest_gap_seconds",
        "Longest time between consecutive backups inside the retention window.",
    ),
)


class BackupConfig(BaseProbeConfig):
    """A directory of backups, the schedule that fills it and how long it keeps."""

    kind: Literal["backup"] = "backup"
    # Files change once a day at most; verification reads whole archives.
    interval: Duration = 300.0
    timeout: Duration = 120.0
    path: Path
    glob: str = Field(default="*", min_length=1)
    max_age: Duration = 26 * 3600.0
    backup_interval: Duration = DAY
    retention: Duration | None = None
    retention_count: int | None = Field(default=None, ge=1)
    size_drop_ratio: float = Field(default=0.5, ge=0, le=1)
    verify: bool | None = None
    verify_max_bytes: ByteSize = Field(default=4 << 30, ge=1)
    verify_timeout: Duration | None = None
    expect_encrypted: bool = False
    settle_time: Duration = 60.0

    @model_validator(mode="after")
    def _consistent(self) -> BackupConfig:
        if "/" in self.glob or os.sep in self.glob:
            raise ValueError(
                f"glob {self.glob!r} must match file names inside `path`;"
                " put the directories in `path`"
            )
        if self.backup_interval <= 0 or self.max_age <= 0:
            raise ValueError("backup_interval and max_age must be above zero")
        if self.retention is not None and self.retention_count is not None:
            raise ValueError(
                "set either retention (a duration such as 30d) or retention_count"
                " (a number of backups, with backup_interval), not both"
            )
        if self.retention_seconds < self.backup_interval:
            raise ValueError(
                f"retention ({self.retention_seconds:g}s) must be at least"
                f" backup_interval ({self.backup_interval:g}s)"
            )
        if self.verify_timeout is not None and self.verify_timeout >= self.timeout:
            raise ValueError(
                f"verify_timeout ({self.verify_timeout:g}s) must be below timeout"
                f" ({self.timeout:g}s)"
            )
        if self.settle_time >= self.max_age:
            raise ValueError("settle_time must be below max_age")
        return self

    @property
    def retention_seconds(self) -> float:
        """The window the set must cover; 7 backups' worth unless configured."""
        if self.retention is not None:
            return self.retention
        return (self.retention_count or 7) * self.backup_interval

    @property
    def verify_enabled(self) -> bool:
        """Encrypted backups cannot be read, so they are not verified by default."""
        return self.verify if self.verify is not None else not self.expect_encrypted

    @property
    def verify_seconds(self) -> float:
        """Time budget of one verification, inside the probe's timeout."""
        return self.verify_timeout or 0.8 * self.timeout


def plan(config: BackupConfig) -> list[CheckSpec]:
    """Freshness, retention, cleanup and size always; the rest when enabled."""
    specs = [
        CheckSpec(
            "backup_fresh",
            Category.DATA,
            Severity.CRITICAL,
            "The newest backup is younger than max_age.",
        ),
        CheckSpec(
            "backup_retention",
            Category.DATA,
            Severity.WARNING,
            "The backups cover the retention window without gaps.",
        ),
        CheckSpec(
            "backup_cleanup",
            Category.DATA,
            Severity.WARNING,
            "Nothing older than the retention window is kept.",
        ),
        CheckSpec(
            "backup_size",
            Category.DATA,
            Severity.WARNING,
            "The newest backup is not empty and not much smaller than before.",
        ),
    ]
    if config.verify_enabled:
        specs.append(
            CheckSpec(
                "backup_integrity",
                Category.DATA,
                Severity.CRITICAL,
                "The newest backup reads end to end as the archive it claims to be.",
            )
        )
    if config.expect_encrypted:
        specs.append(
            CheckSpec(
                "backup_encrypted",
                Category.SECURITY,
                Severity.WARNING,
                "The newest backup is not a plain archive, dump or text.",
            )
        )
    return specs


# --- the directory -------------------------------------------------------------


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


def _changed(file: BackupFile) -> bool:
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
    while settled and _changed(settled[-1]):
        writing.append(settled.pop())
    return Listing(True, tuple(settled), tuple(writing))


# --- verdicts --------------------------------------------------------------------


def _age(seconds: float) -> str:
    """Short human duration: 45s, 12m, 5.0h, 2.9d."""
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / DAY:.1f}d"


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _nothing(config: BackupConfig, listing: Listing) -> str:
    if not listing.exists:
        return f"directory {config.path} does not exist"
    if listing.writing:
        return f"no finished backup; {len(listing.writing)} still being written"
    return f"no file matches {config.glob!r} in {config.path}"


def judge_fresh(config: BackupConfig, listing: Listing, now: float) -> tuple[bool, str]:
    """The newest finished backup is at most max_age old."""
    if not listing.settled:
        return False, _nothing(config, listing)
    newest = listing.settled[-1]
    age = now - newest.mtime
    if age < 0:
        return True, f"newest {newest.name} is dated {_age(age)} ahead (clock skew?)"
    verdict = "" if age <= config.max_age else " (stale)"
    return age <= config.max_age, (
        f"newest {newest.name} is {_age(age)} old, max {_age(config.max_age)}{verdict}"
    )


def gaps_in_window(
    settled: tuple[BackupFile, ...], retention: float, now: float
) -> list[tuple[float, BackupFile]]:
    """(gap, later file) between consecutive backups inside the window.

    The last backup before the window covers the window's start, so the time
    from the start to the first backup inside it is a gap too, clipped there.
    """
    start = now - retention
    inside = [file for file in settled if file.mtime >= start]
    before = [file for file in settled if file.mtime < start]
    span = ([before[-1]] if before else []) + inside
    return [
        (later.mtime - max(earlier.mtime, start), later)
        for earlier, later in itertools.pairwise(span)
    ]


def judge_retention(
    config: BackupConfig, listing: Listing, now: float
) -> tuple[bool, str]:
    """Old enough, dense enough, enough of them: see docs/probes/backup.md."""
    if not listing.settled:
        return False, _nothing(config, listing)
    retention, step = config.retention_seconds, config.backup_interval
    oldest_age = now - listing.settled[0].mtime
    needed_age = retention - step
    kept = [f for f in listing.settled if now - f.mtime <= retention + TOLERANCE * step]
    needed_count = max(1, math.floor(retention / step + 1e-9))
    gaps = gaps_in_window(listing.settled, retention, now)
    largest, after = max(gaps, key=lambda gap: gap[0], default=(0.0, None))
    if after is not None and largest > TOLERANCE * step:
        return False, (
            f"gap of {_age(largest)} before {after.name}"
            f" (limit {_age(TOLERANCE * step)})"
        )
    if oldest_age < needed_age:
        return False, (
            f"oldest backup is {_age(oldest_age)} old, the window needs"
            f" {_age(needed_age)} (set too young, or pruned too early)"
        )
    if len(kept) < needed_count:
        return False, (
            f"{len(kept)} backups within {_age(retention + TOLERANCE * step)},"
            f" needs {needed_count}"
        )
    return True, (
        f"{len(kept)} backups over {_age(oldest_age)}, largest gap {_age(largest)}"
        f" (limit {_age(TOLERANCE * step)})"
    )


def judge_cleanup(
    config: BackupConfig, listing: Listing, now: float
) -> tuple[bool, str]:
    """Nothing kept past retention plus one and a half intervals."""
    limit = config.retention_seconds + TOLERANCE * config.backup_interval
    expired = [file for file in listing.settled if now - file.mtime > limit]
    if not expired:
        return True, f"nothing older than {_age(limit)}"
    oldest = expired[0]
    return False, (
        f"{len(expired)} file(s) older than {_age(limit)}, oldest {oldest.name}"
        f" ({_age(now - oldest.mtime)})"
    )


def judge_size(config: BackupConfig, listing: Listing) -> tuple[bool, str]:
    """Not empty, and at least size_drop_ratio of the recent median."""
    if not listing.settled:
        return False, _nothing(config, listing)
    newest = listing.settled[-1]
    if newest.size == 0:
        return False, f"newest {newest.name} is empty"
    previous = [file.size for file in listing.settled[-SIZE_HISTORY - 1 : -1]]
    if not previous:
        return True, f"newest is {_size(newest.size)}, no earlier backup to compare"
    median = statistics.median(previous)
    share = newest.size / median if median else math.inf
    text = (
        f"newest is {_size(newest.size)}, {share:.0%} of the median"
        f" {_size(median)} of the previous {len(previous)}"
    )
    if share < config.size_drop_ratio:
        return False, f"{text} (min {config.size_drop_ratio:.0%})"
    return True, text


# --- verification -------------------------------------------------------------------


class VerifyMemory:
    """The last conclusive verdict, so each archive is read once, not on
    every run; one cut short by a budget is tried again next run."""

    def __init__(self) -> None:
        self.identity: tuple[int, int, int, int] | None = None
        self.verdict: Verdict | None = None


async def verify_newest(
    config: BackupConfig, newest: BackupFile, memory: VerifyMemory
) -> Verdict:
    """The verdict on *newest*, from memory if that exact file was read."""
    if memory.identity == newest.identity and memory.verdict is not None:
        return memory.verdict
    verdict = await _verify_in_thread(config, newest)
    if await asyncio.to_thread(_changed, newest):
        return Verdict(
            False, verdict.format, "changed while being read; retried next run"
        )
    if verdict.conclusive:
        memory.identity, memory.verdict = newest.identity, verdict
    return verdict


async def _verify_in_thread(config: BackupConfig, newest: BackupFile) -> Verdict:
    """Run the verifier in a worker thread that stops when this run does.

    Cancelling the await does not stop the thread, and shutdown waits for
    it; the event makes it give up at its next chunk instead.
    """
    stop = threading.Event()
    try:
        return await asyncio.to_thread(
            verify_archive,
            newest.path,
            max_bytes=config.verify_max_bytes,
            seconds=config.verify_seconds,
            stop=stop,
        )
    except asyncio.CancelledError:
        stop.set()
        raise


async def judge_encrypted(newest: BackupFile) -> tuple[bool, str]:
    """The newest backup does not start like a plain archive, dump or text."""
    try:
        head = await asyncio.to_thread(read_head, newest.path)
    except OSError as error:
        return False, f"cannot read {newest.name}: {type(error).__name__}"
    if looks_encrypted(head):
        return True, f"{newest.name} looks encrypted"
    outer = sniff(head)
    shown = "text or low-entropy data" if outer == "unknown" else outer
    return False, f"{newest.name} is plain {shown}"


# --- the probe ---------------------------------------------------------------------


def _samples(
    config: BackupConfig, listing: Listing, now: float, verified: bool
) -> tuple[Sample, ...]:
    everything = listing.settled + listing.writing
    newest = listing.settled[-1] if listing.settled else None
    oldest = listing.settled[0] if listing.settled else None
    gaps = gaps_in_window(listing.settled, config.retention_seconds, now)
    samples = [
        Sample("backup_newest_timestamp_seconds", newest.mtime if newest else 0.0),
        Sample("backup_max_age_seconds", config.max_age),
        Sample("backup_newest_size_bytes", newest.size if newest else 0.0),
        Sample("backup_oldest_timestamp_seconds", oldest.mtime if oldest else 0.0),
        Sample("backup_files", len(everything)),
        Sample("backup_total_size_bytes", sum(file.size for file in everything)),
        Sample("backup_largest_gap_seconds", max((g for g, _f in gaps), default=0.0)),
    ]
    if config.verify_enabled:
        samples.append(Sample("backup_verify_success", 1.0 if verified else 0.0))
    return tuple(samples)


async def probe(config: BackupConfig, ctx: ProbeContext) -> ProbeResult:
    """List the set in a thread, judge it, verify the newest archive once."""
    checks = Checks(plan(config))
    listing = await asyncio.to_thread(
        scan_backup_set, config.path, config.glob, config.settle_time
    )
    now = time.time()
    checks.record("backup_fresh", *judge_fresh(config, listing, now))
    checks.record("backup_retention", *judge_retention(config, listing, now))
    checks.record("backup_cleanup", *judge_cleanup(config, listing, now))
    checks.record("backup_size", *judge_size(config, listing))
    newest = listing.settled[-1] if listing.settled else None
    verified = False
    if checks.planned("backup_integrity"):
        if newest is None:
            checks.record("backup_integrity", False, _nothing(config, listing))
        else:
            verdict = await verify_newest(config, newest, ctx.state(VerifyMemory))
            verified = verdict.ok
            checks.record(
                "backup_integrity", verified, f"{newest.name}: {verdict.detail}"
            )
    if checks.planned("backup_encrypted"):
        if newest is None:
            checks.record("backup_encrypted", False, _nothing(config, listing))
        else:
            checks.record("backup_encrypted", *await judge_encrypted(newest))
    return ProbeResult(
        checks=checks.finish(), samples=_samples(config, listing, now, verified)
    )
