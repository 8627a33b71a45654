"""The backup probe against a bucket prefix on a real S3-compatible server:
moto's server mode on 127.0.0.1 (tests/servers/s3.py), with authentication
on, objects dated back as a backup job of that age would have left them."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yarl

from exporter.probes.backup import BackupConfig
from exporter.probes.base import ProbeResult, Reason
from exporter.probes.context import ProbeContext, SharedResources
from tests.conftest import StartServer, free_port
from tests.helpers import (
    config_problems,
    detail,
    probe_config,
    run_once,
    sample,
    verdicts,
)
from tests.probes.test_backup import DAY, mongodump_gz, tar_gz, zip_bytes
from tests.servers.s3 import S3Server, start_s3


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    server = start_s3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    """A new, empty bucket for the test."""
    name = f"backups-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return name


def s3_config(
    server: S3Server, bucket: str, *, endpoint: str | None = None, **fields: Any
) -> BackupConfig:
    """A backup probe of `backup_*` under `db/` in *bucket*."""
    location: dict[str, Any] = {
        "endpoint": endpoint or server.endpoint,
        "bucket": bucket,
        "prefix": "db/",
        "access_key_id": server.access_key_id,
        "secret_access_key": server.secret_access_key,
        **fields.pop("s3", {}),
    }
    usual = {"interval": "5m", "timeout": "10s", "glob": "backup_*", "s3": location}
    config: BackupConfig = probe_config("backup", name="offsite", **{**usual, **fields})
    return config


def daily_set(
    server: S3Server,
    bucket: str,
    ages_in_days: list[float],
    content: bytes | None = None,
) -> list[str]:
    """One object per age, named so the newest sorts last."""
    keys = []
    for age in ages_in_days:
        key = f"db/backup_{10_000 - int(age * 100):05d}.archive"
        server.put(bucket, key, content or mongodump_gz(), age_seconds=age * DAY)
        keys.append(key)
    return keys


def figure(result: ProbeResult, name: str) -> float:
    value = sample(result, name)
    assert value is not None, f"no sample {name}"
    return value


def no_secret_in(result: ProbeResult, secret: str) -> None:
    texts = [result.error or "", *(check.detail for check in result.checks)]
    texts += [repr(s) for s in result.samples]
    assert not [text for text in texts if secret in text]


# --- the set, read as a directory ----------------------------------------------------


async def test_a_healthy_set_passes_every_check(
    s3_server: S3Server, bucket: str
) -> None:
    keys = daily_set(s3_server, bucket, [0.1 + day for day in range(7)])
    # Not part of the set: another prefix, a "subfolder", the folder marker.
    s3_server.put(bucket, "other/backup_99999.archive", b"x")
    s3_server.put(bucket, "db/old/backup_99999.archive", b"x")
    s3_server.put(bucket, "db/", b"")
    result = await run_once(s3_config(s3_server, bucket, retention="7d"))
    assert result.success, result.checks
    assert verdicts(result) == {
        "backup_fresh": True,
        "backup_retention": True,
        "backup_cleanup": True,
        "backup_size": True,
        "backup_integrity": True,
    }
    assert "backup_09990.archive: mongodump.gz read to the end" in detail(
        result, "backup_integrity"
    )
    assert figure(result, "backup_files") == 7
    assert figure(result, "backup_verify_success") == 1
    assert figure(result, "backup_largest_gap_seconds") == pytest.approx(DAY, abs=2)
    size = len(mongodump_gz())
    assert figure(result, "backup_newest_size_bytes") == pytest.approx(size, rel=0.1)
    assert keys[0].endswith("backup_09990.archive")


async def test_a_stale_newest_fails_fresh(s3_server: S3Server, bucket: str) -> None:
    daily_set(s3_server, bucket, [3.0 + day for day in range(7)])
    result = await run_once(s3_config(s3_server, bucket, retention="7d"))
    assert result.reason is Reason.CHECK
    assert verdicts(result)["backup_fresh"] is False
    assert "backup_09700.archive is 3.0d old, max 26.0h (stale)" in detail(
        result, "backup_fresh"
    )


async def test_a_missing_day_fails_retention(s3_server: S3Server, bucket: str) -> None:
    daily_set(s3_server, bucket, [0.1, 1.1, 2.1, 4.1, 5.1, 6.1, 7.1])
    result = await run_once(s3_config(s3_server, bucket, retention="7d"))
    assert verdicts(result)["backup_retention"] is False
    # S3 dates to the second: the gap is a little over 48 h.
    assert "before backup_09790.archive (limit 36.0h)" in detail(
        result, "backup_retention"
    )
    assert figure(result, "backup_largest_gap_seconds") == pytest.approx(2 * DAY, abs=2)


async def test_old_objects_left_behind_fail_cleanup(
    s3_server: S3Server, bucket: str
) -> None:
    daily_set(s3_server, bucket, [*(0.1 + day for day in range(7)), 40.0])
    result = await run_once(s3_config(s3_server, bucket, retention="7d"))
    assert verdicts(result)["backup_cleanup"] is False
    assert "1 file(s) older than 8.5d, oldest backup_06000.archive" in detail(
        result, "backup_cleanup"
    )


async def test_an_empty_prefix_fails_and_reads_zero(
    s3_server: S3Server, bucket: str
) -> None:
    result = await run_once(s3_config(s3_server, bucket))
    assert f"no object matches 'backup_*' in s3://{bucket}/db/" in detail(
        result, "backup_fresh"
    )
    assert figure(result, "backup_files") == 0
    assert figure(result, "backup_newest_timestamp_seconds") == 0


async def test_thousands_of_objects_are_listed_page_by_page(
    s3_server: S3Server, bucket: str
) -> None:
    # A page holds 1000 keys: 2500 need three requests.
    keys = [f"db/backup_{index:05d}.archive" for index in range(2500)]
    s3_server.store_many(bucket, keys)
    s3_server.backdate(bucket, keys, 3600)
    result = await run_once(s3_config(s3_server, bucket, verify=False))
    assert figure(result, "backup_files") == 2500
    assert verdicts(result)["backup_fresh"] is True


# --- integrity, streamed -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (tar_gz(), "tar.gz with 3 member(s) read to the end"),
        (zip_bytes(), "zip with 2 member(s), every CRC matches"),  # a ranged GET
        (gzip.compress(b"-- PostgreSQL database dump\n" * 10), "truncated: pg_dump"),
    ],
    ids=["tar-gz", "zip", "cut-pg-dump"],
)
async def test_the_newest_object_is_read_as_its_format(
    s3_server: S3Server, bucket: str, content: bytes, says: str
) -> None:
    s3_server.put(bucket, "db/backup_1.bak", content, age_seconds=3600)
    result = await run_once(s3_config(s3_server, bucket, retention="1d"))
    assert says in detail(result, "backup_integrity")


async def test_a_truncated_newest_archive_fails_integrity(
    s3_server: S3Server, bucket: str
) -> None:
    daily_set(s3_server, bucket, [1.1, 2.1])
    whole = mongodump_gz(200_000)
    s3_server.put(
        bucket, "db/backup_99999.archive", whole[: len(whole) // 2], age_seconds=3600
    )
    result = await run_once(s3_config(s3_server, bucket, retention="2d"))
    assert result.reason is Reason.CHECK
    assert verdicts(result)["backup_integrity"] is False
    assert "backup_99999.archive: gz: truncated" in detail(result, "backup_integrity")
    assert figure(result, "backup_verify_success") == 0


async def test_verification_is_bounded_by_verify_max_bytes(
    s3_server: S3Server, bucket: str
) -> None:
    s3_server.put(bucket, "db/backup_1", mongodump_gz(50_000), age_seconds=3600)
    config = s3_config(s3_server, bucket, retention="1d", verify_max_bytes=1000)
    result = await run_once(config)
    assert "above verify_max_bytes (1000)" in detail(result, "backup_integrity")


async def test_verification_is_bounded_by_the_runs_time(
    s3_server: S3Server, bucket: str
) -> None:
    s3_server.put(bucket, "db/backup_1", mongodump_gz(50_000), age_seconds=3600)
    config = s3_config(s3_server, bucket, retention="1d", verify_timeout=1e-6)
    result = await run_once(config)
    assert "not verified: verify_timeout (1e-06s) ran out" in detail(
        result, "backup_integrity"
    )
    assert figure(result, "backup_verify_success") == 0


async def test_a_verdict_is_kept_for_the_same_object(
    s3_server: S3Server, bucket: str
) -> None:
    s3_server.put(bucket, "db/backup_1", mongodump_gz(), age_seconds=3600)
    config = s3_config(s3_server, bucket, retention="1d")
    ctx = ProbeContext(config.name, SharedResources())
    try:
        assert verdicts(await run_once(config, ctx=ctx))["backup_integrity"] is True
        # Replaced by a broken one (a new ETag): read again, found cut short.
        whole = mongodump_gz()
        s3_server.put(bucket, "db/backup_1", whole[:-10], age_seconds=1800)
        result = await run_once(config, ctx=ctx)
        assert "gz: truncated" in detail(result, "backup_integrity")
    finally:
        await ctx.aclose()


# --- when the store cannot be listed -------------------------------------------------------


async def test_a_missing_bucket_is_a_config_failure(s3_server: S3Server) -> None:
    result = await run_once(s3_config(s3_server, "no-such-bucket"))
    assert result.reason is Reason.CONFIG
    assert "cannot list s3://no-such-bucket/db/" in result.error
    assert "bucket 'no-such-bucket' does not exist (NoSuchBucket)" in result.error
    assert figure(result, "backup_files") == 0  # the series stay


@pytest.mark.parametrize(
    ("credentials", "says"),
    [
        (
            {"secret_access_key": "wrong-secret-0815"},
            "the secret access key does not match the access key id",
        ),
        (
            {
                "access_key_id": "AKIAUNKNOWN0000",
                "secret_access_key": "wrong-secret-0815",
            },
            "the access key id is not known to the server",
        ),
    ],
    ids=["wrong-secret", "unknown-key"],
)
async def test_refused_credentials_are_auth(
    s3_server: S3Server, bucket: str, credentials: dict[str, str], says: str
) -> None:
    daily_set(s3_server, bucket, [0.1])
    result = await run_once(s3_config(s3_server, bucket, s3=credentials))
    assert result.reason is Reason.AUTH
    assert says in result.error
    no_secret_in(result, "wrong-secret-0815")
    no_secret_in(result, s3_server.secret_access_key)


async def test_an_unreachable_endpoint_is_connect(
    s3_server: S3Server, bucket: str
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = await run_once(s3_config(s3_server, bucket, endpoint=endpoint))
    assert result.reason is Reason.CONNECT
    assert f"cannot list s3://{bucket}/db/ at {endpoint}" in result.error
    no_secret_in(result, s3_server.secret_access_key)


async def test_a_silent_endpoint_is_a_timeout(
    s3_server: S3Server, bucket: str, tcp_server: StartServer
) -> None:
    port = await tcp_server()  # accepts and never answers
    config = s3_config(
        s3_server, bucket, endpoint=f"http://127.0.0.1:{port}", timeout="1s"
    )
    result = await run_once(config)
    assert result.reason is Reason.TIMEOUT, result.error
    assert figure(result, "backup_files") == 0


async def test_series_keep_the_last_listing_when_listing_fails(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    daily_set(s3_server, bucket, [0.1 + day for day in range(3)])
    secret = tmp_path / "secret"
    secret.write_text(s3_server.secret_access_key + "\n")
    config = s3_config(
        s3_server,
        bucket,
        retention="3d",
        s3={"secret_access_key": None, "secret_access_key_file": str(secret)},
    )
    ctx = ProbeContext(config.name, SharedResources())
    try:
        good = await run_once(config, ctx=ctx)
        assert good.success, good.checks
        secret.write_text("rotated-but-wrong-4711\n")  # read at every run
        bad = await run_once(config, ctx=ctx)
        assert bad.reason is Reason.AUTH
        assert figure(bad, "backup_files") == 3
        assert figure(bad, "backup_newest_timestamp_seconds") == figure(
            good, "backup_newest_timestamp_seconds"
        )
        assert figure(bad, "backup_verify_success") == 0
        no_secret_in(bad, "rotated-but-wrong-4711")
        secret.write_text(s3_server.secret_access_key)
        assert (await run_once(config, ctx=ctx)).success
    finally:
        await ctx.aclose()


async def test_an_unreadable_secret_file_is_config(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    config = s3_config(
        s3_server,
        bucket,
        s3={
            "secret_access_key": None,
            "secret_access_key_file": str(tmp_path / "missing"),
        },
    )
    result = await run_once(config)
    assert result.reason is Reason.CONFIG
    assert "secret_access_key_file" in result.error
    assert figure(result, "backup_files") == 0  # the series stay


# --- TLS -------------------------------------------------------------------------------


@pytest.fixture
async def tls_endpoint(s3_server: S3Server, ca: trustme.CA) -> AsyncIterator[str]:
    """https://127.0.0.1:PORT in front of the moto server (a TLS-terminating
    relay with a certificate from *ca*)."""
    backend = yarl.URL(s3_server.endpoint)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                backend.host, backend.port
            )
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
    yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


async def test_tls_config_trusts_a_private_ca(
    s3_server: S3Server, bucket: str, tls_endpoint: str, ca_file: Path
) -> None:
    daily_set(s3_server, bucket, [0.1])
    trusted = s3_config(
        s3_server,
        bucket,
        endpoint=tls_endpoint,
        retention="1d",
        s3={"tls_config": {"ca_file": str(ca_file)}},
    )
    result = await run_once(trusted)
    assert result.success, (result.error, result.checks)
    untrusted = await run_once(s3_config(s3_server, bucket, endpoint=tls_endpoint))
    assert untrusted.reason is Reason.TLS, untrusted.error


# --- config ---------------------------------------------------------------------------------


S3_BLOCK = (
    "{endpoint: 'http://minio:9000', bucket: backups, prefix: db/,"
    " access_key_id: AK, secret_access_key: SK}"
)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (f"path: /var/backups, s3: {S3_BLOCK}", "set exactly one of path"),
        ("glob: '*'", "set exactly one of path"),
        (
            "s3: {bucket: backups, prefix: db, access_key_id: AK, secret_access_key: SK}",
            "prefix 'db' must end with '/'",
        ),
        (
            "s3: {bucket: 's3://backups', access_key_id: AK, secret_access_key: SK}",
            "bucket 's3://backups' is not a bucket name",
        ),
        ("s3: {bucket: backups, access_key_id: AK}", "s3 needs secret_access_key"),
        (
            "s3: {endpoint: 'http://minio:9000', bucket: backups, access_key_id: AK,"
            " secret_access_key: SK, tls_config: {ca_file: /ca.pem}}",
            "tls_config applies to an https:// endpoint",
        ),
        (
            "s3: {endpoint: 'https://minio:9000', bucket: backups, access_key_id: AK,"
            " secret_access_key: SK, tls_config: {server_name: minio}}",
            "tls_config.server_name: not supported by the backup s3 kind",
        ),
        (
            "s3: {endpoint: 'https://AK:SK@minio:9000', bucket: backups,"
            " access_key_id: AK, secret_access_key: SK}",
            "the URL carries credentials",
        ),
        (
            "s3: {bucket: backups, access_key_id: AK, secret_access_key: SK,"
            " secret_access_key_file: /run/sk}",
            "set either secret_access_key or secret_access_key_file",
        ),
        (f"directories: all, s3: {S3_BLOCK}", "directories applies to a path"),
    ],
)
def test_bad_s3_config_is_explained(fields: str, message: str) -> None:
    problems = config_problems(f"- {{kind: backup, name: b, {fields}}}")
    assert message in problems
    assert "S3Location" not in problems


def test_a_secret_never_shows_in_config_errors() -> None:
    problems = config_problems(
        "- {kind: backup, name: b, s3: {bucket: 'bad/name', access_key_id: AK,"
        " secret_access_key: very-secret-4711}}"
    )
    assert "very-secret-4711" not in problems


async def test_the_aws_environment_is_not_read(
    s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe's config is the whole truth: no profile, no ~/.aws, no AWS_*.
    daily_set(s3_server, bucket, [0.1])
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV")
    result = await run_once(s3_config(s3_server, bucket, retention="1d"))
    assert result.success, (result.error, result.checks)
