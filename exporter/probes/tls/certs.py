"""Certificates for the tls probe: parsing, PEM files on disk, hostnames, dates.

Nothing here touches the network; the package's `__init__.py` does the
handshakes and hands the DER chain over. Every certificate becomes two
samples, whatever its state:

    readiness_tls_cert_not_after_timestamp_seconds{probe="web",cn="example.com",
        issuer_cn="R11",serial="4a1f...",position="0"} 1.7789e+09
    readiness_tls_cert_not_before_timestamp_seconds{probe="pki",cn="root",
        issuer_cn="root",serial="1",position="2",file="/etc/ssl/x.pem"} 1.6e+09
"""

from __future__ import annotations

import glob
import ipaddress
import os
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from exporter.probes.base import ProtocolError, Sample, TargetConfigError

NOT_AFTER = "tls_cert_not_after_timestamp_seconds"
NOT_BEFORE = "tls_cert_not_before_timestamp_seconds"
CERT_LABELS = ("cn", "issuer_cn", "serial", "position", "file")

# A PEM bundle of the whole Mozilla store is about 200 KiB; anything far
# bigger is not a certificate file and must not be read into memory.
MAX_FILE_BYTES = 4 * 1024 * 1024
_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class CertInfo:
    """One certificate with where it was found (position in chain or file)."""

    cert: x509.Certificate
    position: int
    file: str | None = None

    @property
    def not_before(self) -> float:
        return self.cert.not_valid_before_utc.timestamp()

    @property
    def not_after(self) -> float:
        return self.cert.not_valid_after_utc.timestamp()

    def labels(self) -> dict[str, str]:
        """Metric labels: a few certificates, so the values stay bounded."""
        labels = {
            "cn": _common_name(self.cert.subject),
            "issuer_cn": _common_name(self.cert.issuer),
            "serial": format(self.cert.serial_number, "x"),
            "position": str(self.position),
        }
        if self.file is not None:
            labels["file"] = self.file
        return labels


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        return ""
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def cert_samples(certs: Iterable[CertInfo]) -> list[Sample]:
    """not_after and not_before of every certificate, expired ones included."""
    samples = []
    for info in certs:
        labels = info.labels()
        samples.append(Sample.of(NOT_AFTER, info.not_after, **labels))
        samples.append(Sample.of(NOT_BEFORE, info.not_before, **labels))
    return samples


# --- the presented chain -------------------------------------------------------


def parse_chain(ders: Sequence[bytes]) -> list[CertInfo]:
    """The DER certificates a server presented, leaf first."""
    certs = []
    for position, der in enumerate(ders):
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise ProtocolError(
                f"certificate {position} of the presented chain is not valid X.509"
            ) from None
        certs.append(CertInfo(cert, position))
    return certs


def presented_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The DER chain the peer sent, leaf first, verified or not.

    Public `get_unverified_chain()` from Python 3.13; the same method on the
    private `_sslobj` before that; the leaf alone if neither exists.
    """
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(
            getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None
        )
    chain = getter() if getter is not None else None
    if chain:
        return [_der(item) for item in chain]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _der(item: object) -> bytes:
    if isinstance(item, bytes):
        return item
    # Python 3.11/3.12 hand out _ssl.Certificate objects; PEM is their default.
    pem = item.public_bytes()  # type: ignore[attr-defined]
    return ssl.PEM_cert_to_DER_cert(pem)


# --- files on disk ---------------------------------------------------------------


def load_files(patterns: Sequence[str]) -> list[CertInfo]:
    """Every certificate of every file the globs match (blocking I/O)."""
    certs: list[CertInfo] = []
    for path in matching_files(patterns):
        certs.extend(read_bundle(path))
    return certs


def matching_files(patterns: Sequence[str]) -> list[str]:
    """The regular files the globs match, sorted, each file once.

    A glob that matches nothing is a config error rather than a failing
    check: the probe cannot judge certificates it cannot find, and a path
    that silently stops matching (a renamed secret mount) must be loud.
    """
    found: set[str] = set()
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        matches = [
            path for path in glob.glob(expanded, recursive=True) if os.path.isfile(path)
        ]
        if not matches:
            raise TargetConfigError(f"files: {pattern!r} matches no file")
        found.update(matches)
    return sorted(found)


def read_bundle(path: str) -> list[CertInfo]:
    """The certificates of one PEM file, in file order (position 0 first)."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise TargetConfigError(
            f"cannot read {path}: {error.strerror or type(error).__name__}"
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise ProtocolError(f"{path} is over {MAX_FILE_BYTES} bytes: not a PEM file")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ProtocolError(
            f"{path} holds no readable PEM certificate (garbage or a corrupt block)"
        ) from None
    return [CertInfo(cert, position, path) for position, cert in enumerate(certs)]


