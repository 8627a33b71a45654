"""Prometheus and OpenMetrics text, written by hand for speed.

`generate_latest` rebuilds every sample on every scrape; with 10,000 probes
that takes over a second. We render each probe's lines once per result and
only concatenate on a scrape, so the text must be produced here. Sample
lines are the same in both formats; only the `# TYPE` headers and the final
`# EOF` differ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

FamilyType = Literal["gauge", "counter", "info", "histogram"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: full name (with `_total` / `_info` where due)."""

    name: str
    help: str
    type: FamilyType = "gauge"

    def header(self, openmetrics: bool) -> str:
        """The `# HELP` and `# TYPE` lines in the requested format."""
        help_text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        if not openmetrics:
            kind = "gauge" if self.type == "info" else self.type
            return f"# HELP {self.name} {help_text}\n# TYPE {self.name} {kind}\n"
        # OpenMetrics names the family without the sample suffix, and
        # escapes double quotes in HELP as well.
        help_text = help_text.replace('"', r"\"")
        base = self.name
        if self.type == "counter":
            base = base.removesuffix("_total")
        elif self.type == "info":
            base = base.removesuffix("_info")
        return f"# HELP {base} {help_text}\n# TYPE {base} {self.type}\n"


def escape_label_value(value: str) -> str:
    """Escape a label value for the text formats."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def format_value(value: float) -> str:
    """A sample value as both formats want it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_labels(labels: Iterable[tuple[str, str]]) -> str:
    """`{a="1",b="2"}`, or nothing for no labels."""
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
    return "{" + inner + "}" if inner else ""


def sample_line(name: str, labels: Sequence[tuple[str, str]], value: float) -> str:
    """One sample line, newline included."""
    return f"{name}{format_labels(labels)} {format_value(float(value))}\n"


class Histogram:
    """Cumulative bucket counts, sum and count; rendered by `lines`."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * len(self.bounds)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count *value* in every bucket whose bound it does not exceed."""
        self.count += 1
        self.sum += value
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1

    def lines(self, name: str, labels: Sequence[tuple[str, str]]) -> str:
        """`_bucket` lines (with +Inf), `_sum` and `_count`.

        `le` is written as a Go-style float (`1.0`) like client libraries
        do, so the series match those of other exporters.
        """
        out = [
            sample_line(f"{name}_bucket", (*labels, ("le", repr(float(bound)))), n)
            for bound, n in zip(self.bounds, self.counts, strict=True)
        ]
        out.append(sample_line(f"{name}_bucket", (*labels, ("le", "+Inf")), self.count))
        out.append(sample_line(f"{name}_sum", labels, self.sum))
        out.append(sample_line(f"{name}_count", labels, self.count))
        return "".join(out)


def wants_openmetrics(accept: str) -> bool:
    """Whether an Accept header asks for OpenMetrics text."""
    return "application/openmetrics-text" in accept
