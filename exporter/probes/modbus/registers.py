"""The register map of a Modbus device: what to read, in how few requests, and
how to turn the 16-bit words that come back into numbers.

A map is a list of `Register` entries (type, 0-based address, data type, byte
order, scale, offset, unit, optional range). `plan_reads` packs them into as
few `Read` requests as the protocol allows; `decode` turns a reply into the
scaled value that ends up as, for example:

readiness_modbus_register_value{probe="meter-1",register="freq",unit="hertz"} 50.01
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator
from pymodbus.client import AsyncModbusTcpClient

from exporter.probes.base import Model

RegisterType = Literal["holding", "input", "coil", "discrete_input"]
DataType = Literal[
    "bool",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
    "bit",
]
ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]

BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete_input"})

# Protocol limits on one read: 125 registers (FC3/FC4), 2000 bits (FC1/FC2).
MAX_READ_COUNT: dict[str, int] = {
    "holding": 125,
    "input": 125,
    "coil": 2000,
    "discrete_input": 2000,
}

# How many 16-bit registers each register data type spans.
WORDS: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "bit": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
}

_DT = AsyncModbusTcpClient.DATATYPE
_PYMODBUS_TYPES = {
    "int16": _DT.INT16,
    "uint16": _DT.UINT16,
    "int32": _DT.INT32,
    "uint32": _DT.UINT32,
    "int64": _DT.INT64,
    "uint64": _DT.UINT64,
    "float32": _DT.FLOAT32,
    "float64": _DT.FLOAT64,
}


class Register(Model):
    """One value to read: where it lives, how it is encoded, what it means."""

    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=100)
    type: RegisterType = "holding"
    address: int = Field(ge=0, le=65535)
    data_type: DataType = "uint16"
    byte_order: ByteOrder = "ABCD"
    bit: int | None = Field(default=None, ge=0, le=15)
    scale: float = 1.0
    offset: float = 0.0
    unit: str = Field(default="", max_length=50)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _bool_for_bit_tables(cls, data: Any) -> Any:
        # Coils and discrete inputs hold single bits; make `bool` their default.
        if (
            isinstance(data, dict)
            and data.get("type") in BIT_TABLES
            and "data_type" not in data
        ):
            return {**data, "data_type": "bool"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Register:
        where = f"register {self.name!r}"
        if self.type in BIT_TABLES and self.data_type != "bool":
            raise ValueError(
                f"{where}: a {self.type} holds one bit; use data_type: bool"
            )
        if self.type not in BIT_TABLES and self.data_type == "bool":
            raise ValueError(
                f"{where}: data_type bool is for coils and discrete inputs;"
                " for one bit of a register write data_type: bit with bit: 0..15"
            )
        if (self.data_type == "bit") != (self.bit is not None):
            raise ValueError(
                f"{where}: `bit: 0..15` goes with data_type: bit, and only with it"
            )
        if self.data_type in ("bool", "bit") and (self.scale, self.offset) != (1, 0):
            raise ValueError(f"{where}: scale and offset apply to numbers, not bits")
        if self.scale == 0:
            raise ValueError(f"{where}: scale 0 would hide every reading; use 1")
        if self.address + self.width - 1 > 65535:
            raise ValueError(
                f"{where}: a {self.data_type} at {self.address} runs past address 65535"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{where}: min ({self.min:g}) is above max ({self.max:g})")
        return self

    @property
    def width(self) -> int:
        """Registers (or bits, for coils and discrete inputs) it spans."""
        return 1 if self.type in BIT_TABLES else WORDS[self.data_type]

    @property
    def has_range(self) -> bool:
        """Whether a min or max was configured."""
        return self.min is not None or self.max is not None

    def in_range(self, value: float) -> bool:
        """Whether *value* lies within [min, max] (NaN never does)."""
        if math.isnan(value):
            return not self.has_range
        low_ok = self.min is None or value >= self.min
        return low_ok and (self.max is None or value <= self.max)

    def range_text(self) -> str:
        """`49.5..50.5`, `>= 0` or `<= 253`, for check details."""
        if self.min is not None and self.max is not None:
            return f"{self.min:g}..{self.max:g}"
        return f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"


@dataclass(frozen=True, slots=True)
class Read:
    """One request: *count* registers or bits of one table from *address*."""

    type: RegisterType
    address: int
    count: int
    registers: tuple[Register, ...]

    def singles(self) -> list[Read]:
        """One read per register, to find which one a device refuses."""
        return [Read(r.type, r.address, r.width, (r,)) for r in self.registers]


def plan_reads(registers: Iterable[Register], max_gap: int = 0) -> list[Read]:
    """Pack *registers* into as few reads as the protocol limits allow.

    Registers of one table whose addresses are contiguous (or at most
    *max_gap* unused addresses apart) share a read, up to 125 registers or
    2000 bits per read. Reads come out ordered by table, then address.
    """
    by_table: dict[str, list[Register]] = {}
    for register in registers:
        by_table.setdefault(register.type, []).append(register)
    reads: list[Read] = []
    for table in MAX_READ_COUNT:
        members = sorted(by_table.get(table, []), key=lambda r: r.address)
        reads.extend(_pack(members, MAX_READ_COUNT[table], max_gap))
    return reads


def _pack(members: Sequence[Register], limit: int, max_gap: int) -> list[Read]:
    reads: list[Read] = []
    group: list[Register] = []
    start = end = 0
    for register in members:
        new_end = max(end, register.address + register.width)
        fits = register.address - end <= max_gap and new_end - start <= limit
        if group and fits:
            group.append(register)
            end = new_end
            continue
        if group:
            reads.append(Read(group[0].type, start, end - start, tuple(group)))
        group, start = [register], register.address
        end = register.address + register.width
    if group:
        reads.append(Read(group[0].type, start, end - start, tuple(group)))
    return reads


def _swap_bytes(words: Sequence[int]) -> list[int]:
    return [((word & 0xFF) << 8) | (word >> 8) for word in words]


def decode(register: Register, read: Read, values: Sequence[int | bool]) -> float:
    """The scaled value of *register* from the reply *values* of *read*."""
    index = register.address - read.address
    if register.type in BIT_TABLES:
        return 1.0 if values[index] else 0.0
    words = [int(v) for v in values[index : index + register.width]]
    if register.data_type == "bit":
        return float((words[0] >> (register.bit or 0)) & 1)
    # Bytes within a register are big-endian on the wire; BADC/DCBA devices
    # swap them, CDAB/DCBA devices put the low word first.
    if register.byte_order in ("BADC", "DCBA"):
        words = _swap_bytes(words)
    word_order: Literal["big", "little"] = (
        "little" if register.byte_order in ("CDAB", "DCBA") else "big"
    )
    raw = AsyncModbusTcpClient.convert_from_registers(
        words, _PYMODBUS_TYPES[register.data_type], word_order=word_order
    )
    assert isinstance(raw, int | float)  # noqa: S101 - one value of one width
    return float(raw) * register.scale + register.offset


# --- shared maps (profiles) ------------------------------------------------------


def load_profile(path: Path, name: str) -> list[Any]:
    """The register list called *name* in the YAML mapping at *path*."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(
            f"profiles_file {str(path)!r} cannot be read: {error.strerror or error}"
        ) from None
    except yaml.YAMLError as error:
        raise ValueError(
            f"profiles_file {str(path)!r} is not valid YAML: {error}"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(
            f"profiles_file {str(path)!r} must map profile names to register"
            " lists (em24: [{name: ..., address: ...}, ...])"
        )
    profile = data.get(name)
    if not isinstance(profile, list):
        known = ", ".join(sorted(str(k) for k in data)) or "none"
        raise ValueError(
            f"profile {name!r} is not a register list in {str(path)!r}"
            f" (profiles there: {known})"
        )
    return profile


def merge_registers(profile: list[Any], own: list[Any]) -> list[Any]:
    """The profile's registers, then the probe's own; an own register with
    the name of a profile register replaces it (a device-specific range)."""
    own_names = {r.get("name") for r in own if isinstance(r, dict)}
    kept = [
        r for r in profile if not (isinstance(r, dict) and r.get("name") in own_names)
    ]
    return kept + own
