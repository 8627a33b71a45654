"""How the workers kind turns a JSON document into items with numbers.

`extract_items` picks the items of a mapping (workers, queues) with JSON
paths and reads each configured value: numbers as they are (times `scale`),
booleans as 1/0, strings through `map`. What cannot be read is kept as a
problem for the verdicts to name:

    Item(label="w3", values={"state": 0.0}, problems={"memory_bytes": "..."})
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.probes.shared.jsonpath import JsonPath, compile_path
from exporter.probes.workers.config import MappingSpec, ValueSpec, WorkersConfig

LABEL_VALUE_MAX = 100


@dataclass(slots=True)
class Item:
    """One worker or queue: its label, numbers, and why some are missing."""

    label: str
    values: dict[str, float] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def _first_match(paths: Sequence[JsonPath], document: Any) -> list[Any]:
    for path in paths:
        found = path.find(document)
        if found:
            return found
    return []


def _compiled(paths: Iterable[str]) -> list[JsonPath]:
    return [compile_path(text) for text in paths]


def to_number(raw: Any, spec: ValueSpec) -> tuple[float | None, str]:
    """*raw* as a number, or None and why not ("" when simply absent)."""
    if raw is None:
        return None, ""
    if isinstance(raw, bool):
        return (1.0 if raw else 0.0), ""
    if isinstance(raw, int | float):
        number = float(raw) * spec.scale
        return (number, "") if math.isfinite(number) else (None, "not finite")
    if isinstance(raw, str):
        return _string_to_number(raw, spec)
    return None, f"is a JSON {type(raw).__name__}, not a value"


def _string_to_number(raw: str, spec: ValueSpec) -> tuple[float | None, str]:
    if spec.map is not None:
        if raw in spec.map:
            return spec.map[raw], ""
        folded = {key.casefold(): value for key, value in spec.map.items()}
        if raw.casefold() in folded:
            return folded[raw.casefold()], ""
    try:
        number = float(raw) * spec.scale
    except ValueError:
        if spec.map_default is not None:
            return spec.map_default, ""
        return None, f"{raw[:30]!r} is not in map"
    return (number, "") if math.isfinite(number) else (None, "not finite")


def _item_label(
    raw: Any, label_paths: list[JsonPath], index: int, count: int, mapping: str
) -> str:
    for value in _first_match(label_paths, raw)[:1]:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            label = str(value)[:LABEL_VALUE_MAX]
            if label:
                return label
    # Without an identifier: the mapping's name for a single item, else the
    # position (bounded by max_items, never free text).
    return mapping if count == 1 else str(index)


def extract_items(name: str, mapping: MappingSpec, document: Any) -> list[Item]:
    """The items of *mapping* in *document*, each with its values."""
    raws = (
        _first_match(_compiled(mapping.items), document)
        if mapping.items
        else [document]
    )
    label_paths = _compiled(mapping.item or [])
    value_paths = {n: _compiled(spec.path) for n, spec in mapping.values.items()}
    items: list[Item] = []
    labels: set[str] = set()
    for index, raw in enumerate(raws):
        label = _item_label(raw, label_paths, index, len(raws), name)
        if label in labels:
            label = f"{label}#{index}"
        labels.add(label)
        item = Item(label)
        for value_name, spec in mapping.values.items():
            found = _first_match(value_paths[value_name], raw)
            number, problem = to_number(found[0], spec) if found else (None, "")
            if number is not None:
                item.values[value_name] = number
            elif problem:
                item.problems[value_name] = problem
        items.append(item)
    return items


def owner_items(
    config: WorkersConfig, field_name: str, found: dict[str, list[Item]]
) -> list[Item]:
    """The items of the mapping that defines *field_name*."""
    for name, mapping in config.mappings.items():
        if field_name in mapping.values:
            return found.get(name, [])
    return []
