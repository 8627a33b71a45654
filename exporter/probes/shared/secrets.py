"""Secrets given inline or as `*_file`, resolved at run time, one way for all.

A config model names the stems of its secrets in `SECRETS` (see
`exporter.probes.base.Model`, which refuses both forms at once). At run time
`resolve_secret(model, "password")` gives the inline value when it is set
and not empty, else the file's content, else None. Reading the file on
every use means a rotated secret is picked up without a reload; the read
happens off the event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr

from exporter.probes.base import Model, TargetConfigError, secret_given


async def read_secret_file(path: Path, field: str) -> str:
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


async def resolve_secret(model: Model, stem: str) -> str | None:
    """The secret *stem* of *model*: inline, else from `<stem>_file`, else
    None. *stem* must be one of the model's `SECRETS`."""
    if stem not in model.SECRETS:
        raise KeyError(f"{type(model).__name__} declares no secret {stem!r}")
    inline: SecretStr | None = getattr(model, stem)
    if secret_given(inline):
        assert inline is not None  # noqa: S101 (secret_given checked it)
        return inline.get_secret_value()
    path: Path | None = getattr(model, f"{stem}_file")
    if path is not None:
        return await read_secret_file(path, f"{stem}_file")
    return None


def has_secret(model: Model, stem: str) -> bool:
    """Whether the secret *stem* is configured in either form."""
    return (
        secret_given(getattr(model, stem)) or getattr(model, f"{stem}_file") is not None
    )
