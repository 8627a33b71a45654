"""The backup kind: a set of backups in one directory or bucket prefix, judged.

A backup is a file, a pg_dump directory-format dump (a directory counted as
one backup), or an object below an S3 prefix. Is the newest backup fresh,
does the set cover its retention window without gaps, was old stuff cleaned
up, is the newest not suspiciously small, and can
it be read end to end. Series never vanish: with no backups they read 0.

readiness_backup_newest_timestamp_seconds{probe="mongodb-backups"} 1.7040672e+09
readiness_backup_age_max_seconds{probe="mongodb-backups"} 93600
readiness_backup_files{probe="mongodb-backups"} 30
readiness_backup_largest_gap_seconds{probe="mongodb-backups"} 86400
readiness_backup_verify_success{probe="mongodb-backups"} 1
"""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.probes.backup import pgdump, s3
from exporter.probes.backup.config import DAY, BackupConfig
from exporter.probes.backup.integrity import (
    HEAD,
    Verdict,
    looks_encrypted,
    read_head,
    sniff,
    verify_archive,
    verify_stream,
)
from exporter.probes.backup.listing import (
    BackupFile,
    Listing,
    changed,
    scan_backup_set,
    settle,
)
from exporter.probes.base import (
    Category,
    CheckDef,
    Checks,
    MetricSpec,
    ProbeError,
    ProbeResult,
    Sample,
    Severity,
)
from exporter.probes.context import ProbeContext
from exporter.probes.shared.secrets import resolve_secret

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

