"""Panel building blocks: threshold steps, value mappings, the panel types
the dashboards use and the left-to-right layout. Nothing here knows a metric,
a check or a threshold; the dashboard modules bring those."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

DATASOURCE: JSON = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24


def steps(base: str, *above: tuple[float, str]) -> JSON:
    """Absolute thresholds: *base* colour, then (value, colour) upwards."""
    return {
        "mode": "absolute",
        "steps": [
            {"color": base, "value": None},
            *({"color": color, "value": value} for value, color in above),
        ],
    }


ALL_GOOD_STEPS = steps("red", (1, "green"))  # a ratio that should be exactly 1
NONE_FAILING_STEPS = steps("green", (1, "red"))  # a count that should be 0
NEUTRAL_STEPS = steps("blue")


def value_map(*entries: tuple[int, str, str]) -> list[JSON]:
    """One value mapping: (value, text, colour) per entry."""
    options = {
        str(value): {"text": text, "color": color, "index": index}
        for index, (value, text, color) in enumerate(entries)
    }
    return [{"type": "value", "options": options}]


UP_DOWN = value_map((0, "DOWN", "red"), (1, "UP", "green"))
PASS_FAIL = value_map((0, "FAIL", "red"), (1, "PASS", "green"))
YES_NO = value_map((0, "NO", "red"), (1, "YES", "green"))


@dataclass(frozen=True)
class Query:
    """One PromQL target; `instant` ones feed tables and single values."""

    expr: str
    legend: str = "__auto"
    instant: bool = False


def target(query: Query, ref_id: str, table: bool) -> JSON:
    out: JSON = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": query.expr,
        "legendFormat": query.legend,
        "range": not query.instant,
        "instant": query.instant,
        "refId": ref_id,
    }
    if table:
        out["format"] = "table"
    return out


@dataclass(frozen=True)
class Look:
    """How a panel shows its values: unit, thresholds, mappings, range."""

    unit: str
    thresholds: JSON | None = None
    mappings: Sequence[JSON] = ()
    min: float | None = None
    max: float | None = None
    decimals: int | None = None


def field_defaults(look: Look, custom: JSON) -> JSON:
    defaults: JSON = {
        "unit": look.unit,
        "color": {"mode": "thresholds" if look.thresholds else "palette-classic"},
        "thresholds": look.thresholds or NEUTRAL_STEPS,
        "mappings": list(look.mappings),
        "custom": custom,
    }
    for key in ("min", "max", "decimals"):
        if (value := getattr(look, key)) is not None:
            defaults[key] = value
    return defaults


def panel(
    kind: str,
    title: str,
    description: str,
    queries: Sequence[Query],
    look: Look,
    *,
    size: tuple[int, int],
    options: JSON,
    custom: JSON | None = None,
    overrides: Sequence[JSON] = (),
    transformations: Sequence[JSON] = (),
) -> JSON:
    """A panel of any type; `gridPos` x/y and `id` are filled by `layout`."""
    table = kind == "table"
    width, height = size
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": width, "h": height},
        "fieldConfig": {
            "defaults": field_defaults(look, custom or {}),
            "overrides": list(overrides),
        },
        "options": options,
        "targets": [target(q, chr(ord("A") + i), table) for i, q in enumerate(queries)],
        "transformations": list(transformations),
    }


REDUCE_LAST: JSON = {"calcs": ["lastNotNull"], "fields": "", "values": False}
LEGEND: JSON = {"displayMode": "list", "placement": "bottom", "showLegend": True}
TOOLTIP: JSON = {"mode": "multi", "sort": "desc"}


def stat(
    title: str, description: str, queries: Sequence[Query], look: Look, w: int = 6
) -> JSON:
    options = {
        "reduceOptions": REDUCE_LAST,
        "colorMode": "background",
        "graphMode": "none",
        "textMode": "auto",
        "justifyMode": "auto",
        "orientation": "auto",
    }
    return panel(
        "stat", title, description, queries, look, size=(w, 5), options=options
    )


def timeseries(
    title: str,
    description: str,
    queries: Sequence[Query],
    look: Look,
    w: int = 12,
    stacked: bool = False,
) -> JSON:
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
        # Lines at the alert thresholds, when the panel has any.
        "thresholdsStyle": {"mode": "dashed" if look.thresholds else "off"},
    }
    options = {"legend": LEGEND, "tooltip": TOOLTIP}
    return panel(
        "timeseries",
        title,
        description,
        queries,
        look,
        size=(w, 8),
        options=options,
        custom=custom,
    )


def state_timeline(
    title: str, description: str, queries: Sequence[Query], look: Look, w: int = 12
) -> JSON:
    options = {
        "showValue": "auto",
        "mergeValues": True,
        "alignValue": "left",
        "rowHeight": 0.9,
        "legend": LEGEND,
        "tooltip": {"mode": "single", "sort": "none"},
    }
    custom = {"fillOpacity": 80, "lineWidth": 0}
    return panel(
        "state-timeline",
        title,
        description,
        queries,
        look,
        size=(w, 8),
        options=options,
        custom=custom,
    )


def bargauge(
    title: str, description: str, queries: Sequence[Query], look: Look, w: int = 8
) -> JSON:
    options = {
        "reduceOptions": REDUCE_LAST,
        "displayMode": "gradient",
        "orientation": "horizontal",
        "showUnfilled": True,
        "valueMode": "color",
        "namePlacement": "auto",
        "sizing": "auto",
        "minVizHeight": 16,
        "minVizWidth": 8,
    }
    return panel(
        "bargauge", title, description, queries, look, size=(w, 8), options=options
    )


# Scrape labels that only clutter a table.
HIDDEN_COLUMNS = ("Time", "__name__", "job", "instance")


def table(
    title: str,
    description: str,
    queries: Sequence[Query],
    look: Look,
    *,
    w: int = 12,
    h: int = 8,
    columns: Sequence[str] = (),
    hide: Sequence[str] = (),
    rename: dict[str, str] | None = None,
    overrides: Sequence[JSON] = (),
) -> JSON:
    """An instant table; `columns` come first, several queries are merged."""
    organize = {
        "excludeByName": {name: True for name in (*HIDDEN_COLUMNS, *hide)},
        "indexByName": {name: i for i, name in enumerate(columns)},
        "renameByName": rename or {},
    }
    transformations = [{"id": "organize", "options": organize}]
    if len(queries) > 1:
        transformations.insert(0, {"id": "merge", "options": {}})
    options = {
        "showHeader": True,
        "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "fields": "", "countRows": False},
    }
    custom = {
        "align": "auto",
        # Colour only what has thresholds; plain text otherwise.
        "cellOptions": {"type": "color-text" if look.thresholds else "auto"},
        "filterable": True,
        "inspect": False,
    }
    instant = [Query(q.expr, q.legend, instant=True) for q in queries]
    return panel(
        "table",
        title,
        description,
        instant,
        look,
        size=(w, h),
        options=options,
        custom=custom,
        overrides=overrides,
        transformations=transformations,
    )


def column(name: str, **properties: Any) -> JSON:
    """A field override for the table column *name*."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [
            {"id": key, "value": value} for key, value in properties.items()
        ],
    }


def row(title: str) -> JSON:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"w": GRID_COLUMNS, "h": 1},
    }


def layout(panels: Iterable[JSON]) -> list[JSON]:
    """Number the panels and place them left to right, wrapping at 24 columns."""
    placed: list[JSON] = []
    x = y = line_height = 0
    for number, item in enumerate(panels, start=1):
        grid = item["gridPos"]
        if x + grid["w"] > GRID_COLUMNS or (item["type"] == "row" and x > 0):
            x, y, line_height = 0, y + line_height, 0
        placed.append({"id": number, **item, "gridPos": {**grid, "x": x, "y": y}})
        x += grid["w"]
        line_height = max(line_height, grid["h"])
        if item["type"] == "row":
            x, y, line_height = 0, y + grid["h"], 0
    return placed
