"""Probe that reads a register map from a Modbus device and judges it.

The device sits behind a gateway (a Modbus TCP endpoint, an RTU-over-TCP
converter or a serial port); the gateway's connection is shared by every
device behind it (see `gateway.py`). A run tells apart "gateway down"
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

from exporter.probes.base import (
    Category,
    CheckDef,
    Checks,
    MetricSpec,
    ProbeResult,
    Reason,
    Sample,
    Severity,
)
from exporter.probes.context import ProbeContext
from exporter.probes.modbus.config import ModbusConfig
from exporter.probes.modbus.gateway import DeviceSilent, Gateway, GatewayDown
from exporter.probes.modbus.registers import Read, decode, plan_reads

__all__ = ["CHECKS", "METRICS", "ModbusConfig", "probe"]

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
CHECKS = (
    CheckDef(
        "device_answers",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "The unit behind the gateway answers (the detail names the exception or the "
        "timeout).",
    ),
    CheckDef(
        "registers_readable",
        Category.RELIABILITY,
        Severity.CRITICAL,
        "Every register reads (the detail names the refused ones and their exception).",
    ),
    CheckDef(
        "values_in_range",
        Category.RELIABILITY,
        Severity.WARNING,
        "Every register with a `min` or `max` reads inside it (when some register has "
        "a range).",
        threshold="registers[].min, registers[].max",
        when=lambda config: any(r.has_range for r in config.registers),
    ),
)


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
    gateway: Gateway,
    config: ModbusConfig,
    read: Read,
    reading: Reading,
    ctx: ProbeContext,
) -> None:
    reply = await gateway.read(
        read,
        config.unit,
        pause=config.pause,
        limit=config.request_seconds(),
        deadline=ctx.deadline,
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
            await _read(gateway, config, single, reading, ctx)
    else:
        reading.refused[read.registers[0].name] = code


async def probe(config: ModbusConfig, ctx: ProbeContext) -> ProbeResult:
    """Read every register of the map, batched, through the shared gateway."""
    endpoint = config.endpoint()
    gateway = ctx.shared(("modbus", endpoint), lambda: Gateway(endpoint))
    checks = Checks(CHECKS, config)
    reading = Reading()
    try:
        for read in plan_reads(config.registers, config.max_gap):
            await _read(gateway, config, read, reading, ctx)
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
        reading.waited += silent.waited
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
