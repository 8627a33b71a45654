"""The modbus kind's config: where the device is, how to reach it, and which
registers to read."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from exporter.probes.base import BaseProbeConfig, Duration, Port
from exporter.probes.modbus.gateway import Endpoint, SerialEndpoint, TcpEndpoint
from exporter.probes.modbus.registers import Register, load_profile, merge_registers

_SERIAL_FIELDS = frozenset({"baudrate", "parity", "stopbits", "bytesize"})


class ModbusConfig(BaseProbeConfig):
    """Where the device is, how to reach it, and which registers to read."""

    kind: Literal["modbus"] = "modbus"
    host: str | None = Field(default=None, min_length=1)
    port: Port = 502
    framer: Literal["socket", "rtu"] | None = None
    serial: str | None = Field(default=None, min_length=1)
    baudrate: int = Field(default=9600, ge=300, le=4_000_000)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit: int = Field(default=1, ge=0, le=255)
    pause: Duration = 0.0
    request_timeout: Duration | None = None
    max_gap: int = Field(default=0, ge=0, le=100)
    profile: str | None = Field(default=None, min_length=1)
    profiles_file: Path | None = None
    registers: tuple[Register, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _profile_registers(cls, data: Any) -> Any:
        # The profile is read while the config loads, so a missing file or
        # profile is a config error at startup, not a failure every run.
        if not isinstance(data, dict) or data.get("profile") is None:
            return data
        if data.get("profiles_file") is None:
            raise ValueError(
                "profile needs profiles_file: the YAML file that defines it"
                " (or share registers with a YAML anchor instead)"
            )
        profile = load_profile(Path(data["profiles_file"]), str(data["profile"]))
        own = data.get("registers") or []
        if not isinstance(own, list):
            return data  # let field validation describe the mistake
        return {**data, "registers": merge_registers(profile, own)}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.host is None) == (self.serial is None):
            raise ValueError(
                "set either host (Modbus TCP or RTU over TCP) or serial"
                " (a serial port such as /dev/ttyUSB0), not both or neither"
            )
        if self.serial is not None:
            if self.framer == "socket":
                raise ValueError("a serial port speaks RTU: drop framer or set rtu")
            if "port" in self.model_fields_set:
                raise ValueError(
                    "port goes with host; a serial port takes baudrate etc."
                )
        elif _SERIAL_FIELDS & self.model_fields_set:
            raise ValueError(
                "baudrate, parity, stopbits and bytesize are for serial; with"
                " host they do nothing"
            )
        if self.profiles_file is not None and self.profile is None:
            raise ValueError("profiles_file is set but profile (the name) is not")
        if self.request_seconds() >= self.timeout:
            raise ValueError(
                f"request_timeout ({self.request_seconds():g}s) must be below"
                f" timeout ({self.timeout:g}s)"
            )
        names = [r.name for r in self.registers]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"register names must be unique; repeated: {doubled}")
        return self

    def request_seconds(self) -> float:
        """Seconds one request may take: request_timeout, or 1s / half of
        timeout, whichever is shorter (the run's deadline bounds it too)."""
        if self.request_timeout is not None:
            return self.request_timeout
        return min(1.0, self.timeout / 2)

    def endpoint(self) -> Endpoint:
        """The gateway this device is reached through (the sharing key)."""
        if self.serial is not None:
            return SerialEndpoint(
                self.serial, self.baudrate, self.parity, self.stopbits, self.bytesize
            )
        assert self.host is not None  # noqa: S101 - checked by _consistent
        return TcpEndpoint(self.host, self.port, self.framer or "socket")
