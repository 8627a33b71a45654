"""The bundled Prometheus rules: thresholds model, templates and generator."""
