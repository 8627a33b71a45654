"""How the process runs: flags win over the READINESS_* environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 10113
DEFAULT_LISTEN_ADDRESS = f"0.0.0.0:{DEFAULT_PORT}"


class Settings(BaseSettings):
    """How the process runs; flags win over READINESS_* environment."""

    model_config = SettingsConfigDict(env_prefix="READINESS_", extra="forbid")

    config_file: Path = Path("config/example.yml")
    web_listen_address: str = DEFAULT_LISTEN_ADDRESS
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"

    def listen_host_port(self) -> tuple[str, int]:
        """Split `HOST:PORT` (`[::1]:PORT` for IPv6)."""
        host, _, port = self.web_listen_address.rpartition(":")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(
                "--web.listen-address must be HOST:PORT, got"
                f" {self.web_listen_address!r}"
            )
        return host.strip("[]") or "0.0.0.0", int(port)
