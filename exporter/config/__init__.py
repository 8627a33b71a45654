"""Process settings (flags, READINESS_ env) and the YAML config file.

A mistake in the file becomes a `ConfigError` whose lines name the file, the
probe or system, the field and what was expected, every problem at once;
the CLI prints them and exits 2.
"""

from exporter.config.file import (
    Config,
    ConfigError,
    SchedulerConfig,
    load_config,
    parse_config,
)
from exporter.config.settings import DEFAULT_LISTEN_ADDRESS, DEFAULT_PORT, Settings

__all__ = [
    "DEFAULT_LISTEN_ADDRESS",
    "DEFAULT_PORT",
    "Config",
    "ConfigError",
    "SchedulerConfig",
    "Settings",
    "load_config",
    "parse_config",
]
