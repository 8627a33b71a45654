"""Reading the bundled Grafana dashboards: panels, their PromQL, metric names.

Shared by the dashboard lint (tests/test_dashboards.py) and the end-to-end
test that runs every panel query against a Prometheus scraping the demo:
`panel_queries(path)` gives each panel's queries with the dashboard
variables replaced by values Prometheus accepts.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exporter import metrics
from exporter.kinds import PROBES, declared_checks

JSON = dict[str, Any]

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"

# What Grafana would put in place of each variable; `$probe` is "All".
VARIABLE_VALUES = {
    "probe": ".+",
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
}
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")

# Functions whose argument is a counter's range; everything else must not
# touch a `_total` series directly.
COUNTER_FUNCTIONS = ("rate", "irate", "increase")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Names from outside the exporter's own families that panels may use.
FOREIGN_PREFIXES = ("process_", "node_")

PROMQL_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)


def dashboard_files() -> list[Path]:
    """Every bundled dashboard, sorted by name."""
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load(path: Path) -> JSON:
    data: JSON = json.loads(path.read_text(encoding="utf-8"))
    return data


def iter_panels(dashboard: JSON) -> Iterator[JSON]:
    """Every panel, those inside (collapsed) rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def substitute(expr: str) -> str:
    """*expr* with the dashboard variables replaced; unknown ones raise."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in VARIABLE_VALUES:
            raise ValueError(f"unknown dashboard variable ${name} in {expr!r}")
        return VARIABLE_VALUES[name]

    return VARIABLE.sub(value, expr)


def panel_queries(path: Path) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard at *path*."""
    return [
        (panel["title"], substitute(target["expr"]))
        for panel in iter_panels(load(path))
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


# --- PromQL text ------------------------------------------------------------------


def _closing_paren(text: str, opening: int) -> int:
    """Index of the parenthesis closing the one at *opening*."""
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unbalanced parentheses in {text!r}")


def _calls(names: tuple[str, ...]) -> re.Pattern[str]:
    """Matches `name(` for the functions *names*, up to the parenthesis."""
    return re.compile(rf"\b(?:{'|'.join(names)})\s*\(")


def function_arguments(expr: str, names: tuple[str, ...]) -> list[str]:
    """The argument text of every call of the functions *names* in *expr*."""
    pattern = _calls(names)
    return [
        expr[match.end() : _closing_paren(expr, match.end() - 1)]
        for match in pattern.finditer(expr)
    ]


def without_calls(expr: str, names: tuple[str, ...]) -> str:
    """*expr* with every call of the functions *names* cut out."""
    pattern = _calls(names)
    while match := pattern.search(expr):
        end = _closing_paren(expr, match.end() - 1)
        expr = expr[: match.start()] + "0" + expr[end + 1 :]
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names selected by *expr* (label names and functions left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    grouping = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    text = re.sub(grouping, " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, is_call = match.group(1), match.group(2)
        if not is_call and name.lower() not in PROMQL_KEYWORDS:
            names.add(name)
    return names


# --- check names ------------------------------------------------------------------

CHECK_MATCHER = re.compile(r'\bcheck\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def check_matchers(text: str) -> list[tuple[str, str]]:
    """(operator, value) of every `check` label matcher in *text*."""
    return CHECK_MATCHER.findall(text)


def check_references(operator: str, value: str) -> list[str]:
    """The check names a matcher names: the value, or for a regex matcher
    each of its `|` alternatives."""
    return value.split("|") if operator in ("=~", "!~") else [value]


def is_declared_check(name: str, regex: bool) -> bool:
    """Whether a kind declares check *name*: a check, a member of a family
    (`bullmq_pdf_depth`) or, in a regex, a family's pattern (`bullmq_.+_depth`)."""
    return any(
        row.matches(name) or (regex and name == row.pattern)
        for _, row in declared_checks()
    )


def undeclared_checks(matchers: list[tuple[str, str]]) -> list[str]:
    """The names in *matchers* that no kind declares."""
    return [
        name
        for operator, value in matchers
        for name in check_references(operator, value)
        if not is_declared_check(name, operator in ("=~", "!~"))
    ]


# --- what the exporter exposes ----------------------------------------------------


def _renderer_families() -> dict[str, str]:
    """Name -> type of every `Family("...")` written in exporter/metrics.py.

    The global and own families are built inside methods, so they are read
    from the source rather than from module attributes.
    """
    source = Path(metrics.__file__).read_text(encoding="utf-8")
    families: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "Family"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            continue
        kind = "gauge"
        if len(node.args) > 2 and isinstance(node.args[2], ast.Constant):
            kind = str(node.args[2].value)
        families[node.args[0].value] = kind
    return families


def exposed_families() -> dict[str, str]:
    """Name -> type of every family the exporter can expose."""
    families = _renderer_families()
    families.update({f.name: f.type for f in metrics.PROBE_FAMILIES})
    for kind in PROBES.values():
        for spec in kind.metrics:
            families[metrics.NAMESPACE + spec.name] = spec.type
    return families


def exposed_metric_names() -> set[str]:
    """Every sample name the exporter can expose (histogram series included)."""
    names = set()
    for name, kind in exposed_families().items():
        names.add(name)
        if kind == "histogram":
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def is_known_metric(name: str, exposed: set[str]) -> bool:
    return name in exposed or name.startswith(FOREIGN_PREFIXES)
