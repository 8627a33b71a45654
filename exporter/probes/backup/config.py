"""The backup kind's config: a directory of backups, the schedule that fills
it and how long it keeps them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from exporter.probes.base import BaseProbeConfig, ByteSize, Duration

DAY = 86400.0


class BackupConfig(BaseProbeConfig):
    """A directory of backups, the schedule that fills it and how long it keeps."""

    RENAMED: ClassVar[dict[str, str]] = {
        "max_age": "age_max",
        "size_drop_ratio": "size_ratio_min",
    }

    kind: Literal["backup"] = "backup"
    # Files change once a day at most; verification reads whole archives.
    interval: Duration = 300.0
    timeout: Duration = 120.0
    path: Path
    glob: str = Field(default="*", min_length=1)
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
        if "/" in self.glob or os.sep in self.glob:
            raise ValueError(
                f"glob {self.glob!r} must match file names inside `path`;"
                " put the directories in `path`"
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
