"""The modbus probe against pymodbus's own server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from exporter.kinds import PROBES
from exporter.probes.base import Category, ProbeResult, Reason, Severity
from exporter.probes.context import SharedResources
from exporter.probes.modbus import ModbusConfig
from exporter.probes.modbus.registers import Register, plan_reads
from tests.conftest import StartServer, config_from, free_port
from tests.helpers import (
    config_problems,
    detail,
    eventually,
    probe_config,
    run_once,
    sample,
    verdicts,
)

DT = AsyncModbusTcpClient.DATATYPE
HOST = "127.0.0.1"


# --- a pymodbus server that counts what it sees ------------------------------------


class Server:
    """pymodbus's server on 127.0.0.1, counting requests and connections."""

    def __init__(self, devices: SimDevice | list[SimDevice], **options: Any) -> None:
        self.devices = devices
        self.options = options
        self.requests: list[ModbusPDU] = []
        self.connections = 0
        self.port = 0
        self._server: ModbusTcpServer | None = None

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append(pdu)
        return pdu

    def _trace_connect(self, connected: bool) -> None:
        self.connections += connected

    async def start(self, port: int = 0) -> int:
        self._server = ModbusTcpServer(
            self.devices,
            address=(HOST, port),
            trace_pdu=self._trace_pdu,
            trace_connect=self._trace_connect,
            **self.options,
        )
        await self._server.serve_forever(background=True)
        # pymodbus's listener "transport" is the asyncio.Server it started.
        listener = cast(asyncio.Server, self._server.transport)
        self.port = listener.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None


StartModbus = Callable[..., Awaitable[Server]]


@pytest.fixture
async def modbus() -> AsyncIterator[StartModbus]:
    """Factory: start a Modbus server with the given devices; stops them all."""
    servers: list[Server] = []

    async def start(devices: SimDevice | list[SimDevice], **options: Any) -> Server:
        server = Server(devices, **options)
        servers.append(server)
        await server.start()
        return server

    yield start
    for server in servers:
        await server.stop()


def holding(address: int, words: Sequence[int], **device: Any) -> SimDevice:
    """A device (unit 1 unless told) with *words* at holding *address*."""
    device.setdefault("id", 1)
    block = SimData(address, values=list(words), datatype=DataType.REGISTERS)
    return SimDevice(simdata=[block], **device)


# --- running the probe -------------------------------------------------------------


def modbus_config(port: int, registers: list[dict[str, Any]], **fields: Any) -> Any:
    """A modbus probe named `meter` of unit 1 at 127.0.0.1:*port*."""
    fields = {"name": "meter", "host": HOST, **fields}
    return probe_config("modbus", port=port, registers=registers, **fields)


@pytest.fixture
async def shared() -> AsyncIterator[SharedResources]:
    """The test's shared gateways, closed at its end."""
    resources = SharedResources()
    yield resources
    await resources.aclose()


def value_of(result: ProbeResult, register: str, unit: str = "") -> float | None:
    """The scaled value the run exported for *register*."""
    return sample(result, "modbus_register_value", register=register, unit=unit)


def reg(name: str, address: int, **fields: Any) -> dict[str, Any]:
    return {"name": name, "address": address, **fields}


# --- decoding ------------------------------------------------------------------------

CASES: list[tuple[str, Any]] = [
    ("int16", -1234),
    ("uint16", 54321),
    ("int32", -123456789),
    ("uint32", 3_000_000_000),
    ("int64", -9_000_000_000_000),
    ("uint64", 2**53),
    ("float32", -2.5),
    ("float64", 2.718281828459045),
]


def encode(value: Any, data_type: str, byte_order: str) -> list[int]:
    """Registers as a device with *byte_order* would hold *value*."""
    word_order: Literal["big", "little"] = (
        "little" if byte_order in ("CDAB", "DCBA") else "big"
    )
    words = AsyncModbusTcpClient.convert_to_registers(
        value, DT[data_type.upper()], word_order=word_order
    )
    if byte_order in ("BADC", "DCBA"):
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return words


