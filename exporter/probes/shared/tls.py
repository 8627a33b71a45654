"""The TLS client settings of every kind (`tls_config`), and their contexts.

One model, `TlsClientConfig`, as blackbox_exporter's `tls_config`: `ca_file`,
`cert_file`, `key_file`, `server_name`, `insecure_skip_verify` and
`min_version`. Every kind that speaks TLS takes it under `tls_config`; a
kind whose driver cannot honour a field refuses it at load time
(`TlsClientConfig.refuse`).

Contexts are built once and reused.

`ssl.create_default_context()` loads the whole system trust store, about
18 ms of CPU on the event loop; built on every run of every TLS probe that
is most of the daemon's CPU at scale. A context is immutable once set up
and safe to share between connections, so each distinct setting is built
once. The key includes the files' modification times, sizes and inodes, so
a rotated CA, client certificate or key is picked up on the next run
without a reload:

    client_context(ca_file=Path("/etc/ca.pem"))  # built (one stat per file)
    client_context(ca_file=Path("/etc/ca.pem"))  # the same object again
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator

from exporter.probes.base import Model, TargetConfigError, first_line

TlsVersion = Literal["TLS12", "TLS13"]
_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


class TlsClientConfig(Model):
    """How a probe's client speaks TLS, when it does (https, rediss, ...)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = Field(default=None, min_length=1)
    insecure_skip_verify: bool = False
    min_version: TlsVersion | None = None

    @model_validator(mode="after")
    def _key_with_cert(self) -> Self:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate)")
        return self

    def refuse(self, kind: str, *fields: str) -> None:
        """Raise ValueError when one of *fields*, which *kind*'s driver
        cannot honour, is set."""
        given = [name for name in fields if name in self.model_fields_set]
        if given:
            raise ValueError(
                f"tls_config.{', tls_config.'.join(given)}: not supported by the"
                f" {kind} kind; remove it"
            )

    @property
    def customised(self) -> bool:
        """Whether anything differs from a default verifying client."""
        return bool(self.model_fields_set - {"server_name"})

    def context(self) -> ssl.SSLContext:
        """The shared client context for these settings (see
        `client_context`)."""
        return client_context(
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            insecure_skip_verify=self.insecure_skip_verify,
            min_version=self.min_version,
        )


# Distinct TLS settings in use; far more than any config has, still bounded.
_MAX_CONTEXTS = 512

FileStamp = tuple[str, int, int, int]

_contexts: OrderedDict[Hashable, tuple[tuple[FileStamp, ...], ssl.SSLContext]] = (
    OrderedDict()
)


def _stamp(path: Path, field: str) -> FileStamp:
    """What changes when *path* is rewritten or replaced (a rotation)."""
    try:
        stat = path.stat()
    except OSError as error:
        raise TargetConfigError(
            f"cannot read {field} {path}: {error.strerror or type(error).__name__}"
        ) from None
    return (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)


def cached_context(
    settings: Hashable,
    files: dict[str, Path | None],
    build: Callable[[], ssl.SSLContext],
) -> ssl.SSLContext:
    """The context for *settings*, rebuilt by *build* when one of *files*
    (field name -> path) changed since it was last built."""
    stamps = tuple(_stamp(path, field) for field, path in files.items() if path)
    cached = _contexts.get(settings)
    if cached is not None and cached[0] == stamps:
        _contexts.move_to_end(settings)
        return cached[1]
    context = build()
    _contexts[settings] = (stamps, context)
    _contexts.move_to_end(settings)
    while len(_contexts) > _MAX_CONTEXTS:
        _contexts.popitem(last=False)
    return context


def client_context(
    *,
    ca_file: Path | None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    insecure_skip_verify: bool = False,
    min_version: TlsVersion | None = None,
) -> ssl.SSLContext:
    """A verifying client context trusting *ca_file* (else the system store),
    presenting *cert_file*/*key_file* if given; shared while the files stay
    the same. A file that cannot be read or parsed is `TargetConfigError`."""
    files = {"ca_file": ca_file, "cert_file": cert_file, "key_file": key_file}
    settings = (
        "client",
        ca_file,
        cert_file,
        key_file,
        insecure_skip_verify,
        min_version,
    )
    return cached_context(
        settings,
        files,
        lambda: _build_client_context(
            ca_file, cert_file, key_file, insecure_skip_verify, min_version
        ),
    )


def _build_client_context(
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    insecure_skip_verify: bool,
    min_version: TlsVersion | None,
) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as error:
        raise TargetConfigError(
            f"cannot load ca_file {ca_file}: {first_line(error)}"
        ) from None
    if cert_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as error:
            raise TargetConfigError(
                f"cannot load cert_file/key_file {cert_file}: {first_line(error)}"
            ) from None
    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        context.minimum_version = _VERSIONS[min_version]
    return context
