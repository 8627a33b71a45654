"""The backup probe against real files in tmp_path with chosen mtimes."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bson
import pytest

from exporter.kinds import PROBES
from exporter.probes.backup import BackupConfig, _verify_seconds
from exporter.probes.backup.integrity import verify_archive
from exporter.probes.base import ProbeResult, Reason
from exporter.probes.context import Deadline, ProbeContext, SharedResources
from tests.helpers import (
    config_problems,
    detail,
    eventually,
    probe_config,
    run_once,
    sample,
    verdicts,
)
from tests.servers.postgres import BinariesMissing, start_cluster

DAY = 86400.0
MONGODUMP_MAGIC = (0x8199E26D).to_bytes(4, "little")
TERMINATOR = b"\xff\xff\xff\xff"


def mongodump(size: int = 2000) -> bytes:
    """What `mongodump --archive` writes, in shape (mongo-tools' archive spec):
    magic, header, collection metadata, terminator, then one namespace block
    of documents and its EOF block, each closed by the terminator."""
    namespace = {"db": "app", "collection": "users"}
    documents = b"".join(
        bson.encode({"_id": index, "blob": os.urandom(1000)})
        for index in range(max(1, size // 1000))
    )
    return b"".join(
        [
            MONGODUMP_MAGIC,
            bson.encode({"concurrent_collections": 4, "version": "0.1"}),
            bson.encode({**namespace, "metadata": "{}", "size": len(documents)}),
            TERMINATOR,
            bson.encode({**namespace, "EOF": False, "CRC": bson.Int64(0)}),
            documents,
            TERMINATOR,
            bson.encode({**namespace, "EOF": True, "CRC": bson.Int64(12345)}),
            TERMINATOR,
        ]
    )


def mongodump_gz(size: int = 2000) -> bytes:
    """What `mongodump --archive --gzip` writes."""
    return gzip.compress(mongodump(size))


def tar_gz() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for index in range(3):
            data = os.urandom(3000)
            member = tarfile.TarInfo(f"dump/part{index}.bson")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("dump.sql", b"INSERT INTO t VALUES (1);\n" * 2000)
        archive.writestr("data.bin", os.urandom(5000))
    return buffer.getvalue()


def write_backup(path: Path, content: bytes, age_seconds: float) -> Path:
    path.write_bytes(content)
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def make_set(
    directory: Path,
    ages_in_days: Iterable[float],
    content: Callable[[], bytes] = mongodump_gz,
    suffix: str = ".archive",
) -> list[Path]:
    """Backups named by age so the newest sorts last, like dated names."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        write_backup(
            directory / f"backup_{10_000 - int(age * 100):05d}{suffix}",
            content(),
            age * DAY,
        )
        for age in ages_in_days
    ]


def daily(count: int, newest_age_days: float = 0.1) -> list[float]:
    return [newest_age_days + day for day in range(count)]


def backup_config(directory: Path, **fields: Any) -> BackupConfig:
    """A backup probe of `backup_*` in *directory*, timeout 20 s unless told."""
    usual = {"interval": "5m", "timeout": "20s", "glob": "backup_*"}
    config: BackupConfig = probe_config(
        "backup", name="backups", path=str(directory), **{**usual, **fields}
    )
    return config


async def run(config: BackupConfig, ctx: ProbeContext | None = None) -> ProbeResult:
    return await run_once(config, ctx=ctx)


def figure(result: ProbeResult, name: str) -> float:
    """The value of the run's (label-less) sample *name*; it must be there."""
    value = sample(result, name)
    assert value is not None, f"no sample {name}"
    return value


# --- healthy and stale ------------------------------------------------------------


async def test_fresh_daily_set_passes_every_check(tmp_path: Path) -> None:
    paths = make_set(tmp_path, daily(7))
    result = await run(backup_config(tmp_path, retention="7d"))
    assert result.success, result.checks
    assert verdicts(result) == {
        "backup_fresh": True,
        "backup_retention": True,
        "backup_cleanup": True,
        "backup_size": True,
        "backup_integrity": True,
    }
    assert "mongodump.gz" in detail(result, "backup_integrity")
    assert figure(result, "backup_files") == 7
    assert figure(result, "backup_verify_success") == 1
    assert figure(result, "backup_age_max_seconds") == 26 * 3600
    assert figure(result, "backup_newest_timestamp_seconds") == pytest.approx(
        paths[0].stat().st_mtime
    )
    assert figure(result, "backup_oldest_timestamp_seconds") == pytest.approx(
        paths[-1].stat().st_mtime
    )
    assert figure(result, "backup_largest_gap_seconds") == pytest.approx(DAY, abs=1)
    assert figure(result, "backup_newest_size_bytes") == paths[0].stat().st_size
    assert figure(result, "backup_total_size_bytes") == sum(
        p.stat().st_size for p in paths
    )


