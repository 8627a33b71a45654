"""Probe that reads a register map from a Modbus device and judges it.

The device sits behind a gateway (a Modbus TCP endpoint, an RTU-over-TCP
converter or a serial port); the gateway's connection is shared by every
device behind it (see `modbus_gateway`). A run tells apart "gateway down"
(raises, reason connect), "gateway up, device silent or refusing" (a result
with `device_answers` failed and reason timeout/protocol) and "device up,
some registers unreadable or out of range" (failing checks). Output:

readiness_modbus_gateway_up{probe="meter-1"} 1
readiness_modbus_device_up{probe="meter-1"} 1
readiness_modbus_register_value{probe="meter-1",register="freq",unit="hertz"} 50.01
readiness_modbus_register_read_success{probe="meter-1",register="freq"} 1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from exporter.probes.base import (
    BaseProbeConfig,
    Category,
    Checks,
    CheckSpec,
    Duration,
    MetricSpec,
    Port,
    ProbeResult,
    Reason,
    Sample,
    Severity,
)
from exporter.probes.context import ProbeContext
from exporter.probes.modbus_gateway import (
    DeviceSilent,
    Endpoint,
    Gateway,
    GatewayDown,
    SerialEndpoint,
    TcpEndpoint,
)
from exporter.probes.modbus_registers import (
    Read,
    Register,
    decode,
    load_profile,
    merge_registers,
    plan_reads,
)

METRICS = (
    MetricSpec(
        "modbus_register_value",
        "Scaled value of the register (raw * scale + offset), last run.",
        labels=("register", "unit"),
    ),
    MetricSpec(
        "modbus_register_read_success",
        "Whether the register was read in the last run (1) or not (0).",
        labels=("register",),
    ),
    MetricSpec(
        "modbus_register_exception_code",
        "Modbus exception code the device answered for the register, 0 if none.",
        labels=("register",),
    ),
    MetricSpec(
        "modbus_gateway_up",
        "Whether the connection to the gateway (TCP or serial port) worked.",
    ),
    MetricSpec(
        "modbus_device_up",
        "Whether the unit behind the gateway answered, last run.",
    ),
    MetricSpec(
        "modbus_device_exception_code",
        "Modbus exception code that made the unit count as down (4, 10, 11...),"
        " 0 if none.",
    ),
    MetricSpec(
        "modbus_request_seconds",
        "Duration of the slowest request of the last run, queueing excluded.",
    ),
    MetricSpec(
        "modbus_gateway_wait_seconds",
        "Time the last run waited for its turn on the shared gateway.",
    ),
)

# Codes a device uses to say "not this register"; any other exception code
# (device failure, busy, gateway path unavailable, target did not respond)
# says the device itself cannot serve us.
REGISTER_EXCEPTIONS = frozenset({1, 2, 3})
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal address",
    3: "illegal value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    7: "negative acknowledge",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target did not respond",
}
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
    def _consistent(self) -> ModbusConfig:
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
        if self.request_deadline() >= self.timeout:
            raise ValueError(
                f"request_timeout ({self.request_deadline():g}s) must be below"
                f" timeout ({self.timeout:g}s)"
            )
        names = [r.name for r in self.registers]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"register names must be unique; repeated: {doubled}")
        return self

    def request_deadline(self) -> float:
        """Seconds one request may take: request_timeout, or 1s / half of
        timeout, whichever is shorter."""
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


def plan(config: ModbusConfig) -> list[CheckSpec]:
    """`device_answers` and `registers_readable` always; `values_in_range`
    when some register has a min or max."""
    specs = [
        CheckSpec(
            "device_answers",
            Category.RELIABILITY,
            Severity.CRITICAL,
            "The unit behind the gateway answers requests.",
        ),
        CheckSpec(
            "registers_readable",
            Category.RELIABILITY,
            Severity.CRITICAL,
            "Every configured register can be read.",
        ),
    ]
    if any(r.has_range for r in config.registers):
        specs.append(
            CheckSpec(
                "values_in_range",
                Category.RELIABILITY,
                Severity.WARNING,
                "Every register with a min/max reads inside its range.",
            )
        )
    return specs


class DeviceDown(Exception):
    """The device answered with a device-level exception code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass(slots=True)
class Reading:
    """What one run learnt about the registers and the requests."""

    values: dict[str, float] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    slowest_request: float = 0.0
    waited: float = 0.0


