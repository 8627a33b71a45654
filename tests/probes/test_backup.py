"""The backup probe against real files in tmp_path with chosen mtimes."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bson
import pytest

from exporter.config import ConfigError, parse_config
from exporter.kinds import config_adapter
from exporter.probes.backup import BackupConfig
from exporter.probes.base import ProbeResult, Reason
from exporter.probes.context import ProbeContext, SharedResources
from exporter.runner import run_probe

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
    raw = {
        "kind": "backup",
        "name": "backups",
        "path": str(directory),
        "glob": "backup_*",
        "timeout": "20s",
        **fields,
    }
    config = config_adapter().validate_python(raw)
    assert isinstance(config, BackupConfig)
    return config


async def run(config: BackupConfig, ctx: ProbeContext | None = None) -> ProbeResult:
    context = ctx or ProbeContext(config.name, SharedResources())
    return await run_probe(config, context)


def verdicts(result: ProbeResult) -> dict[str, bool]:
    return {check.name: check.passed for check in result.checks}


def detail(result: ProbeResult, name: str) -> str:
    return next(check.detail for check in result.checks if check.name == name)


def values(result: ProbeResult) -> dict[str, float]:
    return {sample.name: sample.value for sample in result.samples}


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
    figures = values(result)
    assert figures["backup_files"] == 7
    assert figures["backup_verify_success"] == 1
    assert figures["backup_max_age_seconds"] == 26 * 3600
    assert figures["backup_newest_timestamp_seconds"] == pytest.approx(
        paths[0].stat().st_mtime
    )
    assert figures["backup_oldest_timestamp_seconds"] == pytest.approx(
        paths[-1].stat().st_mtime
    )
    assert figures["backup_largest_gap_seconds"] == pytest.approx(DAY, abs=1)
    assert figures["backup_newest_size_bytes"] == paths[0].stat().st_size
    assert figures["backup_total_size_bytes"] == sum(p.stat().st_size for p in paths)


async def test_stale_newest_fails_fresh_with_reason_check(tmp_path: Path) -> None:
    make_set(tmp_path, daily(7, newest_age_days=3))
    result = await run(backup_config(tmp_path, retention="7d"))
    assert not result.success
    assert result.reason is Reason.CHECK
    assert verdicts(result)["backup_fresh"] is False
    assert "3.0d old, max 26.0h (stale)" in detail(result, "backup_fresh")
    assert values(result)["backup_newest_timestamp_seconds"] > 0


# --- retention, gaps, cleanup ------------------------------------------------------


async def test_missing_day_in_a_week_fails_retention(tmp_path: Path) -> None:
    make_set(tmp_path, [0.1, 1.1, 2.1, 4.1, 5.1, 6.1, 7.1])
    result = await run(backup_config(tmp_path, retention="7d"))
    assert verdicts(result)["backup_retention"] is False
    assert "gap of 48.0h before backup_09790.archive" in detail(
        result, "backup_retention"
    )
    assert values(result)["backup_largest_gap_seconds"] == pytest.approx(2 * DAY)
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
        tmp_path, retention_count=4, backup_interval="7d", max_age="8d"
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
    assert values(result)["backup_newest_size_bytes"] == 0


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
    assert values(result)["backup_verify_success"] == 0


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
    # A sparse 64 GiB "mongodump": reading it takes far longer than the test.
    with (tmp_path / "backup_1.archive").open("wb") as file:
        file.write(MONGODUMP_MAGIC)
        file.truncate(64 << 30)
    stamp = time.time() - 3600
    os.utime(tmp_path / "backup_1.archive", (stamp, stamp))
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
    while bytes_read_by_this_process() - start < 64 << 20:
        assert not task.done(), task.result()
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Generous: the thread checks the stop event at every 1 MiB chunk.
    await asyncio.wait_for(loop.run_in_executor(None, lambda: None), timeout=20)


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
    assert "backup_verify_success" not in values(result)


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
    figures = values(result)
    assert figures["backup_files"] == 0
    assert figures["backup_newest_timestamp_seconds"] == 0
    assert figures["backup_verify_success"] == 0


async def test_empty_directory_fails_checks_and_exports_zeros(tmp_path: Path) -> None:
    (tmp_path / "unrelated.txt").write_text("not a backup")
    result = await run(backup_config(tmp_path))
    assert not verdicts(result)["backup_fresh"]
    assert "no file matches 'backup_*'" in detail(result, "backup_fresh")
    assert values(result)["backup_files"] == 0


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
    assert values(result)["backup_files"] == 8
    # Once it has settled it is judged, and found truncated.
    settled = backup_config(tmp_path, retention="7d", settle_time="1s")
    assert verdicts(await run(settled))["backup_integrity"] is False


async def test_only_file_being_written_says_so(tmp_path: Path) -> None:
    write_backup(tmp_path / "backup_1.archive", b"partial", 2)
    result = await run(backup_config(tmp_path))
    assert "1 still being written" in detail(result, "backup_fresh")
    assert values(result)["backup_files"] == 1


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
    assert values(result)["backup_files"] == 7
    assert values(result)["backup_largest_gap_seconds"] == pytest.approx(DAY, abs=1)


async def test_ten_thousand_files(tmp_path: Path) -> None:
    now = time.time()
    for index in range(10_000):
        path = tmp_path / f"backup_{index:05d}.archive"
        path.touch()
        stamp = now - (10_000 - index) * 60
        os.utime(path, (stamp, stamp))
    result = await run(backup_config(tmp_path, retention="7d", verify=False))
    figures = values(result)
    assert figures["backup_files"] == 10_000
    assert figures["backup_newest_timestamp_seconds"] == pytest.approx(now - 60)
    assert verdicts(result)["backup_fresh"] is True
    assert verdicts(result)["backup_size"] is False  # they are all empty


# --- config --------------------------------------------------------------------------------


def probe_yaml(fields: str) -> str:
    return "probes:\n  - kind: backup\n    name: b\n    path: /var/backups\n" + "".join(
        f"    {line}\n" for line in fields.splitlines()
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("retention: 7d\nretention_count: 4", "either retention"),
        ("glob: daily/*.gz", "put the directories in `path`"),
        ("verify_timeout: 2m", "verify_timeout (120s) must be below timeout (120s)"),
        ("retention: 12h", "retention (43200s) must be at least backup_interval"),
        ("size_drop_ratio: 2", "size_drop_ratio"),
        ("intervall: 1d", "unknown field 'intervall'"),
    ],
)
def test_bad_config_is_explained(fields: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(probe_yaml(fields))
    assert message in str(caught.value)


def test_defaults() -> None:
    config = parse_config(probe_yaml("glob: 'backup_*.archive'")).probes[0]
    assert isinstance(config, BackupConfig)
    assert config.max_age == 26 * 3600
    assert config.retention_seconds == 7 * DAY
    assert config.verify_enabled
    assert config.verify_seconds == pytest.approx(96)
