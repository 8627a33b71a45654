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

from exporter.config import ConfigError
from exporter.kinds import config_adapter
from exporter.probes.base import ProbeResult, Reason
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.modbus import ModbusConfig
from exporter.probes.modbus_registers import Register, plan_reads
from exporter.runner import run_probe
from tests.conftest import StartServer, config_from, free_port

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
    raw = {
        "kind": "modbus",
        "name": fields.pop("name", "meter"),
        "host": HOST,
        "port": port,
        "timeout": "2s",
        "interval": "10s",
        "registers": registers,
        **fields,
    }
    return config_adapter().validate_python(raw)


async def run(config: Any, shared: SharedResources | None = None) -> ProbeResult:
    own = shared is None
    shared = shared or SharedResources()
    try:
        return await run_probe(config, ProbeContext(config.name, shared))
    finally:
        if own:
            await shared.aclose()


def samples(result: ProbeResult) -> dict[str, float]:
    """`name` or `name{register}` -> value."""
    found = {}
    for sample in result.samples:
        labels = dict(sample.labels)
        key = sample.name + (f"{{{labels['register']}}}" if labels else "")
        found[key] = sample.value
    return found


def check(result: ProbeResult, name: str) -> tuple[bool, str]:
    found = {c.name: (c.passed, c.detail) for c in result.checks}
    return found[name]


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


async def test_every_data_type_and_byte_order_decodes(modbus: StartModbus) -> None:
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

    result = await run(modbus_config(server.port, registers))

    assert result.success, result.error
    values = samples(result)
    for name, value in expected.items():
        assert math.isclose(values[f"modbus_register_value{{{name}}}"], value), name
    assert len(server.requests) == 1  # 42 contiguous registers, one read


async def test_coils_discrete_inputs_and_input_registers(modbus: StartModbus) -> None:
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

    result = await run(modbus_config(server.port, registers))

    values = samples(result)
    assert result.success, result.error
    assert [values[f"modbus_register_value{{coil{i}}}"] for i in range(3)] == [1, 0, 1]
    assert values["modbus_register_value{alarm}"] == 1
    assert values["modbus_register_value{hertz}"] == 49.75
    units = {
        dict(s.labels).get("register"): dict(s.labels).get("unit")
        for s in result.samples
        if s.name == "modbus_register_value"
    }
    assert units["hertz"] == "hertz"
    assert len(server.requests) == 3  # one per table


# --- batching ------------------------------------------------------------------------


async def test_contiguous_registers_share_one_request(modbus: StartModbus) -> None:
    server = await modbus(holding(0, list(range(30))))
    contiguous = [reg(f"r{i}", i) for i in range(10)]
    apart = [reg("far", 20)]

    result = await run(modbus_config(server.port, contiguous + apart))
    assert result.success, result.error
    assert len(server.requests) == 2  # 0..9, then 20

    server.requests.clear()
    result = await run(modbus_config(server.port, contiguous + apart, max_gap=10))
    assert result.success, result.error
    assert [r.count for r in server.requests] == [21]  # the gap 10..19 bridged
    assert samples(result)["modbus_register_value{far}"] == 20


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


async def test_illegal_address_fails_only_that_register(modbus: StartModbus) -> None:
    server = await modbus(holding(0, [1, 2, 3]))
    registers = [reg("a", 0), reg("b", 1), reg("missing", 3), reg("c", 2)]

    result = await run(modbus_config(server.port, registers, max_gap=5))

    assert result.reason is Reason.CHECK
    passed, detail = check(result, "registers_readable")
    assert not passed
    assert detail == "unreadable: missing (exception 2: illegal address)"
    assert check(result, "device_answers")[0]
    values = samples(result)
    assert values["modbus_register_exception_code{missing}"] == 2
    assert values["modbus_register_read_success{missing}"] == 0
    assert values["modbus_register_value{c}"] == 3  # neighbours still read
    assert values["modbus_device_up"] == 1


async def test_unknown_unit_behind_live_gateway_is_device_down(
    modbus: StartModbus,
) -> None:
    server = await modbus(holding(0, [1]))

    result = await run(modbus_config(server.port, [reg("a", 0)], unit=7))

    # pymodbus 3.16.1's server answers DEVICE_FAILURE (4) for unknown ids.
    assert result.reason is Reason.PROTOCOL
    passed, detail = check(result, "device_answers")
    assert not passed
    assert "exception 4" in detail
    assert not check(result, "registers_readable")[0]
    values = samples(result)
    assert values["modbus_gateway_up"] == 1
    assert values["modbus_device_up"] == 0
    assert values["modbus_device_exception_code"] == 4
    assert values["modbus_register_read_success{a}"] == 0


async def test_silent_device_times_out_within_the_deadline(
    tcp_server: StartServer,
) -> None:
    port = await tcp_server()  # accepts, never answers
    config = modbus_config(port, [reg("a", 0)], request_timeout="300ms")

    result = await run(config)

    assert result.reason is Reason.TIMEOUT
    assert not check(result, "device_answers")[0]
    assert samples(result)["modbus_gateway_up"] == 1
    assert samples(result)["modbus_device_up"] == 0
    assert result.duration_seconds < config.timeout


async def test_gateway_down_is_a_connect_failure() -> None:
    result = await run(modbus_config(free_port(), [reg("a", 0)]))

    assert result.reason is Reason.CONNECT
    assert "cannot connect to gateway" in result.error
    assert all(not c.passed for c in result.checks)
    assert samples(result)["modbus_gateway_up"] == 0
    assert samples(result)["modbus_device_up"] == 0


