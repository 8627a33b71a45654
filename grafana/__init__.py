"""The bundled Grafana dashboards and their generator."""
