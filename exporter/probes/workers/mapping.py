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

from exporter.probes.shared.jsonpath import JsonPath, Match, compile_path
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
    match: Match, label_paths: list[JsonPath], index: int, count: int, mapping: str
) -> str:
    for value in _first_match(label_paths, match.value)[:1]:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            label = str(value)[:LABEL_VALUE_MAX]
            if label:
                return label
    # A member of a mapping (`{"queues": {"pdf": {...}}}`) is named by its key.
    if match.key:
        return match.key[:LABEL_VALUE_MAX]
    # Without an identifier: the mapping's name for a single item, else the
    # position (bounded by max_items, never free text).
    return mapping if count == 1 else str(index)


def _read_values(
    raw: Any, mapping: MappingSpec, value_paths: dict[str, list[JsonPath]], item: Item
) -> Item:
    for value_name, spec in mapping.values.items():
        found = _first_match(value_paths[value_name], raw)
        number, problem = to_number(found[0], spec) if found else (None, "")
        if number is not None:
            item.values[value_name] = number
        elif problem:
            item.problems[value_name] = problem
    return item


def _candidates(mapping: MappingSpec, document: Any) -> list[Match]:
    """The items of the first `items` path whose matches carry a mapped
    value; failing that, of the first path that matches at all. So
    `["$.queues[*]", "$[*]", "$"]` reads a list or a map of queues, a reply
    keyed by queue name, and a bare counts document alike."""
    if not mapping.items:
        return [Match("$", document)]
    value_paths = [p for spec in mapping.values.values() for p in _compiled(spec.path)]
    fallback: list[Match] = []
    for path in _compiled(mapping.items):
        found = path.locate(document)
        if not found:
            continue
        if any(p.find(match.value) for match in found for p in value_paths):
            return found
        fallback = fallback or found
    return fallback


def extract_items(name: str, mapping: MappingSpec, document: Any) -> list[Item]:
    """The items of *mapping* in *document*, each with its values."""
    matches = _candidates(mapping, document)
    label_paths = _compiled(mapping.item or [])
    value_paths = {n: _compiled(spec.path) for n, spec in mapping.values.items()}
    items: list[Item] = []
    labels: set[str] = set()
    for index, match in enumerate(matches):
        label = _item_label(match, label_paths, index, len(matches), name)
        if label in labels:
            label = f"{label}#{index}"
        labels.add(label)
        items.append(_read_values(match.value, mapping, value_paths, Item(label)))
    return items


def owner_items(
    config: WorkersConfig, field_name: str, found: dict[str, list[Item]]
) -> list[Item]:
    """The items of the mapping that defines *field_name*."""
    for name, mapping in config.mappings.items():
        if field_name in mapping.values:
            return found.get(name, [])
    return []
