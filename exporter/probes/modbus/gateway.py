"""One Modbus connection per gateway, shared by every device behind it.

A gateway is what we open a connection to: a Modbus TCP device, a TCP-to-RTU
converter, or a serial port. Serial buses and most converters cannot take
two requests at once (they answer exception 11, or garble frames), so every
request to one gateway goes through one lock, with a pause between requests.
The connection is opened on first use and reopened by the next request after
it broke; pymodbus's own reconnect loop is off. Its outcome shows as:

readiness_modbus_gateway_up{probe="meter-1"} 1
readiness_modbus_gateway_wait_seconds{probe="meter-1"} 0.05
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from exporter.probes.base import ProbeError, ProtocolError, Reason
from exporter.probes.context import Deadline
from exporter.probes.modbus.registers import BIT_TABLES, Read

Client = AsyncModbusTcpClient | AsyncModbusSerialClient


@dataclass(frozen=True, slots=True)
class TcpEndpoint:
    """Modbus TCP (`socket` framing) or RTU frames over TCP (`rtu`)."""

    host: str
    port: int
    framer: Literal["socket", "rtu"]

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SerialEndpoint:
    """An RTU bus on a serial port (or a pyserial URL such as socket://)."""

    device: str
    baudrate: int
    parity: Literal["N", "E", "O"]
    stopbits: int
    bytesize: int

    def __str__(self) -> str:
        # Messages reach people through the runner, which redacts them.
        return self.device


Endpoint = TcpEndpoint | SerialEndpoint


class GatewayDown(ProbeError):
    """No connection to the gateway could be opened or kept."""

    reason = Reason.CONNECT


class DeviceSilent(ProbeError):
    """The gateway is up but no valid answer came within the request timeout.

    *waited* is how long the request waited for its turn on the gateway.
    """

    reason = Reason.TIMEOUT
    waited = 0.0


@dataclass(frozen=True, slots=True)
class Reply:
    """What one request got: values, or the device's exception code."""

    values: tuple[int | bool, ...]
    exception_code: int
    request_seconds: float
    wait_seconds: float


def quiet_pymodbus() -> None:
    """Keep pymodbus's own log quiet unless someone configured it.

    pymodbus logs every timeout as an ERROR with a dump of the last frames;
    the runner already logs each failed run once, with its reason.
    """
    library_logger = logging.getLogger("pymodbus")
    if library_logger.level == logging.NOTSET:
        library_logger.setLevel(logging.CRITICAL)


# Longer than any run may take: pymodbus's own timer must never be the one
# that fires (see Gateway._connected_client).
_CLIENT_TIMEOUT = 3600.0


def _new_client(
    endpoint: Endpoint, timeout: float, on_connect: Callable[[bool], None]
) -> Client:
    # retries=0: a silent device costs one timeout, not four.
    # reconnect_delay=0: we reconnect ourselves on the next request.
    if isinstance(endpoint, TcpEndpoint):
        framer = FramerType.RTU if endpoint.framer == "rtu" else FramerType.SOCKET
        return AsyncModbusTcpClient(
            endpoint.host,
            port=endpoint.port,
            framer=framer,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
            trace_connect=on_connect,
        )
    return AsyncModbusSerialClient(
        endpoint.device,
        framer=FramerType.RTU,
        baudrate=endpoint.baudrate,
        parity=endpoint.parity,
        stopbits=endpoint.stopbits,
        bytesize=endpoint.bytesize,
        timeout=timeout,
        retries=0,
        reconnect_delay=0,
        trace_connect=on_connect,
    )


class Gateway:
    """The shared connection to one endpoint; one request at a time."""

    def __init__(self, endpoint: Endpoint) -> None:
        quiet_pymodbus()
        self.endpoint = endpoint
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self._idle_since = 0.0
        self._pending: asyncio.Timeout | None = None
        self._generation = 0  # which client's connect/disconnect news counts

    async def read(
        self,
        read: Read,
        device_id: int,
        *,
        pause: float,
        limit: float,
        deadline: Deadline,
    ) -> Reply:
        """Send *read* to *device_id* when it is our turn and *pause* passed.

        Connecting and the request may each take *limit* seconds, and never
        more than what the run's *deadline* has left once our turn came (the
        wait for it counts against the run). Raises `GatewayDown` when no
        connection can be had, `DeviceSilent` when no valid answer comes in
        time, and TimeoutError when the run's budget is spent before; a
        Modbus exception answer is a `Reply` with its code.
        """
        queued = time.monotonic()
        async with self._lock:
            await asyncio.sleep(max(0.0, self._idle_since + pause - time.monotonic()))
            waited = time.monotonic() - queued
            try:
                within = self._time_left(limit, deadline, waited)
                client = await self._connected_client(within)
                within = self._time_left(limit, deadline, waited)
                started = time.perf_counter()
                response = await self._send(client, read, device_id, within)
                elapsed = time.perf_counter() - started
            except DeviceSilent as silent:
                silent.waited = waited
                raise
            finally:
                self._idle_since = time.monotonic()
        return _reply(response, read, elapsed, waited)

    def _time_left(self, limit: float, deadline: Deadline, waited: float) -> float:
        try:
            return min(limit, deadline.remaining())
        except TimeoutError:
            raise TimeoutError(
                f"no time left of the run's {deadline.budget:g}s budget"
                f" (waited {waited:.2f}s for gateway {self.endpoint})"
            ) from None

    async def _connected_client(self, within: float) -> Client:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop()
        # Our timers, around the connect and each request, bound the time:
        # the client is shared by probes with other limits, and pymodbus
        # keeps the timeout it was built with for every later request.
        client = _new_client(
            self.endpoint,
            _CLIENT_TIMEOUT,
            functools.partial(self._connection_changed, self._generation),
        )
        try:
            async with asyncio.timeout(within):
                connected = await client.connect()
        except TimeoutError:
            connected = False
        except BaseException:
            # The run was cancelled (its deadline, a reload, shutdown) while
            # connecting: this client is nobody's yet, so close it here.
            client.close()
            raise
        if not connected:
            client.close()
            raise GatewayDown(f"cannot connect to gateway {self.endpoint}")
        self._client = client
        return client

    async def _send(
        self, client: Client, read: Read, device_id: int, within: float
    ) -> ModbusPDU:
        try:
            async with asyncio.timeout(within) as self._pending:
                return await _request(client, read, device_id)
        except (TimeoutError, ModbusIOException):
            lost = not client.connected
            # A late answer must never be taken for the next request's answer:
            # start the next request on a fresh connection.
            self._drop()
            if lost:
                raise GatewayDown(
                    f"lost the connection to gateway {self.endpoint}"
                ) from None
            raise DeviceSilent(
                f"no answer from unit {device_id} via {self.endpoint}"
                f" within {within:.3g}s"
            ) from None
        except ConnectionException:
            self._drop()
            raise GatewayDown(
                f"lost the connection to gateway {self.endpoint}"
            ) from None
        except ModbusException as error:
            self._drop()
            raise ProtocolError(f"bad answer via {self.endpoint}: {error}") from None
        except asyncio.CancelledError:
            self._drop()  # the run's deadline hit mid-request; same as above
            raise
        finally:
            self._pending = None

    def _connection_changed(self, generation: int, connected: bool) -> None:
        # pymodbus leaves a request waiting for its timeout when the
        # connection drops under it; end the wait now instead. News from a
        # client we already dropped must not cut a newer request short.
        if generation != self._generation:
            return
        if not connected and self._pending is not None:
            self._pending.reschedule(asyncio.get_running_loop().time())

    def _drop(self) -> None:
        self._generation += 1  # whatever the old client reports now is stale
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the connection (at shutdown)."""
        self._drop()


async def _request(client: Client, read: Read, device_id: int) -> ModbusPDU:
    if read.type == "holding":
        method = client.read_holding_registers
    elif read.type == "input":
        method = client.read_input_registers
    elif read.type == "coil":
        method = client.read_coils
    else:
        method = client.read_discrete_inputs
    return await method(read.address, count=read.count, device_id=device_id)


def _reply(response: ModbusPDU, read: Read, elapsed: float, waited: float) -> Reply:
    if response.isError():
        code = int(getattr(response, "exception_code", 0) or 0)
        return Reply((), code, elapsed, waited)
    values: Sequence[int | bool] = (
        response.bits if read.type in BIT_TABLES else response.registers
    )
    if len(values) < read.count:
        raise ProtocolError(
            f"asked for {read.count} {read.type} values at {read.address},"
            f" got {len(values)}"
        )
    return Reply(tuple(values[: read.count]), 0, elapsed, waited)