async def test_every_data_type_and_byte_order_decodes(
    modbus: StartModbus, shared: SharedResources
) -> None:
    words: list[int] = []
    registers, expected = [], {}
    for byte_order in ("ABCD", "CDAB", "BADC", "DCBA"):
        for data_type, value in CASES:
            name = f"{data_type}_{byte_order}"
            registers.append(
                reg(name, len(words), data_type=data_type, byte_order=byte_order)
            )
            expected[name] = float(value)
            words += encode(value, data_type, byte_order)
    # One register with scale and offset, one with flag bits.
    registers.append(reg("volts", len(words), scale=0.1, offset=-0.1))
    registers.append(reg("flag1", len(words) + 1, data_type="bit", bit=1))
    registers.append(reg("flag2", len(words) + 1, data_type="bit", bit=2))
    expected |= {"volts": 230.0, "flag1": 1.0, "flag2": 0.0}
    words += [2301, 0b1010]
    server = await modbus(holding(0, words))

    result = await run_once(modbus_config(server.port, registers), shared)

    assert result.success, result.error
    for name, value in expected.items():
        decoded = value_of(result, name)
        assert decoded is not None and math.isclose(decoded, value), name
    assert len(server.requests) == 1  # 42 contiguous registers, one read


async def test_coils_discrete_inputs_and_input_registers(
    modbus: StartModbus, shared: SharedResources
) -> None:
    bits = [True, False, True] + [False] * 13
    device = SimDevice(
        id=1,
        simdata=(
            [SimData(0, values=bits, datatype=DataType.BITS)],
            [SimData(0, values=bits[::-1], datatype=DataType.BITS)],
            [SimData(0, values=[7], datatype=DataType.REGISTERS)],
            [
                SimData(
                    0,
                    values=encode(49.75, "float32", "ABCD"),
                    datatype=DataType.REGISTERS,
                )
            ],
        ),
    )
    server = await modbus(device)
    registers = [
        reg("coil0", 0, type="coil"),
        reg("coil1", 1, type="coil"),
        reg("coil2", 2, type="coil"),
        reg("alarm", 15, type="discrete_input"),
        reg("hertz", 0, type="input", data_type="float32", unit="hertz"),
    ]

    result = await run_once(modbus_config(server.port, registers), shared)

    assert result.success, result.error
    assert [value_of(result, f"coil{i}") for i in range(3)] == [1, 0, 1]
    assert value_of(result, "alarm") == 1
    # The unit is a label of the value; the helper needs the exact labels.
    assert value_of(result, "hertz", unit="hertz") == 49.75
    assert value_of(result, "hertz") is None
    assert len(server.requests) == 3  # one per table


# --- batching ------------------------------------------------------------------------


async def test_contiguous_registers_share_one_request(
    modbus: StartModbus, shared: SharedResources
) -> None:
    server = await modbus(holding(0, list(range(30))))
    contiguous = [reg(f"r{i}", i) for i in range(10)]
    apart = [reg("far", 20)]

    result = await run_once(modbus_config(server.port, contiguous + apart), shared)
    assert result.success, result.error
    assert len(server.requests) == 2  # 0..9, then 20

    server.requests.clear()
    bridged = modbus_config(server.port, contiguous + apart, max_gap=10)
    result = await run_once(bridged, shared)
    assert result.success, result.error
    assert [r.count for r in server.requests] == [21]  # the gap 10..19 bridged
    assert value_of(result, "far") == 20


def test_reads_respect_protocol_limits() -> None:
    words = [Register(name=f"w{i}", address=i) for i in range(130)]
    bits = [Register(name=f"b{i}", address=i, type="coil") for i in range(2001)]
    wide = [Register(name="f", address=124, data_type="float32")]

    assert [r.count for r in plan_reads(words)] == [125, 5]
    assert [r.count for r in plan_reads(bits)] == [2000, 1]
    # A float32 that would straddle the 125 limit starts the next read.
    assert [(r.address, r.count) for r in plan_reads(words[:124] + wide)] == [
        (0, 124),
        (124, 2),
    ]


# --- failures ------------------------------------------------------------------------