# --- hostname ---------------------------------------------------------------------


def names_of(cert: x509.Certificate) -> list[str]:
    """DNS names and IP addresses the certificate is for (CN if no SAN)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        # OpenSSL (and so Python's ssl) falls back to the CN without a SAN.
        common_name = _common_name(cert.subject)
        return [common_name] if common_name else []
    except ValueError:  # a malformed extension block names nobody
        return []
    dns_names = san.value.get_values_for_type(x509.DNSName)
    addresses = san.value.get_values_for_type(x509.IPAddress)
    return [*dns_names, *(str(address) for address in addresses)]


def hostname_matches(cert: x509.Certificate, hostname: str) -> bool:
    """Whether *hostname* (a DNS name or an IP) is one the cert is for.

    RFC 6125 rules as OpenSSL applies them: exact, case-insensitive names; a
    wildcard only as the whole leftmost label and for exactly one label; IP
    addresses only against IP entries.
    """
    names = names_of(cert)
    wanted_ip = _as_ip(hostname)
    if wanted_ip is not None:
        return any(_as_ip(name) == wanted_ip for name in names)
    wanted = hostname.rstrip(".").lower()
    return any(_dns_match(name.rstrip(".").lower(), wanted) for name in names)


def _as_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _dns_match(pattern: str, hostname: str) -> bool:
    if pattern.startswith("*."):
        head, _, rest = hostname.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == hostname


# --- dates ------------------------------------------------------------------------


def _date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _where(info: CertInfo) -> str:
    return f"{info.file}: " if info.file else ""


def validity_problem(info: CertInfo, now: float) -> str | None:
    """Why the cert is not valid at *now*, or None when it is."""
    if now < info.not_before:
        return f"not valid before {_date(info.not_before)}"
    if now > info.not_after:
        days = (now - info.not_after) / _DAY
        return f"expired {_date(info.not_after)} ({days:.1f} days ago)"
    return None


def expiry_problem(info: CertInfo, now: float, min_days: float) -> str | None:
    """Why the cert expires within *min_days*, or None when it does not."""
    days = (info.not_after - now) / _DAY
    if days > min_days:
        return None
    if days < 0:
        return f"expired {_date(info.not_after)} ({-days:.1f} days ago)"
    return f"expires {_date(info.not_after)} (in {days:.1f} days, limit {min_days:g})"


def judge_leaves(
    leaves: Sequence[CertInfo], problem: Callable[[CertInfo], str | None]
) -> tuple[bool, str]:
    """One verdict over the leaves: pass only if no leaf has a problem.

    The detail names the failing files (file form) so a person knows which
    one to renew; passing details name the leaf that expires first.
    """
    problems = [f"{_where(leaf)}{text}" for leaf in leaves if (text := problem(leaf))]
    if problems:
        count = f"{len(problems)} of {len(leaves)} files: " if len(leaves) > 1 else ""
        return False, count + "; ".join(problems)
    first = min(leaves, key=lambda leaf: leaf.not_after)
    scope = f"{len(leaves)} leaves, earliest " if len(leaves) > 1 else "leaf "
    return True, f"{scope}{_where(first)}valid until {_date(first.not_after)}"
