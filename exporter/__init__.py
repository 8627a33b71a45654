"""readiness-exporter: production-readiness checklists as Prometheus metrics."""

__version__ = "0.1.0"
