"""Lint of the bundled Grafana dashboards and their provisioning files.

The rules of grafana/dashboard-linter and mixtool that can be checked
without Grafana (not installable here), plus ours: only metrics the exporter
exposes, PromQL that promtool parses, JSON files the generator would write.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.thresholds import load_thresholds
from exporter.kinds import PROBES
from grafana.generator.build import render_all, stale_files
from tests.dashboards import (
    COUNTER_FUNCTIONS,
    DASHBOARDS_DIR,
    ROOT,
    check_matchers,
    check_references,
    dashboard_files,
    exposed_families,
    exposed_metric_names,
    function_arguments,
    is_known_metric,
    iter_panels,
    load,
    metric_names,
    panel_queries,
    substitute,
    undeclared_checks,
    without_calls,
)

JSON = dict[str, Any]

UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
SCHEMA_VERSION = 39
TAG = "readiness-exporter"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Panels that show no series and so need neither a unit nor a datasource.
LAYOUT_TYPES = {"row", "text"}
PROVISIONING = ROOT / "grafana" / "provisioning"
MOUNT_PATH = "/var/lib/grafana/dashboards/readiness"

FILES = dashboard_files()
IDS = [path.stem for path in FILES]


@pytest.fixture(params=FILES, ids=IDS)
def dashboard(request: pytest.FixtureRequest) -> JSON:
    path: Path = request.param
    return load(path)


def data_panels(dashboard: JSON) -> list[JSON]:
    return [p for p in iter_panels(dashboard) if p["type"] not in LAYOUT_TYPES]


def targets(dashboard: JSON) -> list[tuple[str, str]]:
    """(panel title, raw expr) of every query, variables untouched."""
    return [
        (panel["title"], target["expr"])
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def test_dashboards_are_bundled() -> None:
    assert len(FILES) >= 7, FILES


def test_identity(dashboard: JSON) -> None:
    assert UID.match(dashboard.get("uid", "")), dashboard.get("uid")
    assert dashboard.get("title")
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    assert TAG in dashboard["tags"]
    assert dashboard.get("id") is None, "files carry no database id"


def test_uids_and_titles_unique_across_dashboards() -> None:
    dashboards = [load(path) for path in FILES]
    for key in ("uid", "title"):
        counts = Counter(d[key] for d in dashboards)
        assert [v for v, n in counts.items() if n > 1] == [], key


def test_dashboards_dropdown_link(dashboard: JSON) -> None:
    links = [link for link in dashboard["links"] if link["type"] == "dashboards"]
    assert links, "no dashboards link"
    assert all(TAG in link["tags"] and link["asDropdown"] for link in links)


def test_datasource_variable(dashboard: JSON) -> None:
    variables = dashboard["templating"]["list"]
    sources = [v for v in variables if v["type"] == "datasource"]
    assert len(sources) == 1
    (source,) = sources
    assert source["name"] == "datasource"
    assert source["query"] == "prometheus"
    assert source["label"] == "Data source"


def test_probe_variable(dashboard: JSON) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    probe = variables.get("probe")
    if probe is None:
        return
    assert probe["type"] == "query"
    assert probe["datasource"] == DATASOURCE
    assert probe["multi"] and probe["includeAll"]
    assert probe["allValue"] == ".+"
    assert re.fullmatch(
        r"label_values\(readiness_probe_success(\{[^}]*\})?, probe\)",
        probe["definition"],
    )
    assert probe["query"]["query"] == probe["definition"]
    queries = [expr for _, expr in targets(dashboard)]
    assert any('probe=~"$probe"' in expr for expr in queries)
    # `$probe` is only ever used as a regex, the multi-value form.
    assert all(
        re.sub(r'probe=~"\$probe"', "", expr).count("$probe") == 0 for expr in queries
    )


def test_no_import_placeholders() -> None:
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        assert "__inputs" not in text, path
        assert "${DS_" not in text and "$DS_" not in text, path


def test_panels_and_targets_use_the_datasource_variable(dashboard: JSON) -> None:
    for panel in data_panels(dashboard):
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no targets"
        for target in panel["targets"]:
            assert target.get("datasource") == DATASOURCE, panel["title"]
            assert target.get("expr"), panel["title"]


def test_panels_have_title_description_and_unit(dashboard: JSON) -> None:
    for panel in iter_panels(dashboard):
        assert panel.get("title"), panel
        if panel["type"] in LAYOUT_TYPES:
            continue
        assert panel.get("description"), panel["title"]
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit") or defaults.get("mappings"), panel["title"]


def test_panel_ids_unique_and_grid_within_24_columns(dashboard: JSON) -> None:
    panels = list(iter_panels(dashboard))
    ids = Counter(panel["id"] for panel in panels)
    assert [i for i, n in ids.items() if n > 1] == []
    for panel in panels:
        grid = panel["gridPos"]
        assert set(grid) >= {"x", "y", "w", "h"}, panel["title"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["h"] > 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_range_functions_use_rate_interval(dashboard: JSON) -> None:
    for title, expr in targets(dashboard):
        for argument in function_arguments(expr, COUNTER_FUNCTIONS):
            ranges = re.findall(r"\[([^\]]*)\]", argument)
            assert ranges == ["$__rate_interval"], f"{title}: {expr}"


def test_counters_only_inside_rate_irate_increase(dashboard: JSON) -> None:
    counters = {n for n, kind in exposed_families().items() if kind == "counter"}
    for title, expr in targets(dashboard):
        bare = metric_names(without_calls(expr, COUNTER_FUNCTIONS))
        misused = {n for n in bare if n.endswith("_total") or n in counters}
        assert not misused, f"{title}: {sorted(misused)} outside rate(): {expr}"


def test_metric_names_are_exposed_by_the_exporter(dashboard: JSON) -> None:
    exposed = exposed_metric_names()
    for title, expr in targets(dashboard):
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr}"
        unknown = {n for n in names if not is_known_metric(n, exposed)}
        assert not unknown, f"{title}: {sorted(unknown)} not exposed: {expr}"


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (le, probe) (rate(a_bucket{probe=~"$probe",x="y"}[$__rate_interval]))'
        " / on (job) group_left (kind) b_total"
        ' or label_replace(c, "reason", "check", "", "") and vector(0)'
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}
    assert metric_names(without_calls(expr, COUNTER_FUNCTIONS)) == {"b_total", "c"}


def test_panel_queries_substitute_every_variable() -> None:
    for path in FILES:
        queries = panel_queries(path)
        assert queries, path
        assert all("$" not in expr for _, expr in queries), path
    with pytest.raises(ValueError, match="unknown dashboard variable"):
        substitute('up{job="$job"}')


def test_promql_parses_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    groups = [
        {
            "name": path.stem,
            "rules": [
                {
                    "record": f"dashboard:query_{i}:{path.stem.replace('-', '_')}",
                    "expr": expr,
                }
                for i, (_, expr) in enumerate(panel_queries(path))
            ],
        }
        for path in FILES
    ]
    rules = tmp_path / "dashboards.rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_thresholds_match_the_alerts() -> None:
    """The panels that mirror an alert draw its thresholds, from thresholds.yml."""
    t = load_thresholds()
    latency = t.latency_p95_seconds
    expected: dict[tuple[str, str], set[float]] = {
        ("readiness-overview", "Readiness score"): {t.score.critical, t.score.warning},
        ("readiness-services", "Certificate days left"): {
            t.certificates.critical_days,
            t.certificates.warning_days,
        },
        ("readiness-services", "Run latency p50 / p95 / p99"): {
            latency.info,
            latency.warning,
            latency.critical,
        },
        ("readiness-datastores", "Connections in use vs max"): {
            t.databases.connections_warning
        },
        ("readiness-datastores", "Redis memory used / maxmemory"): {
            t.redis.memory_warning,
            t.redis.memory_critical,
        },
        ("readiness-exporter", "Failure ratio by probe"): {
            t.errors.warning,
            t.errors.critical,
        },
        # Ratios to each probe's own limit: the alerts fire at 1 (100 %).
        ("readiness-workers", "Worker memory vs limit"): {1.0},
        ("readiness-backups", "Newest backup age / max age"): {1.0},
        ("readiness-backups", "Newest backup age / max age over time"): {1.0},
    }
    panels = {
        (path.stem, panel["title"]): panel
        for path in FILES
        for panel in iter_panels(load(path))
    }
    for key, values in expected.items():
        steps = panels[key]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert values <= {step["value"] for step in steps}, key


def test_probe_default_limits_match_the_probes() -> None:
    """Lines at a check's default limit (no alert) follow the kind's config."""
    defaults = {
        ("readiness-datastores", "Replica lag"): PROBES["postgres"]
        .config.model_fields["replica_lag_max"]
        .default,
        ("readiness-datastores", "Redis keyspace hit ratio"): PROBES["redis"]
        .config.model_fields["hit_ratio_min"]
        .default,
    }
    panels = {
        (path.stem, panel["title"]): panel
        for path in FILES
        for panel in iter_panels(load(path))
    }
    for key, value in defaults.items():
        steps = panels[key]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert value in {step["value"] for step in steps}, key


def test_generated_json_is_up_to_date() -> None:
    files = render_all(load_thresholds())
    assert stale_files(files) == [], "run: python -m grafana.generator"
    assert {path.name for path in FILES} == set(files)


def test_dashboards_name_only_declared_checks() -> None:
    matchers = [
        matcher
        for path in FILES
        for _, expr in targets(load(path))
        for matcher in check_matchers(expr)
    ]
    names = [name for m in matchers for name in check_references(*m)]
    assert len(names) >= 2, names  # found them, so the test cannot pass empty
    assert undeclared_checks(matchers) == []


def test_dashboard_provider() -> None:
    config = yaml.safe_load(
        (PROVISIONING / "dashboards" / "readiness.yml").read_text(encoding="utf-8")
    )
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Readiness"
    assert provider["options"]["path"] == MOUNT_PATH
    assert provider["options"]["foldersFromFilesStructure"] is False
    readme = (ROOT / "grafana" / "README.md").read_text(encoding="utf-8")
    assert f"{DASHBOARDS_DIR.relative_to(ROOT)}:{MOUNT_PATH}" in readme


def test_datasource_provisioning() -> None:
    config = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    assert UID.match(source["uid"])
    assert source["url"]