async def test_stale_newest_fails_fresh_with_reason_check(tmp_path: Path) -> None:
    make_set(tmp_path, daily(7, newest_age_days=3))
    result = await run(backup_config(tmp_path, retention="7d"))
    assert not result.success
    assert result.reason is Reason.CHECK
    assert verdicts(result)["backup_fresh"] is False
    assert "3.0d old, max 26.0h (stale)" in detail(result, "backup_fresh")
    assert figure(result, "backup_newest_timestamp_seconds") > 0


# --- retention, gaps, cleanup ------------------------------------------------------


async def test_missing_day_in_a_week_fails_retention(tmp_path: Path) -> None:
    make_set(tmp_path, [0.1, 1.1, 2.1, 4.1, 5.1, 6.1, 7.1])
    result = await run(backup_config(tmp_path, retention="7d"))
    assert verdicts(result)["backup_retention"] is False
    assert "gap of 48.0h before backup_09790.archive" in detail(
        result, "backup_retention"
    )
    assert figure(result, "backup_largest_gap_seconds") == pytest.approx(2 * DAY)
    assert result.success  # a warning only


async def test_set_younger_than_its_window_fails_retention(tmp_path: Path) -> None:
    make_set(tmp_path, daily(3))
    result = await run(backup_config(tmp_path, retention="7d"))
    assert verdicts(result)["backup_retention"] is False
    assert "the window needs 6.0d" in detail(result, "backup_retention")


async def test_too_few_backups_fail_retention(tmp_path: Path) -> None:
    # Every gap under 36h and old enough, but a day's backup is missing.
    make_set(tmp_path, [0.1, 1.5, 2.9, 4.3, 5.7, 7.1])
    result = await run(backup_config(tmp_path, retention="7d"))
    assert verdicts(result)["backup_retention"] is False
    assert "6 backups within 8.5d, needs 7" in detail(result, "backup_retention")


async def test_old_files_left_behind_fail_cleanup(tmp_path: Path) -> None:
    make_set(tmp_path, [*daily(7), 12.0, 40.0])
    result = await run(backup_config(tmp_path, retention="7d"))
    assert verdicts(result)["backup_cleanup"] is False
    assert "2 file(s) older than 8.5d" in detail(result, "backup_cleanup")
    assert "(40.0d)" in detail(result, "backup_cleanup")
    # The stray old files do not count as a gap inside the window.
    assert verdicts(result)["backup_retention"] is True


async def test_four_weekly_snapshots_by_count(tmp_path: Path) -> None:
    make_set(tmp_path, [0.5, 7.5, 14.5, 21.5])
    config = backup_config(
        tmp_path, retention_count=4, backup_interval="7d", age_max="8d"
    )
    result = await run(config)
    assert result.success, result.checks
    assert verdicts(result)["backup_retention"] is True
    make_set(tmp_path, [40.0])
    assert verdicts(await run(config))["backup_cleanup"] is False


# --- size ----------------------------------------------------------------------------


async def test_empty_newest_fails_size_and_integrity(tmp_path: Path) -> None:
    make_set(tmp_path, daily(6, newest_age_days=1.1))
    write_backup(tmp_path / "backup_99999.archive", b"", 0.1 * DAY)
    result = await run(backup_config(tmp_path))
    assert verdicts(result)["backup_size"] is False
    assert "is empty" in detail(result, "backup_size")
    assert verdicts(result)["backup_integrity"] is False
    assert figure(result, "backup_newest_size_bytes") == 0


async def test_size_drop_below_half_of_median_fails(tmp_path: Path) -> None:
    make_set(tmp_path, daily(7, newest_age_days=1.1), lambda: b"x" * 10_000)
    write_backup(tmp_path / "backup_99999.archive", b"x" * 4_000, 0.1 * DAY)
    config = backup_config(tmp_path, verify=False)
    result = await run(config)
    assert verdicts(result)["backup_size"] is False
    assert "40% of the median 9.8 KiB of the previous 7" in detail(
        result, "backup_size"
    )
    write_backup(tmp_path / "backup_99999.archive", b"x" * 6_000, 0.1 * DAY)
    assert verdicts(await run(config))["backup_size"] is True


# --- integrity -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "format_name"),
    [
        (tar_gz, "tar.gz"),
        (zip_bytes, "zip"),
        (mongodump_gz, "mongodump.gz"),
        (mongodump, "mongodump"),
        (lambda: gzip.compress(b"plain text\n" * 1000), "gz"),
    ],
)
async def test_valid_archives_pass_integrity(
    tmp_path: Path, content: Callable[[], bytes], format_name: str
) -> None:
    # A misleading extension: the format comes from the magic bytes.
    make_set(tmp_path, [0.1], content, suffix=".bak")
    result = await run(backup_config(tmp_path, retention="1d"))
    assert verdicts(result)["backup_integrity"] is True, result.checks
    assert f": {format_name} " in detail(result, "backup_integrity")


