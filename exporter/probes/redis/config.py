"""The redis kind's config: which server, as whom, and what its settings
and queues must look like."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Self, get_args

from pydantic import Field, SecretStr, field_validator, model_validator

from exporter.probes.base import BaseProbeConfig, ByteSize
from exporter.probes.redis.bullmq import BullmqConfig
from exporter.probes.redis.url import parse_url
from exporter.probes.shared.secrets import has_secret
from exporter.probes.shared.tls import TlsClientConfig

EvictionPolicy = Literal[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]
EVICTION_POLICIES: tuple[str, ...] = get_args(EvictionPolicy)


class RedisConfig(BaseProbeConfig):
    """Which server, as whom, and what its settings and queues must look like."""

    SECRETS = ("password",)
    RENAMED: ClassVar[dict[str, str]] = {
        "ca_file": "tls_config.ca_file",
        "insecure_skip_verify": "tls_config.insecure_skip_verify",
        "memory_warning_ratio": "memory_ratio_max_warning",
        "memory_critical_ratio": "memory_ratio_max_critical",
    }

    kind: Literal["redis"] = "redis"
    url: str = Field(min_length=1, repr=False)  # may hold a password
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None
    protocol: Literal[2, 3] = 3
    tls_config: TlsClientConfig = Field(default_factory=TlsClientConfig)
    maxmemory_max: ByteSize | None = None
    eviction_policy: EvictionPolicy | None = "allkeys-lru"
    persistence: Literal["aof", "rdb", "any", "off"] = "aof"
    expect_auth: bool = False
    memory_ratio_max_warning: float = Field(default=0.85, gt=0, le=1)
    memory_ratio_max_critical: float = Field(default=0.90, gt=0, le=1)
    hit_ratio_min: float | None = Field(default=0.80, ge=0, le=1)
    hit_ratio_lookups_min: int = Field(default=100, ge=1)
    fresh_connection: bool = False
    bullmq: BullmqConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _bullmq_needs_noeviction(cls, data: Any) -> Any:
        # allkeys-lru, the default for a cache, would evict BullMQ's jobs;
        # with bullmq set, the default becomes the policy BullMQ requires.
        if (
            isinstance(data, dict)
            and data.get("bullmq") is not None
            and "eviction_policy" not in data
        ):
            return {**data, "eviction_policy": "noeviction"}
        return data

    @field_validator("url")
    @classmethod
    def _url_parses(cls, url: str) -> str:
        parse_url(url)
        return url

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        target = parse_url(self.url)
        if target.password and has_secret(self, "password"):
            raise ValueError(
                "the url holds a password and password/password_file is set too;"
                " keep one (password_file keeps it out of the config)"
            )
        if target.username and self.username:
            raise ValueError("set the user either in the url or in username")
        if not target.tls and self.tls_config.model_fields_set:
            raise ValueError("tls_config applies to TLS only; use a rediss:// url")
        if self.bullmq is not None and self.eviction_policy not in (
            None,
            "noeviction",
        ):
            raise ValueError(
                f"eviction_policy {self.eviction_policy} evicts BullMQ's jobs;"
                " with bullmq, leave eviction_policy out (noeviction is then"
                " checked by bullmq_eviction_policy); a cache that must evict"
                " (allkeys-lru) needs a Redis of its own, with a probe of its own"
            )
        if self.memory_ratio_max_warning > self.memory_ratio_max_critical:
            raise ValueError(
                "memory_ratio_max_warning must be at most memory_ratio_max_critical"
            )
        return self