async def _read(
    gateway: Gateway, config: ModbusConfig, read: Read, reading: Reading
) -> None:
    reply = await gateway.read(
        read, config.unit, pause=config.pause, within=config.request_deadline()
    )
    reading.requests += 1
    reading.slowest_request = max(reading.slowest_request, reply.request_seconds)
    reading.waited += reply.wait_seconds
    code = reply.exception_code
    if code == 0:
        for register in read.registers:
            reading.values[register.name] = decode(register, read, reply.values)
    elif code not in REGISTER_EXCEPTIONS:
        raise DeviceDown(code)
    elif len(read.registers) > 1:
        # One refused register must not make its neighbours unreadable.
        for single in read.singles():
            await _read(gateway, config, single, reading)
    else:
        reading.refused[read.registers[0].name] = code


async def probe(config: ModbusConfig, ctx: ProbeContext) -> ProbeResult:
    """Read every register of the map, batched, through the shared gateway."""
    endpoint = config.endpoint()
    gateway = ctx.shared(("modbus", endpoint), lambda: Gateway(endpoint))
    checks = Checks(plan(config))
    reading = Reading()
    try:
        for read in plan_reads(config.registers, config.max_gap):
            await _read(gateway, config, read, reading)
    except GatewayDown as down:
        # Export the gateway's state with the failure, not just a reason.
        raise GatewayDown(
            str(down),
            samples=(
                Sample.of("modbus_gateway_up", 0),
                Sample.of("modbus_device_up", 0),
            ),
        ) from down
    except DeviceSilent as silent:
        return _device_down(config, checks, reading, 0, Reason.TIMEOUT, str(silent))
    except DeviceDown as down:
        detail = (
            f"unit {config.unit} answered exception {down.code}"
            f" ({EXCEPTION_NAMES.get(down.code, 'unknown')})"
        )
        return _device_down(config, checks, reading, down.code, Reason.PROTOCOL, detail)
    checks.record(
        "device_answers",
        True,
        f"unit {config.unit} answered {reading.requests} request(s)",
    )
    _judge_registers(config, checks, reading)
    return ProbeResult(
        checks=checks.finish(),
        samples=(
            *_device_samples(reading, device_up=True, code=0),
            *_register_samples(config, reading),
        ),
    )


def _device_down(
    config: ModbusConfig,
    checks: Checks,
    reading: Reading,
    code: int,
    reason: Reason,
    detail: str,
) -> ProbeResult:
    """A live gateway with a unit that does not serve us: a result, so
    `gateway_up 1, device_up 0` is exported, with the probe's own reason."""
    checks.record("device_answers", False, detail)
    unread = Reading(requests=reading.requests, waited=reading.waited)
    return ProbeResult(
        checks=checks.finish("not evaluated: the device did not answer"),
        samples=(
            *_device_samples(reading, device_up=False, code=code),
            *_register_samples(config, unread),
        ),
        reason=reason,
        error=detail,
    )


def _judge_registers(config: ModbusConfig, checks: Checks, reading: Reading) -> None:
    refused = [
        f"{name} (exception {code}: {EXCEPTION_NAMES[code]})"
        for name, code in reading.refused.items()
    ]
    checks.record(
        "registers_readable",
        not refused,
        "unreadable: " + ", ".join(refused)
        if refused
        else f"all {len(config.registers)} registers read",
    )
    if not checks.planned("values_in_range"):
        return
    ranged = [r for r in config.registers if r.has_range and r.name in reading.values]
    outside = [
        f"{r.name}={reading.values[r.name]:g} outside {r.range_text()}"
        for r in ranged
        if not r.in_range(reading.values[r.name])
    ]
    if not ranged:
        checks.record("values_in_range", False, "no register with a range was read")
    else:
        checks.record(
            "values_in_range",
            not outside,
            "; ".join(outside) if outside else f"{len(ranged)} value(s) in range",
        )


def _device_samples(
    reading: Reading, *, device_up: bool, code: int
) -> tuple[Sample, ...]:
    samples = [
        Sample.of("modbus_gateway_up", 1),
        Sample.of("modbus_device_up", device_up),
        Sample.of("modbus_device_exception_code", code),
        Sample.of("modbus_gateway_wait_seconds", reading.waited),
    ]
    if reading.requests:
        samples.append(Sample.of("modbus_request_seconds", reading.slowest_request))
    return tuple(samples)


def _register_samples(config: ModbusConfig, reading: Reading) -> list[Sample]:
    samples: list[Sample] = []
    for register in config.registers:
        value = reading.values.get(register.name)
        samples.append(
            Sample.of(
                "modbus_register_read_success",
                value is not None,
                register=register.name,
            )
        )
        samples.append(
            Sample.of(
                "modbus_register_exception_code",
                reading.refused.get(register.name, 0),
                register=register.name,
            )
        )
        if value is not None:
            samples.append(
                Sample.of(
                    "modbus_register_value",
                    value,
                    register=register.name,
                    unit=register.unit,
                )
            )
    return samples