async def test_illegal_address_fails_only_that_register(
    modbus: StartModbus, shared: SharedResources
) -> None:
    server = await modbus(holding(0, [1, 2, 3]))
    registers = [reg("a", 0), reg("b", 1), reg("missing", 3), reg("c", 2)]

    result = await run_once(modbus_config(server.port, registers, max_gap=5), shared)

    assert result.reason is Reason.CHECK
    assert verdicts(result) == {"device_answers": True, "registers_readable": False}
    assert detail(result, "registers_readable") == (
        "unreadable: missing (exception 2: illegal address)"
    )
    code = sample(result, "modbus_register_exception_code", register="missing")
    assert code == 2
    assert sample(result, "modbus_register_read_success", register="missing") == 0
    assert value_of(result, "c") == 3  # neighbours still read
    assert sample(result, "modbus_device_up") == 1


async def test_unknown_unit_behind_live_gateway_is_device_down(
    modbus: StartModbus, shared: SharedResources
) -> None:
    server = await modbus(holding(0, [1]))

    result = await run_once(modbus_config(server.port, [reg("a", 0)], unit=7), shared)

    # pymodbus 3.16.1's server answers DEVICE_FAILURE (4) for unknown ids.
    assert result.reason is Reason.PROTOCOL
    assert verdicts(result) == {"device_answers": False, "registers_readable": False}
    assert "exception 4" in detail(result, "device_answers")
    assert sample(result, "modbus_gateway_up") == 1
    assert sample(result, "modbus_device_up") == 0
    assert sample(result, "modbus_device_exception_code") == 4
    assert sample(result, "modbus_register_read_success", register="a") == 0


async def test_silent_device_times_out_within_the_deadline(
    tcp_server: StartServer, shared: SharedResources
) -> None:
    port = await tcp_server()  # accepts, never answers
    config = modbus_config(port, [reg("a", 0)], request_timeout="300ms")

    result = await run_once(config, shared)

    assert result.reason is Reason.TIMEOUT
    assert not verdicts(result)["device_answers"]
    assert detail(result, "device_answers") == (
        f"no answer from unit 1 via 127.0.0.1:{port} within 0.3s"
    )
    # The request's own timeout, not the run's: the gateway's state is known.
    assert sample(result, "modbus_gateway_up") == 1
    assert sample(result, "modbus_device_up") == 0


async def test_gateway_down_is_a_connect_failure(shared: SharedResources) -> None:
    result = await run_once(modbus_config(free_port(), [reg("a", 0)]), shared)

    assert result.reason is Reason.CONNECT
    assert "cannot connect to gateway" in result.error
    assert all(not c.passed for c in result.checks)
    assert sample(result, "modbus_gateway_up") == 0
    assert sample(result, "modbus_device_up") == 0


