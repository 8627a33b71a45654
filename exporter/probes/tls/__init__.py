"""Probe that judges TLS certificates: of a live endpoint, or of PEM files.

Endpoint form: a handshake with verification off fetches the presented chain
(so an expired, self-signed or wrong-host certificate is still exported), then
a second handshake with verification on judges the chain and our own matcher
judges the hostname, as separate checks; a third handshake offering only
TLS 1.0/1.1 tests that the server refuses them. File form: every certificate
of every PEM file the globs match.

    readiness_tls_cert_not_after_timestamp_seconds{probe="web",cn="example.com",
        issuer_cn="R11",serial="4a1f...",position="0"} 1.7789e+09
    readiness_tls_version_info{probe="web",version="TLSv1.3"} 1
    readiness_tls_handshake_seconds{probe="web"} 0.0042
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import struct
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from exporter.probes.base import (
    BaseProbeConfig,
    Category,
    CheckDef,
    Checks,
    MetricSpec,
    Port,
    ProbeError,
    ProbeResult,
    ProtocolError,
    Reason,
    Sample,
    Severity,
    TargetConfigError,
    first_line,
)
from exporter.probes.context import Deadline, ProbeContext
from exporter.probes.shared.streams import close_stream
from exporter.probes.shared.tls import TlsClientConfig, cached_context
from exporter.probes.tls.certs import (
    CERT_LABELS,
    NOT_AFTER,
    NOT_BEFORE,
    CertInfo,
    cert_samples,
    expiry_problem,
    hostname_matches,
    judge_leaves,
    load_files,
    names_of,
    parse_chain,
    presented_chain,
    validity_problem,
)

METRICS = (
    MetricSpec(
        NOT_AFTER,
        "Not-after instant of every presented (or file) certificate, last run;"
        ' position="0" is the leaf, file is set for the file form.',
        labels=CERT_LABELS,
    ),
    MetricSpec(
        NOT_BEFORE,
        "Not-before instant of every presented (or file) certificate, last run.",
        labels=CERT_LABELS,
    ),
    MetricSpec(
        "tls_version_info",
        "TLS version negotiated by the endpoint, last run (value 1).",
        type="info",
        labels=("version",),
    ),
    MetricSpec(
        "tls_handshake_seconds",
        "Duration of the TLS handshake (after TCP connect and STARTTLS), last run.",
    ),
)

# PostgreSQL's SSLRequest: length 8, then the magic code 80877102 (0x04d2162f).
POSTGRES_SSL_REQUEST = struct.pack("!ii", 8, 0x04D2162F)
MODERN_VERSIONS = frozenset({"TLSv1.2", "TLSv1.3"})
# OpenSSL 3 will not even offer TLS 1.0/1.1 (or SHA-1 suites) at the default
# security level; level 0 makes our client offer everything, so the checks
# judge the server's policy rather than ours.
_LEGACY_CIPHERS = "ALL:!aNULL:@SECLEVEL=0"
# Reasons OpenSSL gives when the refusal is ours, not the server's.
_LOCAL_REFUSALS = frozenset({"NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE"})


class TlsConfig(BaseProbeConfig):
    """An endpoint (`host`) or PEM files on disk (`files`), and thresholds."""

    RENAMED: ClassVar[dict[str, str]] = {
        "warn_days": "days_left_min_warning",
        "critical_days": "days_left_min_critical",
        "ca_file": "tls_config.ca_file",
        "server_name": "tls_config.server_name",
    }

    kind: Literal["tls"] = "tls"
    host: str | None = Field(default=None, min_length=1)
    port: Port = 443
    tls_config: TlsClientConfig = Field(default_factory=TlsClientConfig)
    starttls: Literal["postgres"] | None = None
    check_legacy_tls: bool = True
    files: tuple[str, ...] | None = None
    days_left_min_warning: float = Field(default=30.0, ge=0)
    days_left_min_critical: float = Field(default=7.0, ge=0)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if self.host is not None and self.files is not None:
            raise ValueError(
                "set either `host` (probe a TLS endpoint) or `files` (read PEM"
                " files from disk), not both; use two probes for both"
            )
        if self.host is None and self.files is None:
            raise ValueError(
                "set `host` (probe a TLS endpoint) or `files` (PEM file globs"
                " such as /etc/ssl/private/*.pem)"
            )
        # This kind judges what the server offers: a client that skips
        # verification or limits its versions would judge itself instead.
        self.tls_config.refuse("tls", "insecure_skip_verify", "min_version")
        if self.files is not None:
            self._files_form_only()
        if self.days_left_min_critical > self.days_left_min_warning:
            raise ValueError(
                f"days_left_min_critical ({self.days_left_min_critical:g}) must"
                f" not exceed days_left_min_warning ({self.days_left_min_warning:g})"
            )
        return self

    def _files_form_only(self) -> None:
        if not self.files or not all(pattern.strip() for pattern in self.files):
            raise ValueError(
                "`files` needs one or more non-empty paths or globs,"
                " such as /etc/ssl/private/*.pem"
            )
        endpoint_only = ("port", "tls_config", "starttls", "check_legacy_tls")
        misplaced = [name for name in endpoint_only if name in self.model_fields_set]
        if misplaced:
            raise ValueError(
                f"{', '.join(misplaced)} only apply with `host`;"
                " remove them from a `files` probe"
            )


def _endpoint(config: TlsConfig) -> bool:
    return config.host is not None


CHECKS = (
    CheckDef(
        "cert_valid_now",
        Category.SECURITY,
        Severity.CRITICAL,
        "The leaf certificate is valid now (not before <= now <= not after); in the "
        "file form every file's first certificate.",
    ),
    CheckDef(
        "cert_expiry_warning",
        Category.SECURITY,
        Severity.WARNING,
        "The leaf certificate has more than `days_left_min_warning` days left (30 by "
        "default).",
        threshold="days_left_min_warning",
        formerly=("cert_expiry_30d",),
    ),
    CheckDef(
        "cert_expiry_critical",
        Category.SECURITY,
        Severity.CRITICAL,
        "The leaf certificate has more than `days_left_min_critical` days left (7 by "
        "default).",
        threshold="days_left_min_critical",
        formerly=("cert_expiry_7d",),
    ),
    CheckDef(
        "chain_verifies",
        Category.SECURITY,
        Severity.CRITICAL,
        "A client trusting `tls_config.ca_file` (else the system store) accepts the "
        "presented chain (endpoint form).",
        when=_endpoint,
    ),
    CheckDef(
        "hostname_matches",
        Category.SECURITY,
        Severity.CRITICAL,
        "The leaf is for `tls_config.server_name`, else `host` (endpoint form).",
        when=_endpoint,
    ),
    CheckDef(
        "tls_version_min",
        Category.SECURITY,
        Severity.WARNING,
        "The negotiated version is TLS 1.2 or 1.3 (endpoint form).",
        when=_endpoint,
    ),
    CheckDef(
        "legacy_tls_refused",
        Category.SECURITY,
        Severity.WARNING,
        "A handshake offering only TLS 1.0/1.1 is refused (endpoint form, with "
        "`check_legacy_tls`, on by default).",
        when=lambda config: _endpoint(config) and config.check_legacy_tls,
    ),
)


async def probe(config: TlsConfig, ctx: ProbeContext) -> ProbeResult:
    """Judge the endpoint's chain or the files' certificates."""
    checks = Checks(CHECKS, config)
    if config.files is not None:
        samples = await _probe_files(config, config.files, checks)
    else:
        samples = await _probe_endpoint(config, checks, ctx.deadline)
    return ProbeResult(checks=checks.finish(), samples=tuple(samples))


def _record_leaf_checks(
    config: TlsConfig, checks: Checks, leaves: list[CertInfo]
) -> None:
    now = time.time()
    checks.record(
        "cert_valid_now", *judge_leaves(leaves, lambda c: validity_problem(c, now))
    )
    for check, days in (
        ("cert_expiry_warning", config.days_left_min_warning),
        ("cert_expiry_critical", config.days_left_min_critical),
    ):
        problem = functools.partial(expiry_problem, now=now, min_days=days)
        checks.record(check, *judge_leaves(leaves, problem))


# --- file form ----------------------------------------------------------------


async def _probe_files(
    config: TlsConfig, patterns: tuple[str, ...], checks: Checks
) -> list[Sample]:
    # Globbing a large tree and parsing bundles must not stall other probes.
    certs = await asyncio.to_thread(load_files, patterns)
    leaves = [info for info in certs if info.position == 0]
    _record_leaf_checks(config, checks, leaves)
    return cert_samples(certs)


# --- endpoint form --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Handshake:
    """What one completed handshake showed."""

    version: str
    chain: list[bytes]
    seconds: float


class HandshakeFailed(ProbeError):
    """The connection broke during the TLS handshake (not an SSL alert)."""

    reason = Reason.TLS


async def _probe_endpoint(
    config: TlsConfig, checks: Checks, deadline: Deadline
) -> list[Sample]:
    assert config.host is not None  # noqa: S101 (the validator guarantees a form)
    server_name = config.tls_config.server_name or config.host
    verify_context = _verify_context(config.tls_config)  # bad files fail first
    liberal = _liberal_context(config.tls_config)
    shown = await _handshake(config, liberal, server_name, deadline)
    certs = parse_chain(shown.chain)
    if not certs:
        raise ProbeError("the server presented no certificate", reason=Reason.TLS)
    leaf = certs[0]
    _record_leaf_checks(config, checks, [leaf])
    checks.record("hostname_matches", *_hostname_verdict(leaf, server_name))
    checks.record(
        "tls_version_min",
        shown.version in MODERN_VERSIONS,
        f"negotiated {shown.version}",
    )
    verdict = await _verify(config, verify_context, server_name, deadline)
    checks.record("chain_verifies", *verdict)
    if checks.planned("legacy_tls_refused"):
        verdict = await _legacy_refused(config, server_name, deadline)
        checks.record("legacy_tls_refused", *verdict)
    return [
        *cert_samples(certs),
        Sample.of("tls_version_info", 1, version=shown.version),
        Sample.of("tls_handshake_seconds", shown.seconds),
    ]


def _hostname_verdict(leaf: CertInfo, server_name: str) -> tuple[bool, str]:
    if hostname_matches(leaf.cert, server_name):
        return True, f"leaf is valid for {server_name}"
    names = names_of(leaf.cert)
    listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return False, f"leaf is for {listed or 'no name'}, not {server_name}"


def _liberal_context(
    tls: TlsClientConfig, *, legacy_only: bool = False
) -> ssl.SSLContext:
    """A client context that offers every version and suite OpenSSL has
    (and the client certificate of `tls_config`, if any); built once per
    combination and shared (contexts are immutable here)."""
    settings = ("tls-liberal", legacy_only, tls.cert_file, tls.key_file)
    return cached_context(
        settings,
        {"cert_file": tls.cert_file, "key_file": tls.key_file},
        lambda: _build_liberal(tls, verify=False, legacy_only=legacy_only),
    )


def _build_liberal(
    tls: TlsClientConfig, *, verify: bool, legacy_only: bool
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # judged by hostname_matches, separately
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    with warnings.catch_warnings():
        # Offering deprecated versions is the point of this context.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        if legacy_only:
            context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers(_LEGACY_CIPHERS)
    if tls.cert_file is not None:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as error:
            raise TargetConfigError(
                f"cannot load tls_config.cert_file/key_file {tls.cert_file}:"
                f" {first_line(error)}"
            ) from None
    return context


def _verify_context(tls: TlsClientConfig) -> ssl.SSLContext:
    """Verification on, trusting ca_file or else the system store; rebuilt
    only when one of the files changes on disk."""
    return cached_context(
        ("tls-verify", tls.ca_file, tls.cert_file, tls.key_file),
        {"ca_file": tls.ca_file, "cert_file": tls.cert_file, "key_file": tls.key_file},
        lambda: _build_verify(tls),
    )


def _build_verify(tls: TlsClientConfig) -> ssl.SSLContext:
    context = _build_liberal(tls, verify=True, legacy_only=False)
    try:
        if tls.ca_file is not None:
            context.load_verify_locations(cafile=str(tls.ca_file))
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    except OSError as error:  # ssl.SSLError too: the file is not PEM
        raise TargetConfigError(
            f"tls_config.ca_file {tls.ca_file}: cannot load CA certificates"
            f" ({getattr(error, 'reason', None) or error.strerror or 'unreadable'})"
        ) from None
    return context


async def _verify(
    config: TlsConfig, context: ssl.SSLContext, server_name: str, deadline: Deadline
) -> tuple[bool, str]:
    """Whether a client that trusts the store accepts the presented chain.

    A second handshake rather than cryptography's verifier: it is OpenSSL's
    verdict, the one real clients reach, with the system store it loads.
    """
    ca_file = config.tls_config.ca_file
    store = f"ca_file {ca_file}" if ca_file else "the system store"
    try:
        await _handshake(config, context, server_name, deadline)
    except ssl.SSLCertVerificationError as error:
        why = error.verify_message or error.reason or "verification failed"
        return False, f"{why} (trusting {store})"
    except TimeoutError as error:
        # The first handshake got through: what it showed still counts.
        return False, f"not evaluated: the verifying handshake: {error}"
    except (ssl.SSLError, HandshakeFailed) as error:
        return False, f"verifying handshake failed: {first_line(error)}"
    return True, f"chain verifies (trusting {store})"


async def _legacy_refused(
    config: TlsConfig, server_name: str, deadline: Deadline
) -> tuple[bool, str]:
    """Whether a handshake offering only TLS 1.0/1.1 is refused.

    When our own OpenSSL declines to offer them the check fails as "not
    evaluated" rather than passing on a refusal the server never made.
    """
    if not (ssl.HAS_TLSv1 or ssl.HAS_TLSv1_1):
        return False, "not evaluated: this OpenSSL cannot offer TLS 1.0/1.1"
    context = _liberal_context(config.tls_config, legacy_only=True)
    try:
        shown = await _handshake(config, context, server_name, deadline)
    except ssl.SSLError as error:
        if error.reason in _LOCAL_REFUSALS:
            return False, f"not evaluated: this OpenSSL refused ({error.reason})"
        return True, f"refused ({error.reason or 'handshake failed'})"
    except HandshakeFailed:
        return True, "refused (connection closed during the handshake)"
    except TimeoutError as error:
        # A server that leaves an old handshake unanswered has not accepted
        # it, but has not refused it either.
        return False, f"not evaluated: the TLS 1.0/1.1 handshake: {error}"
    return False, f"server accepted {shown.version}"


async def _handshake(
    config: TlsConfig, context: ssl.SSLContext, server_name: str, deadline: Deadline
) -> Handshake:
    """Connect, do STARTTLS if configured, handshake, read, and close."""
    async with _tls_connection(config, context, server_name, deadline) as (
        ssl_object,
        took,
    ):
        return Handshake(
            version=ssl_object.version() or "unknown",
            chain=presented_chain(ssl_object),
            seconds=took,
        )


@contextlib.asynccontextmanager
async def _tls_connection(
    config: TlsConfig, context: ssl.SSLContext, server_name: str, deadline: Deadline
) -> AsyncIterator[tuple[ssl.SSLObject, float]]:
    try:
        async with asyncio.timeout_at(deadline.loop_time()):
            reader, writer = await asyncio.open_connection(config.host, config.port)
    except TimeoutError:
        raise TimeoutError(f"connect: no answer within {deadline.budget:g}s") from None
    try:
        if config.starttls == "postgres":
            await _postgres_ssl_request(reader, writer, deadline)
        started = time.perf_counter()
        try:
            # Our own timer, not asyncio's ssl_handshake_timeout, which ends
            # a slow handshake as ConnectionAbortedError, read as tls.
            async with asyncio.timeout_at(deadline.loop_time()):
                await writer.start_tls(
                    context,
                    server_hostname=server_name,
                    ssl_handshake_timeout=deadline.timeout + 1.0,
                )
        except TimeoutError:
            raise TimeoutError(
                f"TLS handshake: no answer within {deadline.budget:g}s"
            ) from None
        except ssl.SSLError:
            raise
        except OSError as error:
            raise HandshakeFailed(
                f"TLS handshake failed: {first_line(error)}"
            ) from error
        took = time.perf_counter() - started
        yield writer.get_extra_info("ssl_object"), took
    finally:
        await close_stream(writer, deadline)


async def _postgres_ssl_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: Deadline
) -> None:
    """Ask a PostgreSQL server to switch to TLS; it answers one byte."""
    writer.write(POSTGRES_SSL_REQUEST)
    try:
        async with asyncio.timeout_at(deadline.loop_time()):
            await writer.drain()
            answer = await reader.readexactly(1)
    except TimeoutError:
        raise TimeoutError(
            f"SSLRequest: no answer within {deadline.budget:g}s"
        ) from None
    except asyncio.IncompleteReadError:
        raise ProtocolError(
            "the server closed the connection instead of answering the SSLRequest"
        ) from None
    if answer == b"N":
        raise ProbeError(
            "the PostgreSQL server does not offer TLS (answered N to SSLRequest)",
            reason=Reason.TLS,
        )
    if answer != b"S":
        raise ProtocolError(f"unexpected answer {answer!r} to the SSLRequest")
