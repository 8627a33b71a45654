"""Secrets given as `password` or `*_file` fields, resolved at run time.

Reading the file on every use means a rotated secret is picked up without a
reload; the read happens off the event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr

from exporter.probes.base import TargetConfigError


async def read_secret_file(path: Path, field: str = "password_file") -> str:
    """The secret in *path*, trailing newline dropped; never empty."""
    try:
        text = await asyncio.to_thread(path.read_text, "utf-8")
    except UnicodeDecodeError as error:
        raise TargetConfigError(f"{field} {path} is not UTF-8 text") from error
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise TargetConfigError(f"{field} {path} cannot be read: {reason}") from error
    secret = text.rstrip("\r\n")
    if not secret:
        raise TargetConfigError(f"{field} {path} is empty")
    return secret


async def resolve_password(
    password: SecretStr | None, password_file: Path | None
) -> str | None:
    """The password given inline or in a file; None when neither is set.

    An empty inline password (`password: ${VAR:-}`) counts as none.
    """
    if password is not None and password.get_secret_value():
        return password.get_secret_value()
    if password_file is not None:
        return await read_secret_file(password_file)
    return None