async def test_short_reply_is_a_protocol_failure(tcp_server: StartServer) -> None:
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
    result = await run(modbus_config(port, [reg("f", 0, data_type="float32")]))

    assert result.reason is Reason.PROTOCOL
    assert "got 1" in result.error


async def test_probe_recovers_after_the_server_restarts(modbus: StartModbus) -> None:
    server = await modbus(holding(0, [42]))
    config = modbus_config(server.port, [reg("a", 0)])
    shared = SharedResources()
    try:
        assert (await run(config, shared)).success
        await server.stop()
        down = await run(config, shared)
        assert down.reason is Reason.CONNECT
        await server.start(server.port)
        again = await run(config, shared)
        assert again.success, again.error
        assert samples(again)["modbus_register_value{a}"] == 42
    finally:
        await shared.aclose()


@pytest.mark.parametrize("framer", ["socket", "rtu"])
async def test_late_answer_is_never_taken_for_the_next_request(
    modbus: StartModbus, framer: str
) -> None:
    delays = [0.4, 0.5]  # the late answer to `a` comes while `b` waits

    async def slow(*_: Any) -> None:
        await asyncio.sleep(delays.pop(0) if delays else 0)

    words = [111, 0, 0, 0, 0, 555]
    server = await modbus(
        holding(0, words, action=slow),
        framer=FramerType.RTU if framer == "rtu" else FramerType.SOCKET,
    )
    shared = SharedResources()
    first = modbus_config(
        server.port, [reg("a", 0)], request_timeout="100ms", framer=framer
    )
    # Same unit, same function, same count: in RTU frames nothing but
    # timing tells the late answer for `a` from the answer for `b`.
    second = modbus_config(server.port, [reg("b", 5)], framer=framer, name="b")
    try:
        assert (await run(first, shared)).reason is Reason.TIMEOUT
        result = await run(second, shared)
        assert result.success, result.error
        assert samples(result)["modbus_register_value{b}"] == 555
    finally:
        await shared.aclose()


async def test_deadline_mid_request_leaves_no_stale_answer(
    modbus: StartModbus,
) -> None:
    delays = [0.3, 0.5, 0.4]  # a; b (cut by the deadline); c, which waits
    # while the late answer to b comes in

    async def slow(*_: Any) -> None:
        await asyncio.sleep(delays.pop(0) if delays else 0)

    words = [111, 0, 0, 333, 0, 555]
    server = await modbus(holding(0, words, action=slow), framer=FramerType.RTU)
    shared = SharedResources()
    two_reads = modbus_config(
        server.port,
        [reg("a", 0), reg("b", 5)],
        framer="rtu",
        timeout="500ms",
        request_timeout="450ms",
    )
    other = modbus_config(server.port, [reg("c", 3)], framer="rtu", name="c")
    try:
        cut = await run(two_reads, shared)
        assert cut.reason is Reason.TIMEOUT
        assert cut.error == "no answer within 0.5s"
        result = await run(other, shared)
        assert result.success, result.error
        assert samples(result)["modbus_register_value{c}"] == 333
    finally:
        await shared.aclose()


# --- one gateway, many devices -------------------------------------------------------


async def test_devices_on_one_gateway_are_served_one_at_a_time(
    modbus: StartModbus,
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
        await asyncio.sleep(0.02)
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
    shared = SharedResources()
    try:
        results = await asyncio.gather(*(run(c, shared) for c in configs))
    finally:
        await shared.aclose()

    assert all(r.success for r in results), [r.error for r in results]
    assert len(served) == 6
    assert most_in_flight == 1
    assert server.connections == 1
    gaps = [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(served)]
    assert min(gaps) >= pause - 0.005


# --- transports ----------------------------------------------------------------------


async def test_rtu_over_tcp(modbus: StartModbus) -> None:
    server = await modbus(
        holding(0, encode(50.0, "float32", "CDAB")), framer=FramerType.RTU
    )
    registers = [reg("hz", 0, data_type="float32", byte_order="CDAB")]

    result = await run(modbus_config(server.port, registers, framer="rtu"))

    assert result.success, result.error
    assert samples(result)["modbus_register_value{hz}"] == 50.0


async def test_rtu_on_a_serial_port(modbus: StartModbus) -> None:
    server = await modbus(holding(0, [2301]), framer=FramerType.RTU)
    raw = {
        "kind": "modbus",
        "name": "bus",
        "serial": f"socket://{HOST}:{server.port}",
        "baudrate": 19200,
        "timeout": "2s",
        "registers": [reg("v", 0, scale=0.1)],
    }
    config = config_adapter().validate_python(raw)

    result = await run(config)

    assert result.success, result.error
    assert math.isclose(samples(result)["modbus_register_value{v}"], 230.1)


# --- ranges --------------------------------------------------------------------------


async def test_value_out_of_range_fails_values_in_range(modbus: StartModbus) -> None:
    server = await modbus(holding(0, [2650, 500]))
    registers = [
        reg("volts", 0, scale=0.1, min=207, max=253),
        reg("hz", 1, scale=0.1, min=49.5, max=50.5),
    ]

    result = await run(modbus_config(server.port, registers))

    passed, detail = check(result, "values_in_range")
    assert not passed
    assert detail == "volts=265 outside 207..253"
    assert result.success  # a warning by default
    critical = modbus_config(
        server.port, registers, checks={"values_in_range": {"severity": "critical"}}
    )
    assert (await run(critical)).reason is Reason.CHECK


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
    with pytest.raises(ConfigError) as caught:
        config_from(
            f"""
            probes:
              - {{kind: modbus, name: m1, host: a, profile: em340, profiles_file: {profiles}}}
            """
        )
    assert "profile 'em340' is not a register list" in str(caught.value)
    assert "profiles there: em24" in str(caught.value)


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