async def test_short_reply_is_a_protocol_failure(
    tcp_server: StartServer, shared: SharedResources
) -> None:
    async def one_register_only(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            request = await reader.readexactly(12)  # MBAP (7) + FC3 request (5)
            transaction, unit = request[0:2], request[6:7]
            reply = b"\x00\x00\x00\x05" + unit + b"\x03\x02\x00\x2a"
            writer.write(transaction + reply)
            await writer.drain()
            await reader.read()
        finally:
            writer.close()

    port = await tcp_server(one_register_only)
    config = modbus_config(port, [reg("f", 0, data_type="float32")])
    result = await run_once(config, shared)

    assert result.reason is Reason.PROTOCOL
    assert "got 1" in result.error


async def test_probe_recovers_after_the_server_restarts(
    modbus: StartModbus, shared: SharedResources
) -> None:
    server = await modbus(holding(0, [42]))
    config = modbus_config(server.port, [reg("a", 0)])
    assert (await run_once(config, shared)).success
    await server.stop()
    down = await run_once(config, shared)
    assert down.reason is Reason.CONNECT
    await server.start(server.port)
    again = await run_once(config, shared)
    assert again.success, again.error
    assert value_of(again, "a") == 42


def slow_device(*delays: float) -> Callable[..., Awaitable[None]]:
    """A simulator action that delays each answer by the next of *delays*
    (a device that is slow to answer), then answers at once."""
    pending = list(delays)

    async def slow(*_: Any) -> None:
        await asyncio.sleep(pending.pop(0) if pending else 0)

    return slow


@pytest.mark.parametrize("framer", ["socket", "rtu"])
async def test_late_answer_is_never_taken_for_the_next_request(
    modbus: StartModbus, shared: SharedResources, framer: str
) -> None:
    words = [111, 0, 0, 0, 0, 555]
    # The late answer to `a` comes while `b` waits.
    server = await modbus(
        holding(0, words, action=slow_device(0.4, 0.5)),
        framer=FramerType.RTU if framer == "rtu" else FramerType.SOCKET,
    )
    first = modbus_config(
        server.port, [reg("a", 0)], request_timeout="100ms", framer=framer
    )
    # Same unit, same function, same count: in RTU frames nothing but
    # timing tells the late answer for `a` from the answer for `b`.
    second = modbus_config(server.port, [reg("b", 5)], framer=framer, name="b")
    assert (await run_once(first, shared)).reason is Reason.TIMEOUT
    result = await run_once(second, shared)
    assert result.success, result.error
    assert value_of(result, "b") == 555


# --- the run's deadline bounds every request ---------------------------------------


async def test_deadline_mid_request_leaves_no_stale_answer(
    modbus: StartModbus, shared: SharedResources
) -> None:
    # a answers after 0.3 s; b would after 0.5 s, past the run's budget
    # (0.45 s of a 0.5 s timeout); c waits while the late answer to b comes.
    words = [111, 0, 0, 333, 0, 555]
    device = holding(0, words, action=slow_device(0.3, 0.5, 0.4))
    server = await modbus(device, framer=FramerType.RTU)
    two_reads = modbus_config(
        server.port,
        [reg("a", 0), reg("b", 5)],
        framer="rtu",
        timeout="500ms",
        request_timeout="450ms",
    )
    other = modbus_config(server.port, [reg("c", 3)], framer="rtu", name="c")

    cut = await run_once(two_reads, shared)

    # b's request got what was left of the budget, not its request_timeout,
    # so the probe, not the runner, ended it, and says so.
    assert cut.reason is Reason.TIMEOUT
    assert cut.error.startswith(f"no answer from unit 1 via 127.0.0.1:{server.port}")
    assert sample(cut, "modbus_gateway_up") == 1
    assert sample(cut, "modbus_device_up") == 0
    result = await run_once(other, shared)
    assert result.success, result.error
    assert value_of(result, "c") == 333


async def test_a_request_queued_behind_another_gets_what_is_left(
    modbus: StartModbus, shared: SharedResources
) -> None:
    # Two devices on one gateway. Unit 1 takes 0.6 s to answer; unit 2's
    # probe (timeout 1 s, budget 0.9 s) waits for it, then finds its own
    # device silent. Its request may take only the 0.3 s left of its
    # budget, not its request_timeout of 0.8 s, which would overrun the run.
    slow = holding(0, [1], id=1, action=slow_device(0.6))
    silent = holding(0, [2], id=2, action=slow_device(5.0))
    server = await modbus([slow, silent])
    first = modbus_config(server.port, [reg("a", 0)], unit=1, name="u1")
    queued = modbus_config(
        server.port,
        [reg("b", 0)],
        unit=2,
        name="u2",
        timeout="1s",
        request_timeout="800ms",
    )
    head = asyncio.create_task(run_once(first, shared))
    await eventually(lambda: len(server.requests) == 1)  # u1 holds the gateway

    behind = await run_once(queued, shared)

    assert (await head).success
    assert behind.reason is Reason.TIMEOUT
    assert behind.error.startswith("no answer from unit 2"), behind.error
    assert sample(behind, "modbus_gateway_up") == 1
    assert sample(behind, "modbus_device_up") == 0
    wait = sample(behind, "modbus_gateway_wait_seconds")
    assert wait is not None and wait > 0


async def test_a_short_limit_of_one_probe_does_not_cut_another_probes_request(
    modbus: StartModbus, shared: SharedResources
) -> None:
    """The shared client once kept the timeout of the run that connected
    it: a probe with a 100 ms request_timeout made every later request on
    the gateway give up after 100 ms, whatever that probe's own limit."""
    quick = holding(0, [1], id=1)
    slow = holding(0, [2], id=2, action=slow_device(0.3))
    server = await modbus([quick, slow])
    impatient = modbus_config(
        server.port, [reg("a", 0)], unit=1, name="u1", request_timeout="100ms"
    )
    patient = modbus_config(
        server.port,
        [reg("b", 0)],
        unit=2,
        name="u2",
        timeout="3s",
        request_timeout="1s",
    )
    assert (await run_once(impatient, shared)).success  # it opens the connection

    result = await run_once(patient, shared)

    assert result.success, result.error
    assert value_of(result, "b") == 2


# --- one gateway, many devices -------------------------------------------------------


async def test_devices_on_one_gateway_are_served_one_at_a_time(
    modbus: StartModbus, shared: SharedResources
) -> None:
    in_flight = 0
    most_in_flight = 0
    served: list[tuple[float, float]] = []

    async def record(unit: int, *_: Any) -> None:
        nonlocal in_flight, most_in_flight
        loop = asyncio.get_running_loop()
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        started = loop.time()
        await asyncio.sleep(0.02)  # the device's time to answer
        in_flight -= 1
        served.append((started, loop.time()))

    devices = [
        holding(0, list(range(10)), id=unit, action=functools.partial(record, unit))
        for unit in (1, 2)
    ]
    server = await modbus(devices)
    registers = [reg("a", 0), reg("b", 4), reg("c", 8)]  # three reads per run
    pause = 0.05
    configs = [
        modbus_config(server.port, registers, unit=u, name=f"u{u}", pause=pause)
        for u in (1, 2)
    ]
    results = await asyncio.gather(*(run_once(c, shared) for c in configs))

    assert all(r.success for r in results), [r.error for r in results]
    assert len(served) == 6
    assert most_in_flight == 1
    assert server.connections == 1
    gaps = [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(served)]
    assert min(gaps) >= pause - 0.005


# --- transports ----------------------------------------------------------------------


async def test_rtu_over_tcp(modbus: StartModbus, shared: SharedResources) -> None:
    server = await modbus(
        holding(0, encode(50.0, "float32", "CDAB")), framer=FramerType.RTU
    )
    registers = [reg("hz", 0, data_type="float32", byte_order="CDAB")]

    result = await run_once(modbus_config(server.port, registers, framer="rtu"), shared)

    assert result.success, result.error
    assert value_of(result, "hz") == 50.0


async def test_rtu_on_a_serial_port(
    modbus: StartModbus, shared: SharedResources
) -> None:
    server = await modbus(holding(0, [2301]), framer=FramerType.RTU)
    config = probe_config(
        "modbus",
        name="bus",
        serial=f"socket://{HOST}:{server.port}",
        baudrate=19200,
        registers=[reg("v", 0, scale=0.1)],
    )

    result = await run_once(config, shared)

    assert result.success, result.error
    volts = value_of(result, "v")
    assert volts is not None and math.isclose(volts, 230.1)


# --- ranges --------------------------------------------------------------------------


async def test_value_out_of_range_fails_values_in_range(
    modbus: StartModbus, shared: SharedResources
) -> None:
    server = await modbus(holding(0, [2650, 500]))
    registers = [
        reg("volts", 0, scale=0.1, min=207, max=253),
        reg("hz", 1, scale=0.1, min=49.5, max=50.5),
    ]

    result = await run_once(modbus_config(server.port, registers), shared)

    assert not verdicts(result)["values_in_range"]
    assert detail(result, "values_in_range") == "volts=265 outside 207..253"
    assert result.success  # a warning by default
    critical = modbus_config(
        server.port, registers, checks={"values_in_range": {"severity": "critical"}}
    )
    assert (await run_once(critical, shared)).reason is Reason.CHECK


# --- config --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"serial": "/dev/ttyUSB0"}, "set either host"),
        (
            {"registers": [reg("c", 0, type="coil", data_type="float32")]},
            "use data_type: bool",
        ),
        ({"registers": [reg("x", 0, bit=3)]}, "`bit: 0..15` goes with data_type: bit"),
        ({"registers": [reg("x", 0), reg("x", 1)]}, "repeated: ['x']"),
        ({"request_timeout": "2s"}, "request_timeout (2s) must be below timeout"),
        ({"profile": "em24"}, "profile needs profiles_file"),
        ({"baudrate": 9600}, "baudrate, parity, stopbits and bytesize are for serial"),
        ({"registers": [reg("x", 0, min=5, max=1)]}, "min (5) is above max (1)"),
    ],
)
def test_bad_config_says_what_to_write(fields: dict[str, Any], message: str) -> None:
    registers = fields.pop("registers", [reg("a", 0)])
    with pytest.raises(ValueError) as caught:
        modbus_config(502, registers, **fields)
    assert message in str(caught.value)


