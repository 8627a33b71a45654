"""Client TLS contexts for every probe kind, built once and reused.

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

from exporter.probes.base import TargetConfigError, first_line

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
) -> ssl.SSLContext:
    """A verifying client context trusting *ca_file* (else the system store),
    presenting *cert_file*/*key_file* if given; shared while the files stay
    the same. A file that cannot be read or parsed is `TargetConfigError`."""
    files = {"ca_file": ca_file, "cert_file": cert_file, "key_file": key_file}
    settings = ("client", ca_file, cert_file, key_file, insecure_skip_verify)
    return cached_context(
        settings,
        files,
        lambda: _build_client_context(
            ca_file, cert_file, key_file, insecure_skip_verify
        ),
    )


def _build_client_context(
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    insecure_skip_verify: bool,
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
    return context
