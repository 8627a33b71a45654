"""readiness-exporter: production-readiness checklists as Prometheus metrics."""

__version__ = "0.2.0"