def test_profiles_file_shares_a_map_and_a_device_may_override(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.yml"
    profiles.write_text(
        "em24:\n"
        "  - {name: volts, address: 0, scale: 0.1, min: 207, max: 253}\n"
        "  - {name: hz, address: 1, scale: 0.1}\n"
    )
    config = config_from(
        f"""
        probes:
          - {{kind: modbus, name: m1, host: a, profile: em24, profiles_file: {profiles}}}
          - kind: modbus
            name: m2
            host: b
            profile: em24
            profiles_file: {profiles}
            registers:
              - {{name: volts, address: 0, scale: 0.1, min: 100, max: 130}}
        """
    )
    first, second = config.probes
    assert isinstance(first, ModbusConfig) and isinstance(second, ModbusConfig)
    assert [r.name for r in first.registers] == ["volts", "hz"]
    assert [(r.name, r.max) for r in second.registers] == [("hz", None), ("volts", 130)]


def test_unknown_profile_is_a_config_error(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.yml"
    profiles.write_text("em24: []\n")
    problems = config_problems(
        f"- {{kind: modbus, name: m1, host: a, profile: em340,"
        f" profiles_file: {profiles}}}"
    )
    assert "profile 'em340' is not a register list" in problems
    assert "profiles there: em24" in problems


def test_yaml_anchor_shares_a_register_map() -> None:
    config = config_from(
        """
        probes:
          - kind: modbus
            name: m1
            host: gw
            unit: 1
            registers: &em24
              - {name: volts, address: 0, scale: 0.1}
              - {name: hz, address: 1, scale: 0.1}
          - {kind: modbus, name: m2, host: gw, unit: 2, registers: *em24}
        """
    )
    first, second = config.probes
    assert isinstance(first, ModbusConfig) and isinstance(second, ModbusConfig)
    assert first.registers == second.registers
    assert first.endpoint() == second.endpoint()  # one shared connection


# What `plan()` gave before checks became data (0.1.x): the table must give
# the same checks, categories and severities for the same configs.
_RELIABILITY = Category.RELIABILITY
FORMER_PLAN = [
    ("device_answers", _RELIABILITY, Severity.CRITICAL),
    ("registers_readable", _RELIABILITY, Severity.CRITICAL),
]
FORMER_PLANS: dict[str, tuple[list[dict[str, Any]], list[Any]]] = {
    "no range": ([reg("a", 0), reg("b", 1)], FORMER_PLAN),
    "a min": (
        [reg("a", 0, min=1), reg("b", 1)],
        [*FORMER_PLAN, ("values_in_range", _RELIABILITY, Severity.WARNING)],
    ),
    "a max": (
        [reg("a", 0), reg("b", 1, max=5)],
        [*FORMER_PLAN, ("values_in_range", _RELIABILITY, Severity.WARNING)],
    ),
}


@pytest.mark.parametrize("case", sorted(FORMER_PLANS))
def test_the_checks_table_plans_what_plan_did(case: str) -> None:
    registers, former = FORMER_PLANS[case]
    config = modbus_config(502, registers)
    planned = [
        (spec.name, spec.category, spec.severity)
        for spec in PROBES["modbus"].plan(config)
    ]
    assert planned == former