__all__ = ["CHECKS", "METRICS", "BackupConfig", "probe"]

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
        "backup_age_max_seconds",
        "The configured age_max: the newest backup may be at most this old.",
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
        "backup_files",
        "Backups (files, dump directories or objects) matching the glob, those"
        " being written included.",
    ),
    MetricSpec(
        "backup_total_size_bytes",
        "Bytes in all backups matching the glob, those being written included.",
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


CHECKS = (
    CheckDef(
        "backup_fresh",
        Category.DATA,
        Severity.CRITICAL,
        "The newest settled backup is at most `age_max` old (26 h by default).",
        threshold="age_max",
    ),
    CheckDef(
        "backup_retention",
        Category.DATA,
        Severity.WARNING,
        "The backups cover the retention window (`retention`, or `retention_count` "
        "times `backup_interval`) with no gap over 1.5 `backup_interval`.",
        threshold="retention",
    ),
    CheckDef(
        "backup_cleanup",
        Category.DATA,
        Severity.WARNING,
        "No settled backup is older than the retention window plus 1.5 "
        "`backup_interval`.",
        threshold="retention",
    ),
    CheckDef(
        "backup_size",
        Category.DATA,
        Severity.WARNING,
        "The newest backup is not empty and at least `size_ratio_min` of the median "
        "size of the previous (up to) 7.",
        threshold="size_ratio_min",
    ),
    CheckDef(
        "backup_integrity",
        Category.DATA,
        Severity.CRITICAL,
        "The newest backup reads end to end as the format its magic bytes name (with "
        "`verify`, on unless `expect_encrypted`).",
        when=lambda config: config.verify_enabled,
    ),
    CheckDef(
        "backup_encrypted",
        Category.SECURITY,
        Severity.WARNING,
        "The newest backup does not look like a plain archive, dump or text (with "
        "`expect_encrypted`).",
        when=lambda config: config.expect_encrypted,
    ),
)


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
    if config.s3 is not None:
        return f"no object matches {config.glob!r} in {config.location}"
    return f"no file matches {config.glob!r} in {config.path}"


def judge_fresh(config: BackupConfig, listing: Listing, now: float) -> tuple[bool, str]:
    """The newest finished backup is at most age_max old."""
    if not listing.settled:
        return False, _nothing(config, listing)
    newest = listing.settled[-1]
    age = now - newest.mtime
    if age < 0:
        return True, f"newest {newest.name} is dated {_age(age)} ahead (clock skew?)"
    verdict = "" if age <= config.age_max else " (stale)"
    return age <= config.age_max, (
        f"newest {newest.name} is {_age(age)} old, max {_age(config.age_max)}{verdict}"
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
    """Not empty, and at least size_ratio_min of the recent median."""
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
    if share < config.size_ratio_min:
        return False, f"{text} (min {config.size_ratio_min:.0%})"
    return True, text


# --- verification -------------------------------------------------------------------


class VerifyMemory:
    """The last conclusive verdict, so each archive is read once, not on
    every run; one cut short by a budget is tried again next run. Also the
    series of the last listing, kept when a listing fails."""

    def __init__(self) -> None:
        self.identity: object = None
        self.verdict: Verdict | None = None
        self.samples: tuple[Sample, ...] | None = None


async def verify_newest(
    config: BackupConfig,
    ctx: ProbeContext,
    newest: BackupFile,
    memory: VerifyMemory,
    seconds: float,
) -> Verdict:
    """The verdict on *newest*, from memory if that exact backup was read;
    a new read takes at most *seconds*."""
    if memory.identity == newest.identity and memory.verdict is not None:
        return memory.verdict
    if config.s3 is not None:
        client = await _s3_client(config, ctx)
        verdict = await _verify_object(config, client, newest, seconds)
    else:
        verdict = await _verify_in_thread(config, newest, seconds)
        # A GET of an object is conditional on its ETag; a file is checked.
        if await asyncio.to_thread(changed, newest):
            return Verdict(
                False, verdict.format, "changed while being read; retried next run"
            )
    if verdict.conclusive:
        memory.identity, memory.verdict = newest.identity, verdict
    return verdict


async def _in_thread(read: Callable[[threading.Event], Verdict]) -> Verdict:
    """Run a verifier in a worker thread that stops when this run does.

    Cancelling the await does not stop the thread, and shutdown waits for
    it; the event makes it give up at its next chunk instead.
    """
    stop = threading.Event()
    try:
        return await asyncio.to_thread(read, stop)
    except asyncio.CancelledError:
        stop.set()
        raise


async def _verify_in_thread(
    config: BackupConfig, newest: BackupFile, seconds: float
) -> Verdict:
    assert newest.path is not None  # noqa: S101 (a local backup has a path)
    path = newest.path
    return await _in_thread(
        lambda stop: verify_archive(
            path, max_bytes=config.verify_max_bytes, seconds=seconds, stop=stop
        )
    )


async def _verify_object(
    config: BackupConfig, client: S3Client, newest: BackupFile, seconds: float
) -> Verdict:
    """Stream the object into the verifiers, which read it in a thread."""
    assert config.s3 is not None  # noqa: S101 (only for an s3 location)
    bucket = config.s3.bucket
    loop = asyncio.get_running_loop()
    ends = time.monotonic() + seconds

    def read(stop: threading.Event) -> Verdict:
        bridge = s3.LoopBridge(loop, ends, stop)
        return verify_stream(
            lambda: s3.ObjectReader(bridge, client, bucket, newest),
            newest.size,
            max_bytes=config.verify_max_bytes,
            seconds=seconds,
            stop=stop,
        )

    return await _in_thread(read)


async def judge_encrypted(
    config: BackupConfig, ctx: ProbeContext, newest: BackupFile
) -> tuple[bool, str]:
    """The newest backup does not start like a plain archive, dump or text."""
    try:
        if newest.directory:
            assert newest.path is not None  # noqa: S101 (directories are local)
            return await asyncio.to_thread(
                _directory_encrypted, newest.name, newest.path
            )
        if config.s3 is not None:
            client = await _s3_client(config, ctx)
            head = await s3.read_object_head(
                client, config.s3.bucket, newest, HEAD, ctx.deadline
            )
        else:
            assert newest.path is not None  # noqa: S101 (a local backup has a path)
            head = await asyncio.to_thread(read_head, newest.path)
    except (OSError, *s3.S3_ERRORS) as error:
        return False, f"cannot read {newest.name}: {s3.classify(error)[1]}"
    if looks_encrypted(head):
        return True, f"{newest.name} looks encrypted"
    outer = sniff(head)
    shown = "text or low-entropy data" if outer == "unknown" else outer
    return False, f"{newest.name} is plain {shown}"


def _directory_encrypted(name: str, directory: Path) -> tuple[bool, str]:
    """Every file of a directory backup looks encrypted."""
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    if pgdump.is_pg_dump_directory([p.name for p in files if p.parent == directory]):
        return False, f"{name} is a plain pg_dump directory"
    for path in files:
        head = read_head(path)
        if not looks_encrypted(head):
            outer = sniff(head)
            shown = "text or low-entropy data" if outer == "unknown" else outer
            return False, f"{name}/{path.relative_to(directory)} is plain {shown}"
    return bool(files), f"{name}: {len(files)} file(s), all look encrypted"


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
        Sample("backup_age_max_seconds", config.age_max),
        Sample("backup_newest_size_bytes", newest.size if newest else 0.0),
        Sample("backup_oldest_timestamp_seconds", oldest.mtime if oldest else 0.0),
        Sample("backup_files", len(everything)),
        Sample("backup_total_size_bytes", sum(file.size for file in everything)),
        Sample("backup_largest_gap_seconds", max((g for g, _f in gaps), default=0.0)),
    ]
    if config.verify_enabled:
        samples.append(Sample("backup_verify_success", 1.0 if verified else 0.0))
    return tuple(samples)


def _verify_seconds(config: BackupConfig, ctx: ProbeContext) -> float:
    """A verification's time: verify_timeout, within most of the run's
    budget, so that the rest of the run still has time."""
    share = ctx.deadline.share(0.8)
    return share if config.verify_timeout is None else min(config.verify_timeout, share)


async def _s3_client(config: BackupConfig, ctx: ProbeContext) -> S3Client:
    assert config.s3 is not None  # noqa: S101 (only for an s3 location)
    secret = await resolve_secret(config.s3, "secret_access_key")
    assert secret is not None  # noqa: S101 (the config requires one)
    return await ctx.state(s3.S3Clients).client(config.s3, secret, config.timeout)


async def _list(
    config: BackupConfig, ctx: ProbeContext, kept: tuple[Sample, ...]
) -> Listing:
    """The set as it is now. A listing that fails raises, carrying the
    series of the last listing that worked (zeros before the first), so
    that they never vanish."""
    if config.s3 is not None:
        location = config.s3
        try:
            client = await _s3_client(config, ctx)
            found = await s3.list_prefix(client, location, config.glob, ctx.deadline)
        except ProbeError as error:  # a secret file that cannot be read
            error.samples = kept
            raise
        except s3.S3_ERRORS as error:
            raise s3.listing_error(error, location, kept) from error
        # An object is listed only once it is whole: nothing is being written.
        return settle(found, 0.0)
    assert config.path is not None  # noqa: S101 (exactly one of path and s3)
    try:
        return await asyncio.to_thread(
            scan_backup_set,
            config.path,
            config.glob,
            config.settle_time,
            config.directories,
        )
    except ProbeError as error:
        error.samples = kept
        raise
    except OSError as error:
        raise ProbeError(f"cannot list {config.path}: {error}", samples=kept) from error


async def probe(config: BackupConfig, ctx: ProbeContext) -> ProbeResult:
    """List the set, judge it, verify the newest backup once."""
    checks = Checks(CHECKS, config)
    memory = ctx.state(VerifyMemory)
    if memory.samples is None:
        memory.samples = _samples(config, Listing(exists=True), time.time(), False)
    listing = await _list(config, ctx, memory.samples)
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
            verdict = await verify_newest(
                config, ctx, newest, memory, _verify_seconds(config, ctx)
            )
            verified = verdict.ok
            checks.record(
                "backup_integrity", verified, f"{newest.name}: {verdict.detail}"
            )
    if checks.planned("backup_encrypted"):
        if newest is None:
            checks.record("backup_encrypted", False, _nothing(config, listing))
        else:
            checks.record(
                "backup_encrypted", *await judge_encrypted(config, ctx, newest)
            )
    samples = _samples(config, listing, now, verified)
    memory.samples = _samples(config, listing, now, False)
    return ProbeResult(checks=checks.finish(), samples=samples)
