"""The backup kind's config: where the backups are (a directory, or a
bucket prefix in S3-compatible storage), the schedule that fills it and how
long it keeps them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from exporter.probes.base import BaseProbeConfig, ByteSize, Duration, Model
from exporter.probes.shared.httpclient import http_url
from exporter.probes.shared.secrets import has_secret
from exporter.probes.shared.tls import TlsClientConfig

DAY = 86400.0
# Bucket names as S3-compatible servers accept them (AWS itself is stricter).
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,254}")


class S3Location(Model):
    """A bucket prefix read as a directory: object key below the prefix =
    name, LastModified = mtime, Size = size."""

    SECRETS = ("secret_access_key",)

    endpoint: str | None = None
    bucket: str
    prefix: str = ""
    region: str = Field(default="us-east-1", min_length=1)
    access_key_id: str = Field(min_length=1)
    secret_access_key: SecretStr | None = None
    secret_access_key_file: Path | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    tls_config: TlsClientConfig | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, endpoint: str | None) -> str | None:
        if endpoint is None:
            return None
        return http_url(
            endpoint, credentials_field="access_key_id and secret_access_key"
        ).rstrip("/")

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, bucket: str) -> str:
        if not _BUCKET.fullmatch(bucket):
            raise ValueError(
                f"bucket {bucket!r} is not a bucket name (3 to 255 letters, digits,"
                " '.', '-' or '_'; no s3:// and no path: put folders in prefix)"
            )
        return bucket

    @field_validator("prefix")
    @classmethod
    def _folder_prefix(cls, prefix: str) -> str:
        if prefix and not prefix.endswith("/"):
            raise ValueError(
                f"prefix {prefix!r} must end with '/' (it names a folder, as"
                f" {prefix + '/'!r}); match object names with glob"
            )
        if prefix.startswith("/"):
            raise ValueError(f"prefix {prefix!r} must not start with '/'")
        return prefix

    @model_validator(mode="after")
    def _usable(self) -> Self:
        if not has_secret(self, "secret_access_key"):
            raise ValueError("s3 needs secret_access_key or secret_access_key_file")
        if self.tls_config is not None:
            if not (self.endpoint or "https:").startswith("https:"):
                raise ValueError(
                    "tls_config applies to an https:// endpoint; the endpoint is"
                    f" {self.endpoint}"
                )
            # botocore takes a CA file, a client certificate and "do not
            # verify"; it cannot send another name or hold a minimum version.
            self.tls_config.refuse("backup s3", "server_name", "min_version")
        return self

    @property
    def url(self) -> str:
        """How details name the location: s3://bucket/prefix."""
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def path_style(self) -> bool:
        """Path-style requests (`endpoint/bucket/key`), as MinIO and most
        S3-compatible servers want, unless told otherwise; AWS itself
        (no endpoint) gets virtual-hosted requests."""
        if self.addressing_style == "auto":
            return self.endpoint is not None
        return self.addressing_style == "path"


class BackupConfig(BaseProbeConfig):
    """Where the backups are, the schedule that fills it and how long it keeps."""

    RENAMED: ClassVar[dict[str, str]] = {
        "max_age": "age_max",
        "size_drop_ratio": "size_ratio_min",
    }

    kind: Literal["backup"] = "backup"
    # Files change once a day at most; verification reads whole archives.
    interval: Duration = 300.0
    timeout: Duration = 120.0
    path: Path | None = None
    s3: S3Location | None = None
    glob: str = Field(default="*", min_length=1)
    directories: Literal["pg_dump", "all", "ignore"] = "pg_dump"
    age_max: Duration = 26 * 3600.0
    backup_interval: Duration = DAY
    retention: Duration | None = None
    retention_count: int | None = Field(default=None, ge=1)
    size_ratio_min: float = Field(default=0.5, ge=0, le=1)
    verify: bool | None = None
    verify_max_bytes: ByteSize = Field(default=4 << 30, ge=1)
    verify_timeout: Duration | None = None
    expect_encrypted: bool = False
    settle_time: Duration = 60.0

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.path is None) == (self.s3 is None):
            raise ValueError(
                "set exactly one of path (a directory) and s3 (a bucket prefix)"
            )
        if self.s3 is not None and "directories" in self.model_fields_set:
            raise ValueError(
                "directories applies to a path; a bucket prefix lists objects only"
            )
        if "/" in self.glob or os.sep in self.glob:
            raise ValueError(
                f"glob {self.glob!r} must match names inside `path` (or below"
                " the s3 prefix); put the directories in `path` (or `prefix`)"
            )
        if self.backup_interval <= 0 or self.age_max <= 0:
            raise ValueError("backup_interval and age_max must be above zero")
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
        if self.settle_time >= self.age_max:
            raise ValueError("settle_time must be below age_max")
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
    def location(self) -> str:
        """The directory or s3://bucket/prefix, as details name it."""
        return self.s3.url if self.s3 is not None else str(self.path)