async def test_truncated_gzip_fails_integrity(tmp_path: Path) -> None:
    whole = mongodump_gz(200_000)
    write_backup(tmp_path / "backup_1.archive", whole[: len(whole) // 2], 3600)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert not result.success
    assert result.reason is Reason.CHECK
    assert verdicts(result)["backup_integrity"] is False
    assert "gz: truncated" in detail(result, "backup_integrity")
    assert figure(result, "backup_verify_success") == 0


@pytest.mark.parametrize(
    "compress", [lambda data: data, gzip.compress], ids=["plain", "gzip"]
)
@pytest.mark.parametrize(
    "content",
    [
        MONGODUMP_MAGIC + bytes(5000),
        # Cut just before the last terminator: every block so far is whole.
        mongodump(20_000)[:-4],
        # Cut inside the documents, right after a terminator-like run.
        mongodump(20_000)[:9000] + TERMINATOR[:3],
    ],
    ids=["magic-and-zeros", "no-final-terminator", "cut-in-documents"],
)
async def test_truncated_mongodump_fails_integrity(
    tmp_path: Path, content: bytes, compress: Callable[[bytes], bytes]
) -> None:
    # A gzip stream can be whole while the dump inside it was cut short.
    write_backup(tmp_path / "backup_1.archive", compress(content), 3600)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert verdicts(result)["backup_integrity"] is False
    assert "mongodump archive does not end with its terminator" in detail(
        result, "backup_integrity"
    )


async def test_corrupt_zip_fails_integrity(tmp_path: Path) -> None:
    damaged = bytearray(zip_bytes())
    damaged[100] ^= 0xFF  # inside the first member's compressed data
    write_backup(tmp_path / "backup_1.zip", bytes(damaged), 3600)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert verdicts(result)["backup_integrity"] is False
    assert "zip: unreadable" in detail(result, "backup_integrity")


async def test_tar_gz_cut_at_a_member_boundary_fails(tmp_path: Path) -> None:
    whole = gzip.decompress(tar_gz())
    cut = gzip.compress(whole[: 512 + 3072])  # header + data of member 1 only
    write_backup(tmp_path / "backup_1.tgz", cut, 3600)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert verdicts(result)["backup_integrity"] is False
    assert "no end-of-archive" in detail(result, "backup_integrity")


async def test_random_bytes_fail_integrity_as_unknown(tmp_path: Path) -> None:
    write_backup(tmp_path / "backup_1.archive", os.urandom(5000), 3600)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert verdicts(result)["backup_integrity"] is False
    assert "unknown format" in detail(result, "backup_integrity")


async def test_verification_budgets_fail_with_the_reason(tmp_path: Path) -> None:
    write_backup(tmp_path / "backup_1.archive", mongodump_gz(3_000_000), 3600)
    too_small = backup_config(tmp_path, retention="1d", verify_max_bytes=1000)
    result = await run(too_small)
    assert "above verify_max_bytes (1000)" in detail(result, "backup_integrity")
    too_short = backup_config(tmp_path, retention="1d", verify_timeout=1e-6)
    result = await run(too_short)
    assert "verify_timeout (1e-06s) ran out" in detail(result, "backup_integrity")


async def test_verdict_that_ran_out_of_budget_is_not_kept(tmp_path: Path) -> None:
    write_backup(tmp_path / "backup_1.archive", mongodump_gz(), 3600)
    ctx = ProbeContext("backups", SharedResources())
    hurried = backup_config(tmp_path, retention="1d", verify_timeout=1e-6)
    result = await run(hurried, ctx)
    assert "ran out" in detail(result, "backup_integrity")
    # Same file, same probe memory: a run with time to spare reads it again.
    result = await run(backup_config(tmp_path, retention="1d"), ctx)
    assert verdicts(result)["backup_integrity"] is True, result.checks


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs /proc")
async def test_cancelled_run_stops_the_verification_thread(tmp_path: Path) -> None:
    huge_sparse_mongodump(tmp_path / "backup_1.archive")
    config = backup_config(
        tmp_path, retention="1d", timeout="60s", verify_max_bytes="1TiB"
    )
    # One worker: the probe's to_thread calls queue behind each other, so a
    # later call runs only once the verification thread has given up.
    loop = asyncio.get_running_loop()
    workers = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(workers)
    start = bytes_read_by_this_process()
    task = asyncio.create_task(run(config))
    await eventually(
        lambda: task.done() or bytes_read_by_this_process() - start >= 64 << 20,
        timeout=30,
    )
    assert not task.done(), task.result()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Generous: the thread checks the stop event at every 1 MiB chunk.
    await asyncio.wait_for(loop.run_in_executor(None, lambda: None), timeout=20)


async def test_verification_stops_within_the_runs_budget(tmp_path: Path) -> None:
    # No verify_timeout: the read gets 80 % of the run's budget (1.44 s of a
    # 2 s timeout), so the run ends with its own verdict, not a timeout.
    huge_sparse_mongodump(tmp_path / "backup_1.archive")
    config = backup_config(
        tmp_path,
        retention="1d",
        interval="10s",
        timeout="2s",
        verify_max_bytes="1TiB",
    )
    result = await run(config)
    assert result.reason is Reason.CHECK, result.error
    assert verdicts(result)["backup_integrity"] is False
    spent = re.search(
        r"not verified: verify_timeout \(([\d.]+)s\) ran out",
        detail(result, "backup_integrity"),
    )
    assert spent, detail(result, "backup_integrity")
    assert 0 < float(spent.group(1)) <= 1.44  # less only if the listing was slow
    assert figure(result, "backup_verify_success") == 0


def huge_sparse_mongodump(path: Path) -> None:
    """A sparse 64 GiB "mongodump", an hour old: reading it takes far longer
    than any test."""
    with path.open("wb") as file:
        file.write(MONGODUMP_MAGIC)
        file.truncate(64 << 30)
    stamp = time.time() - 3600
    os.utime(path, (stamp, stamp))


def bytes_read_by_this_process() -> int:
    fields = dict(
        line.split(": ") for line in Path("/proc/self/io").read_text().splitlines()
    )
    return int(fields["rchar"])


async def test_verdict_is_kept_until_the_file_changes(tmp_path: Path) -> None:
    config = backup_config(tmp_path, retention="1d")
    ctx = ProbeContext(config.name, SharedResources())
    path = write_backup(tmp_path / "backup_1.archive", mongodump_gz(), 3600)
    assert verdicts(await run(config, ctx))["backup_integrity"] is True
    # Same bytes count, same mtime, same inode: the remembered verdict stands.
    before = path.stat()
    with path.open("r+b") as file:
        file.write(b"\0" * 64)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert verdicts(await run(config, ctx))["backup_integrity"] is True
    # A new mtime is a new file: read again, and now found corrupt.
    os.utime(path, (time.time() - 1800, time.time() - 1800))
    assert verdicts(await run(config, ctx))["backup_integrity"] is False


# --- encryption ----------------------------------------------------------------------


async def test_expect_encrypted_passes_random_bytes(tmp_path: Path) -> None:
    write_backup(tmp_path / "backup_1.archive.age", os.urandom(8192), 3600)
    result = await run(backup_config(tmp_path, retention="1d", expect_encrypted=True))
    assert verdicts(result)["backup_encrypted"] is True
    # Encrypted backups cannot be read, so verification is off unless asked.
    assert "backup_integrity" not in verdicts(result)
    assert sample(result, "backup_verify_success") is None


async def test_expect_encrypted_fails_plain_gzip(tmp_path: Path) -> None:
    write_backup(tmp_path / "backup_1.archive", mongodump_gz(), 3600)
    result = await run(backup_config(tmp_path, retention="1d", expect_encrypted=True))
    assert verdicts(result)["backup_encrypted"] is False
    assert "is plain gz" in detail(result, "backup_encrypted")


# --- the directory itself ---------------------------------------------------------------


async def test_missing_directory_fails_checks_and_exports_zeros(
    tmp_path: Path,
) -> None:
    result = await run(backup_config(tmp_path / "nowhere"))
    assert result.reason is Reason.CHECK
    assert verdicts(result)["backup_fresh"] is False
    assert "does not exist" in detail(result, "backup_fresh")
    assert figure(result, "backup_files") == 0
    assert figure(result, "backup_newest_timestamp_seconds") == 0
    assert figure(result, "backup_verify_success") == 0


async def test_empty_directory_fails_checks_and_exports_zeros(tmp_path: Path) -> None:
    (tmp_path / "unrelated.txt").write_text("not a backup")
    result = await run(backup_config(tmp_path))
    assert not verdicts(result)["backup_fresh"]
    assert "no file matches 'backup_*'" in detail(result, "backup_fresh")
    assert figure(result, "backup_files") == 0


async def test_path_through_a_file_is_a_config_failure(tmp_path: Path) -> None:
    # Unreadable even for root, unlike chmod 000.
    (tmp_path / "plain-file").write_text("x")
    result = await run(backup_config(tmp_path / "plain-file" / "backups"))
    assert not result.success
    assert result.reason is Reason.CONFIG
    assert "is not a directory" in result.error
    assert all(c.detail.startswith("not evaluated") for c in result.checks)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 directory")
async def test_unlistable_directory_is_a_config_failure(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        result = await run(backup_config(locked))
    finally:
        locked.chmod(0o755)
    assert result.reason is Reason.CONFIG
    assert "permission denied" in result.error


async def test_file_being_written_is_left_out_of_newest_checks(
    tmp_path: Path,
) -> None:
    make_set(tmp_path, daily(7, newest_age_days=1.0))
    partial = mongodump_gz(100_000)[:5000]  # a dump half way through
    write_backup(tmp_path / "backup_99999.archive", partial, 5)
    result = await run(backup_config(tmp_path, retention="7d"))
    assert verdicts(result)["backup_integrity"] is True
    assert verdicts(result)["backup_size"] is True
    assert "backup_09900.archive" in detail(result, "backup_fresh")
    assert figure(result, "backup_files") == 8
    # Once it has settled it is judged, and found truncated.
    settled = backup_config(tmp_path, retention="7d", settle_time="1s")
    assert verdicts(await run(settled))["backup_integrity"] is False


async def test_only_file_being_written_says_so(tmp_path: Path) -> None:
    write_backup(tmp_path / "backup_1.archive", b"partial", 2)
    result = await run(backup_config(tmp_path))
    assert "1 still being written" in detail(result, "backup_fresh")
    assert figure(result, "backup_files") == 1


async def test_symlinks_followed_and_odd_entries_ignored(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    sets = tmp_path / "set"
    targets = make_set(store, daily(7))
    sets.mkdir()
    for target in targets:
        (sets / target.name).symlink_to(target)
    (sets / "backup_latest.archive").symlink_to(targets[0])  # same file again
    (sets / "backup_broken.archive").symlink_to(tmp_path / "gone")
    (sets / "backup_loop.archive").symlink_to(sets / "backup_loop.archive")
    (sets / "backup_dir").symlink_to(store)
    os.mkfifo(sets / "backup_fifo.archive")  # reading it would block forever
    (sets / "backup_fifo_link.archive").symlink_to(sets / "backup_fifo.archive")
    result = await run(backup_config(sets, retention="7d"))
    assert result.success, result.checks
    assert figure(result, "backup_files") == 7
    assert figure(result, "backup_largest_gap_seconds") == pytest.approx(DAY, abs=1)


async def test_ten_thousand_files(tmp_path: Path) -> None:
    now = time.time()
    for index in range(10_000):
        path = tmp_path / f"backup_{index:05d}.archive"
        path.touch()
        stamp = now - (10_000 - index) * 60
        os.utime(path, (stamp, stamp))
    result = await run(backup_config(tmp_path, retention="7d", verify=False))
    assert figure(result, "backup_files") == 10_000
    assert figure(result, "backup_newest_timestamp_seconds") == pytest.approx(now - 60)
    assert verdicts(result)["backup_fresh"] is True
    assert verdicts(result)["backup_size"] is False  # they are all empty


# --- config --------------------------------------------------------------------------------


def backup_problems(fields: str) -> str:
    """The config problems of a backup probe of /var/backups with *fields*
    (YAML flow style)."""
    return config_problems(f"- {{kind: backup, name: b, path: /var/backups, {fields}}}")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("retention: 7d, retention_count: 4", "either retention"),
        ("glob: daily/*.gz", "put the directories in `path`"),
        ("verify_timeout: 2m", "verify_timeout (120s) must be below timeout (120s)"),
        ("retention: 12h", "retention (43200s) must be at least backup_interval"),
        ("size_ratio_min: 2", "size_ratio_min"),
        ("intervall: 1d", "unknown field 'intervall'"),
        ("settle_time: 2d", "settle_time must be below age_max"),
    ],
)
def test_bad_config_is_explained(fields: str, message: str) -> None:
    assert message in backup_problems(fields)


@pytest.mark.parametrize(
    ("old", "new"), [("max_age", "age_max"), ("size_drop_ratio", "size_ratio_min")]
)
def test_a_renamed_field_names_the_new_one(old: str, new: str) -> None:
    problems = backup_problems(f"{old}: 1")
    assert f"field {old!r} is now {new!r} (renamed in 0.2.0" in problems


async def test_age_max_sets_freshness_and_its_series(tmp_path: Path) -> None:
    make_set(tmp_path, daily(7, newest_age_days=1.5))
    result = await run(backup_config(tmp_path, retention="7d", age_max="2d"))
    assert verdicts(result)["backup_fresh"] is True
    assert "36.0h old, max 2.0d" in detail(result, "backup_fresh")
    assert figure(result, "backup_age_max_seconds") == 2 * DAY
    assert sample(result, "backup_max_age_seconds") is None  # the 0.1 name
    stale = await run(backup_config(tmp_path, retention="7d", age_max="1d"))
    assert verdicts(stale)["backup_fresh"] is False
    assert "36.0h old, max 24.0h (stale)" in detail(stale, "backup_fresh")


async def test_size_ratio_min_sets_the_size_limit(tmp_path: Path) -> None:
    make_set(tmp_path, daily(7, newest_age_days=1.1), lambda: b"x" * 10_000)
    write_backup(tmp_path / "backup_99999.archive", b"x" * 6_000, 0.1 * DAY)
    config = backup_config(tmp_path, verify=False, size_ratio_min=0.7)
    result = await run(config)
    assert verdicts(result)["backup_size"] is False
    assert "60% of the median" in detail(result, "backup_size")
    assert "(min 70%)" in detail(result, "backup_size")


def test_defaults() -> None:
    config = backup_config(Path("/var/backups"), timeout="2m")
    assert config.age_max == 26 * 3600
    assert config.size_ratio_min == 0.5
    assert config.retention_seconds == 7 * DAY
    assert config.verify_enabled


@pytest.mark.parametrize(
    ("fields", "seconds"),
    [
        # 80 % of the run's budget: the timeout less 0.5 s (at most 10 %).
        ({"timeout": "2m"}, 0.8 * 119.5),
        ({"timeout": "2s"}, 0.8 * 1.8),
        ({"timeout": "2m", "verify_timeout": "30s"}, 30.0),
        # verify_timeout never takes more than 80 % of the budget either.
        ({"timeout": "2m", "verify_timeout": "110s"}, 0.8 * 119.5),
    ],
)
def test_verification_budget_comes_from_the_run(
    fields: dict[str, Any], seconds: float
) -> None:
    config = backup_config(Path("/var/backups"), **fields)
    ctx = ProbeContext(config.name, SharedResources())
    ctx.deadline = Deadline(config.timeout)  # what the runner gives each run
    assert _verify_seconds(config, ctx) == pytest.approx(seconds, abs=0.01)


def test_the_checks_table_plans_what_plan_did() -> None:
    # What `plan()` gave before checks became data (0.1.x).
    always = ["backup_fresh", "backup_retention", "backup_cleanup", "backup_size"]
    for fields, extra in [
        ({}, ["backup_integrity"]),
        ({"verify": False}, []),
        ({"expect_encrypted": True}, ["backup_encrypted"]),
        (
            {"expect_encrypted": True, "verify": True},
            ["backup_integrity", "backup_encrypted"],
        ),
    ]:
        config = backup_config(Path("/var/backups"), **fields)
        planned = [spec.name for spec in PROBES["backup"].plan(config)]
        assert planned == always + extra, fields


# --- pg_dump, from the fixture server's own pg_dump -----------------------------------


@dataclass(frozen=True)
class PgDumps:
    """Dumps of one database, made by the fixture server's pg_dump."""

    version: str
    plain: bytes
    custom: bytes  # written to a file: the TOC holds each block's offset
    custom_piped: bytes  # written to a pipe: no offsets
    directory: Path
    cluster_plain: bytes


PG_SETUP_SQL = """
CREATE TABLE orders (id int PRIMARY KEY, note text);
INSERT INTO orders SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 20000) g;
CREATE TABLE empty_one (a int);
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 500), 'UTF8'));
"""


@pytest.fixture(scope="module")
def pg_dumps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgDumps]:
    try:
        cluster = start_cluster()
    except BinariesMissing as missing:
        pytest.skip(str(missing))
    try:
        cluster.client("psql", "-v", "ON_ERROR_STOP=1", "-c", PG_SETUP_SQL, "postgres")
        made = tmp_path_factory.mktemp("pg")
        cluster.dump(made / "dump.dir", "-Fd")
        cluster.dump(made / "custom.dump", "-Fc")
        yield PgDumps(
            version=subprocess.run(
                [str(cluster.bin_dir / "pg_dump"), "--version"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip(),
            plain=cluster.client("pg_dump", "postgres"),
            custom=(made / "custom.dump").read_bytes(),
            custom_piped=cluster.client("pg_dump", "-Fc", "postgres"),
            directory=made / "dump.dir",
            cluster_plain=cluster.client("pg_dumpall"),
        )
    finally:
        cluster.destroy()


def set_age(path: Path, age_seconds: float) -> None:
    """Date *path*, and every file below it, *age_seconds* ago."""
    stamp = time.time() - age_seconds
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (stamp, stamp))


def pg_backup(tmp_path: Path, pg_dumps: PgDumps, form: str, cut: bool) -> Path:
    """The newest backup of a one-day set, in *form*, whole or cut short."""
    if form == "directory":
        target = tmp_path / "backup_1"
        shutil.copytree(pg_dumps.directory, target)
        if cut:  # the table's data file, cut in half
            data = max(target.glob("*.dat*"), key=lambda p: p.stat().st_size)
            data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
        set_age(target, 3600)
        return target
    content = {
        "plain": pg_dumps.plain,
        "gzip": gzip.compress(pg_dumps.plain),
        "custom": pg_dumps.custom,
        "custom-piped": pg_dumps.custom_piped,
    }[form]
    if cut:
        content = content[: len(content) // 2]
    return write_backup(tmp_path / "backup_1", content, 3600)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("form", "says"),
    [
        ("plain", "backup_1: pg_dump.sql read to the end"),
        ("gzip", "backup_1: pg_dump.sql.gz read to the end"),
        ("custom", "backup_1: pg_dump custom archive 1.1"),
        ("custom-piped", "backup_1: pg_dump custom archive 1.1"),
        ("directory", "backup_1: pg_dump directory 1.1"),
    ],
)
async def test_real_pg_dump_passes_integrity(
    tmp_path: Path, pg_dumps: PgDumps, form: str, says: str
) -> None:
    pg_backup(tmp_path, pg_dumps, form, cut=False)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert result.success, (pg_dumps.version, result.checks)
    assert verdicts(result)["backup_integrity"] is True
    assert figure(result, "backup_verify_success") == 1
    assert figure(result, "backup_files") == 1
    assert says in detail(result, "backup_integrity")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("form", "says"),
    [
        ("plain", "does not end with its 'dump complete' footer"),
        ("gzip", "gz: truncated"),
        ("custom", "the archive ends inside the data of TABLE DATA public orders"),
        (
            "custom-piped",
            "the archive ends inside the data of TABLE DATA public orders",
        ),
        ("directory", "the data of TABLE DATA public orders, is cut short"),
    ],
)
async def test_real_pg_dump_cut_short_fails_integrity(
    tmp_path: Path, pg_dumps: PgDumps, form: str, says: str
) -> None:
    pg_backup(tmp_path, pg_dumps, form, cut=True)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert not result.success
    assert result.reason is Reason.CHECK
    assert verdicts(result)["backup_integrity"] is False
    assert "truncated" in detail(result, "backup_integrity")
    assert says in detail(result, "backup_integrity")
    assert figure(result, "backup_verify_success") == 0


@pytest.mark.integration
def test_the_fixture_pg_dump_writes_unrestrict(pg_dumps: PgDumps) -> None:
    # What made every current pg_dump fail: the line after the footer.
    footer = pg_dumps.plain.rindex(b"-- PostgreSQL database dump complete")
    assert pg_dumps.plain[footer:].split(b"\n")[3].startswith(b"\\unrestrict "), (
        pg_dumps.version
    )


@pytest.mark.integration
async def test_a_gzipped_dump_cut_before_unrestrict_fails(
    tmp_path: Path, pg_dumps: PgDumps
) -> None:
    # A whole gzip stream around a dump that lost only its last line.
    cut = pg_dumps.plain[: pg_dumps.plain.rindex(b"\\unrestrict ")]
    write_backup(tmp_path / "backup_1.sql.gz", gzip.compress(cut), 3600)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert "starts with \\restrict but ends without its \\unrestrict line" in detail(
        result, "backup_integrity"
    )


@pytest.mark.integration
async def test_real_pg_dumpall_passes_and_fails_when_cut(
    tmp_path: Path, pg_dumps: PgDumps
) -> None:
    write_backup(tmp_path / "backup_1.sql", pg_dumps.cluster_plain, 3600)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert verdicts(result)["backup_integrity"] is True, result.checks
    assert "pg_dumpall.sql" in detail(result, "backup_integrity")
    cut = pg_dumps.cluster_plain[:-20]
    write_backup(tmp_path / "backup_1.sql", cut, 3600)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert "truncated: pg_dumpall text does not end" in detail(
        result, "backup_integrity"
    )


@pytest.mark.integration
async def test_custom_format_cut_anywhere_fails(
    tmp_path: Path, pg_dumps: PgDumps
) -> None:
    # Header, TOC, inside a block, at a block boundary: every cut is caught.
    whole = pg_dumps.custom
    for cut in [0, 10, 200, len(whole) // 3, len(whole) - 5, len(whole) - 1]:
        write_backup(tmp_path / "backup_1.dump", whole[:cut], 3600)
        verdict = verify_archive(
            tmp_path / "backup_1.dump", max_bytes=1 << 30, seconds=10
        )
        assert not verdict.ok, cut
        assert "truncated" in verdict.detail or verdict.detail == "empty file", (
            cut,
            verdict.detail,
        )
    ends = [m.start() for m in re.finditer(b"\x01\x01\x00\x00\x00", whole)]
    assert ends, "no data block found"  # a block header: BLK_DATA, dump id
    write_backup(tmp_path / "backup_1.dump", whole[: ends[-1]], 3600)
    verdict = verify_archive(tmp_path / "backup_1.dump", max_bytes=1 << 30, seconds=10)
    assert not verdict.ok


@pytest.mark.integration
def test_a_custom_archive_moved_inside_fails_its_offsets(
    tmp_path: Path, pg_dumps: PgDumps
) -> None:
    # The TOC of a seekable dump says where each block starts; a block
    # elsewhere (bytes lost in the middle, not at the end) is caught.
    whole = pg_dumps.custom
    at = whole.rindex(b"\x01\x01\x00\x00\x00")  # a block header near the end
    damaged = whole[: at - 7] + whole[at:]
    write_backup(tmp_path / "backup_1.dump", damaged, 3600)
    verdict = verify_archive(tmp_path / "backup_1.dump", max_bytes=1 << 30, seconds=10)
    assert not verdict.ok
    assert "corrupt" in verdict.detail, verdict.detail


@pytest.mark.integration
def test_archive_version_1_15_headers_are_read(
    tmp_path: Path, pg_dumps: PgDumps
) -> None:
    # PostgreSQL 16 (archive 1.15) writes the compression algorithm as one
    # byte where 15 wrote a level as an integer: the same archive, so told.
    old = pg_dumps.custom_piped
    assert old[5:8] == b"\x01\x0e\x00", "the fixture's pg_dump is not 1.14"
    level = int.from_bytes(old[12:16], "little") * (-1 if old[11] else 1)
    algorithm = b"\x00" if level == 0 else b"\x01"  # none, gzip
    newer = old[:6] + b"\x0f" + old[7:11] + algorithm + old[16:]
    write_backup(tmp_path / "backup_1.dump", newer, 3600)
    verdict = verify_archive(tmp_path / "backup_1.dump", max_bytes=1 << 30, seconds=10)
    assert verdict.ok, verdict.detail
    assert "pg_dump custom archive 1.15.0" in verdict.detail


@pytest.mark.integration
async def test_custom_format_inside_gzip_is_read_through(
    tmp_path: Path, pg_dumps: PgDumps
) -> None:
    # `pg_dump -Fc | gzip`: the archive inside is walked, not only the gzip.
    write_backup(tmp_path / "backup_1.gz", gzip.compress(pg_dumps.custom), 3600)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert verdicts(result)["backup_integrity"] is True, result.checks
    assert "pg_dump.custom.gz" in detail(result, "backup_integrity")
    cut = gzip.compress(pg_dumps.custom[: len(pg_dumps.custom) // 2])
    write_backup(tmp_path / "backup_1.gz", cut, 3600)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert "pg_dump.custom.gz: truncated" in detail(result, "backup_integrity")


# --- directories as backups ---------------------------------------------------------------


@pytest.mark.integration
async def test_a_pg_dump_directory_is_one_backup(
    tmp_path: Path, pg_dumps: PgDumps
) -> None:
    for age_days in (0.1, 1.1, 2.1):
        target = tmp_path / f"backup_{10 - int(age_days)}"
        shutil.copytree(pg_dumps.directory, target)
        set_age(target, age_days * DAY)
    newest = tmp_path / "backup_10"
    (newest / "toc.dat").touch()  # the newest file decides the mtime
    os.utime(newest / "toc.dat", (time.time() - 7200, time.time() - 7200))
    result = await run(backup_config(tmp_path, retention="3d"))
    assert result.success, result.checks
    assert figure(result, "backup_files") == 3
    sizes = sum(p.stat().st_size for p in newest.iterdir())
    assert figure(result, "backup_newest_size_bytes") == sizes
    assert figure(result, "backup_newest_timestamp_seconds") == pytest.approx(
        time.time() - 7200, abs=5
    )
    assert "backup_10: pg_dump directory" in detail(result, "backup_integrity")
    ignored = await run(backup_config(tmp_path, retention="3d", directories="ignore"))
    assert figure(ignored, "backup_files") == 0


async def test_a_pg_dump_directory_without_toc_is_unfinished(tmp_path: Path) -> None:
    # pg_dump -Fd writes toc.dat last: data files alone are a dump in progress.
    target = tmp_path / "backup_1"
    target.mkdir()
    (target / "3344.dat.gz").write_bytes(gzip.compress(b"1\tx\n\\.\n\n\n"))
    set_age(target, 5)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert "1 still being written" in detail(result, "backup_fresh")
    set_age(target, 3600)
    result = await run(backup_config(tmp_path, retention="1d"))
    assert "no toc.dat: pg_dump writes it last" in detail(result, "backup_integrity")


async def test_other_directories_count_when_configured(tmp_path: Path) -> None:
    for age_days in (0.1, 1.1):
        folder = tmp_path / f"backup_{10 - int(age_days)}"
        folder.mkdir()
        (folder / "db.archive").write_bytes(mongodump_gz())
        (folder / "nested").mkdir()
        (folder / "nested" / "files.tar.gz").write_bytes(tar_gz())
        set_age(folder, age_days * DAY)
    default = await run(backup_config(tmp_path, retention="2d"))
    assert figure(default, "backup_files") == 0  # not pg_dump directories
    result = await run(backup_config(tmp_path, retention="2d", directories="all"))
    assert result.success, result.checks
    assert figure(result, "backup_files") == 2
    assert "directory of 2 files (1 mongodump.gz, 1 tar.gz)" in detail(
        result, "backup_integrity"
    )
    broken = tmp_path / "backup_10" / "nested" / "files.tar.gz"
    broken.write_bytes(tar_gz()[:300])
    set_age(tmp_path / "backup_10", 0.1 * DAY)
    result = await run(backup_config(tmp_path, retention="2d", directories="all"))
    assert "backup_10: nested/files.tar.gz: gz: truncated" in detail(
        result, "backup_integrity"
    )
