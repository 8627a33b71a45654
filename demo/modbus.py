"""The demo's energy meter: a Modbus TCP server (pymodbus's simulator) with
unit 1 holding frequency (~50 Hz) and voltage (~230 V) as float32, and a
cabinet temperature of 85.3 degC as int16 tenths, above its 70 degC limit,
so `values_in_range` fails while everything else passes.

Holding registers of unit 1 (0-based):
  0..1  frequency_hertz      float32 ABCD
  2..3  voltage_volts        float32 ABCD
  4     temperature_celsius  int16, scale 0.1
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from exporter.probes.modbus.gateway import quiet_pymodbus

FLOAT32 = AsyncModbusTcpClient.DATATYPE.FLOAT32
FREQUENCY_ADDRESS = 0
VOLTAGE_ADDRESS = 2
TEMPERATURE_TENTHS = 853  # 85.3 degC: outside the demo's 0..70 range


def _float32(value: float) -> list[int]:
    return AsyncModbusTcpClient.convert_to_registers(value, FLOAT32)


async def _wander(
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> None:
    """Move frequency and voltage a little on every read, like a live grid."""
    del function_code, address, count, set_values
    frequency = _float32(50.0 + random.uniform(-0.05, 0.05))
    voltage = _float32(230.0 + random.uniform(-2.0, 2.0))
    at = FREQUENCY_ADDRESS - start_address
    registers[at : at + 2] = frequency
    at = VOLTAGE_ADDRESS - start_address
    registers[at : at + 2] = voltage


def meter() -> SimDevice:
    """Unit 1 with the register map in the module docstring."""
    words = [*_float32(50.0), *_float32(230.0), TEMPERATURE_TENTHS]
    return SimDevice(
        id=1,
        simdata=[SimData(0, values=words, datatype=DataType.REGISTERS)],
        action=_wander,
    )


async def start(
    stack: contextlib.AsyncExitStack,
    workdir: Path,
    host: str = "127.0.0.1",
    port: int = 15020,
) -> None:
    """Serve the meter on *host*:*port* until *stack* closes."""
    del workdir  # nothing to write: the registers live in memory
    quiet_pymodbus()  # its server would log every connection at INFO
    server = ModbusTcpServer(meter(), address=(host, port))
    await server.serve_forever(background=True)
    stack.push_async_callback(server.shutdown)
