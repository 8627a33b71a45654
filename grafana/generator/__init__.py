"""Writes the bundled Grafana dashboards, grafana/dashboards/*.json.

The JSON files are what ships (Grafana provisions them as they are); this
package keeps their shared conventions in one place: the `${datasource}`
variable, the probe variable, units, the dashboards dropdown link and the
panel layout (`panels`, `common`), one module per dashboard. Thresholds come
from alerts/thresholds.yml (`alerts.thresholds`), check names and limit
fields from the kinds' tables (`exporter.kinds`). Only raw metrics of the
exporter are queried, no recording rules.

    python -m grafana.generator          # rewrite the JSON files
    python -m grafana.generator --check  # exit 1 when they are out of date
"""
