"""`${VAR}` and `${VAR:-default}` references in the config file; `$$` is `$`."""

from __future__ import annotations

import os
import re
from typing import Any

from exporter.config.messages import field_path

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(
    value: Any, where: str, missing: list[str], path: tuple[int | str, ...] = ()
) -> Any:
    """*value* with references replaced; an unset variable without a
    default adds a sentence to *missing*."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            missing.append(
                f"{where}: field {field_path(path)!r}: environment variable"
                f" {name} is not set (export it, or give a default as"
                f" ${{{name}:-value}})"
            )
            return ""

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {k: expand(v, where, missing, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, where, missing, (*path, i)) for i, v in enumerate(value)]
    return value
