"""The tls probe against real asyncio TLS servers on 127.0.0.1 (trustme certs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from exporter.config import ConfigError, parse_config
from exporter.kinds import config_adapter
from exporter.probes.base import Check, ProbeResult, Reason, TargetConfigError
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.tls import (
    POSTGRES_SSL_REQUEST,
    TlsConfig,
    _liberal_context,
    _verify_context,
    plan,
)
from exporter.probes.tls_certs import hostname_matches, presented_chain
from exporter.probes.tlsclient import client_context
from exporter.runner import run_probe

NOW = datetime.now(UTC)
NAMES = ("localhost", "127.0.0.1")
ALL_ENDPOINT_CHECKS = {
    "cert_valid_now",
    "cert_expiry_30d",
    "cert_expiry_7d",
    "chain_verifies",
    "hostname_matches",
    "tls_version_min",
    "legacy_tls_refused",
}


# --- helpers ------------------------------------------------------------------


def issue(
    ca: trustme.CA,
    *names: str,
    valid_from: timedelta = timedelta(days=-1),
    valid_until: timedelta = timedelta(days=90),
) -> trustme.LeafCert:
    return ca.issue_cert(
        *(names or NAMES),
        common_name=(names or NAMES)[0],
        not_before=NOW + valid_from,
        not_after=NOW + valid_until,
    )


def server_context(
    leaf: trustme.LeafCert,
    *,
    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    maximum: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = minimum
        if maximum is not None:
            context.maximum_version = maximum
    if minimum < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


async def _hold_until_eof(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    with contextlib.suppress(Exception):
        await reader.read()
    writer.close()


@contextlib.asynccontextmanager
async def serve(
    context: ssl.SSLContext | None,
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any] = (
        _hold_until_eof
    ),
) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def tls_config(**fields: Any) -> TlsConfig:
    raw = {"kind": "tls", "name": "t", "timeout": 3, "interval": 30, **fields}
    config = config_adapter().validate_python(raw)
    assert isinstance(config, TlsConfig)
    return config


async def run(**fields: Any) -> ProbeResult:
    config = tls_config(**fields)
    return await run_probe(config, ProbeContext("t", SharedResources()))


def checks_of(result: ProbeResult) -> dict[str, Check]:
    return {check.name: check for check in result.checks}


def failing(result: ProbeResult) -> set[str]:
    return {check.name for check in result.checks if not check.passed}


def certs_of(result: ProbeResult, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(sample.labels), sample.value)
        for sample in result.samples
        if sample.name == name
    ]


def cert_of(leaf: trustme.LeafCert) -> x509.Certificate:
    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- endpoint: one case per kind of certificate ---------------------------------

LEAF_CASES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "valid_90_days": ({}, set()),
    "expires_in_25_days": (
        {"valid_until": timedelta(days=25)},
        {"cert_expiry_30d"},
    ),
    "expires_in_5_days": (
        {"valid_until": timedelta(days=5)},
        {"cert_expiry_30d", "cert_expiry_7d"},
    ),
    "expired": (
        {"valid_from": timedelta(days=-60), "valid_until": timedelta(days=-1)},
        {"cert_valid_now", "cert_expiry_30d", "cert_expiry_7d", "chain_verifies"},
    ),
    "not_yet_valid": (
        {"valid_from": timedelta(days=1), "valid_until": timedelta(days=90)},
        {"cert_valid_now", "chain_verifies"},
    ),
}


@pytest.mark.parametrize("case", sorted(LEAF_CASES))
async def test_every_leaf_is_exported_and_judged(
    case: str, ca: trustme.CA, ca_file: Path
) -> None:
    validity, expected_failures = LEAF_CASES[case]
    leaf = issue(ca, **validity)
    async with serve(server_context(leaf)) as port:
        result = await run(
            host="127.0.0.1", port=port, server_name="localhost", ca_file=str(ca_file)
        )

    assert failing(result) == expected_failures, checks_of(result)
    assert set(checks_of(result)) == ALL_ENDPOINT_CHECKS
    # The metrics are there whatever the verdict, expired leaf included.
    cert = cert_of(leaf)
    [(labels, not_after)] = certs_of(result, "tls_cert_not_after_timestamp_seconds")
    assert labels == {
        "cn": "localhost",
        "issuer_cn": "",  # trustme CAs carry no CN
        "serial": format(cert.serial_number, "x"),
        "position": "0",
    }
    assert not_after == cert.not_valid_after_utc.timestamp()
    [(_, not_before)] = certs_of(result, "tls_cert_not_before_timestamp_seconds")
    assert not_before == cert.not_valid_before_utc.timestamp()
    [(version, _)] = certs_of(result, "tls_version_info")
    assert version == {"version": "TLSv1.3"}
    [(_, handshake)] = certs_of(result, "tls_handshake_seconds")
    assert 0 < handshake < 3
    critical = {"cert_valid_now", "cert_expiry_7d", "chain_verifies"}
    assert result.reason == (Reason.CHECK if expected_failures & critical else None)


async def test_expiry_thresholds_are_configurable(
    ca: trustme.CA, ca_file: Path
) -> None:
    leaf = issue(ca, valid_until=timedelta(days=25))
    async with serve(server_context(leaf)) as port:
        result = await run(
            host="127.0.0.1",
            port=port,
            ca_file=str(ca_file),
            warn_days=20,
            critical_days=3,
        )
    assert failing(result) == set()
    assert "valid until" in checks_of(result)["cert_expiry_30d"].detail


async def test_expiry_detail_says_when(ca: trustme.CA, ca_file: Path) -> None:
    leaf = issue(ca, valid_until=timedelta(days=5))
    async with serve(server_context(leaf)) as port:
        result = await run(host="127.0.0.1", port=port, ca_file=str(ca_file))
    detail = checks_of(result)["cert_expiry_7d"].detail
    assert "in 4.9 days" in detail or "in 5.0 days" in detail, detail


async def test_wrong_host_fails_only_hostname(ca: trustme.CA, ca_file: Path) -> None:
    leaf = issue(ca, "other.example")
    async with serve(server_context(leaf)) as port:
        result = await run(
            host="127.0.0.1", port=port, server_name="localhost", ca_file=str(ca_file)
        )
    assert failing(result) == {"hostname_matches"}
    detail = checks_of(result)["hostname_matches"].detail
    assert detail == "leaf is for other.example, not localhost"
    assert result.reason is Reason.CHECK
    assert certs_of(result, "tls_cert_not_after_timestamp_seconds")


async def test_server_name_defaults_to_host(ca: trustme.CA, ca_file: Path) -> None:
    leaf = issue(ca, "localhost")  # no IP entry, so host 127.0.0.1 must not match
    async with serve(server_context(leaf)) as port:
        result = await run(host="127.0.0.1", port=port, ca_file=str(ca_file))
    assert failing(result) == {"hostname_matches"}
    assert checks_of(result)["hostname_matches"].detail.endswith("not 127.0.0.1")


async def test_unknown_ca_fails_only_chain(ca: trustme.CA, ca_file: Path) -> None:
    leaf = issue(trustme.CA())
    async with serve(server_context(leaf)) as port:
        result = await run(host="127.0.0.1", port=port, ca_file=str(ca_file))
    assert failing(result) == {"chain_verifies"}
    detail = checks_of(result)["chain_verifies"].detail
    assert "unable to get local issuer certificate" in detail, detail
    assert str(ca_file) in detail
    assert len(certs_of(result, "tls_cert_not_after_timestamp_seconds")) == 1


async def test_system_store_does_not_trust_a_private_ca(ca: trustme.CA) -> None:
    async with serve(server_context(issue(ca))) as port:
        result = await run(host="127.0.0.1", port=port)
    assert failing(result) == {"chain_verifies"}
    assert "the system store" in checks_of(result)["chain_verifies"].detail


async def test_whole_presented_chain_in_order(ca: trustme.CA, ca_file: Path) -> None:
    intermediate = ca.create_child_ca()
    leaf = issue(intermediate)
    async with serve(server_context(leaf)) as port:
        result = await run(host="127.0.0.1", port=port, ca_file=str(ca_file))
    assert failing(result) == set()
    served = [x509.load_pem_x509_certificate(p.bytes()) for p in leaf.cert_chain_pems]
    assert len(served) == 2
    exported = certs_of(result, "tls_cert_not_after_timestamp_seconds")
    assert [(labels["position"], labels["serial"]) for labels, _ in exported] == [
        ("0", format(served[0].serial_number, "x")),
        ("1", format(served[1].serial_number, "x")),
    ]


async def test_missing_ca_file_is_a_config_failure(
    ca: trustme.CA, tmp_path: Path
) -> None:
    async with serve(server_context(issue(ca))) as port:
        result = await run(
            host="127.0.0.1", port=port, ca_file=str(tmp_path / "missing.pem")
        )
    assert result.reason is Reason.CONFIG
    assert "missing.pem" in result.error


# --- TLS versions ---------------------------------------------------------------


async def _tls10_unavailable(port: int) -> str | None:
    """Why this machine's OpenSSL cannot do TLS 1.0, or None if it can."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("ALL:@SECLEVEL=0")
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    except (ValueError, OSError) as error:
        return f"{ssl.OPENSSL_VERSION} cannot negotiate TLS 1.0 at @SECLEVEL=0: {error}"
    writer.close()
    return None


async def test_server_requiring_tls12_refuses_legacy(
    ca: trustme.CA, ca_file: Path
) -> None:
    context = server_context(issue(ca), minimum=ssl.TLSVersion.TLSv1_2)
    async with serve(context) as port:
        result = await run(host="127.0.0.1", port=port, ca_file=str(ca_file))
    legacy = checks_of(result)["legacy_tls_refused"]
    assert legacy.passed, legacy.detail
    assert legacy.detail.startswith("refused")


async def test_server_allowing_tls10_fails_legacy_check(
    ca: trustme.CA, ca_file: Path
) -> None:
    context = server_context(issue(ca), minimum=ssl.TLSVersion.TLSv1)
    async with serve(context) as port:
        unavailable = await _tls10_unavailable(port)
        if unavailable:
            pytest.skip(unavailable)
        result = await run(host="127.0.0.1", port=port, ca_file=str(ca_file))
    assert failing(result) == {"legacy_tls_refused"}
    assert checks_of(result)["legacy_tls_refused"].detail.startswith(
        "server accepted TLSv1"
    )
    assert result.success  # a warning check does not fail the probe


async def test_legacy_only_server_fails_version_min(
    ca: trustme.CA, ca_file: Path
) -> None:
    context = server_context(
        issue(ca), minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1
    )
    async with serve(context) as port:
        unavailable = await _tls10_unavailable(port)
        if unavailable:
            pytest.skip(unavailable)
        result = await run(host="127.0.0.1", port=port, ca_file=str(ca_file))
    assert failing(result) == {"tls_version_min", "legacy_tls_refused"}
    assert checks_of(result)["tls_version_min"].detail == "negotiated TLSv1.1"
    assert certs_of(result, "tls_version_info") == [({"version": "TLSv1.1"}, 1.0)]


async def test_legacy_check_can_be_turned_off(ca: trustme.CA, ca_file: Path) -> None:
    async with serve(server_context(issue(ca))) as port:
        result = await run(
            host="127.0.0.1",
            port=port,
            ca_file=str(ca_file),
            check_legacy_tls=False,
        )
    assert set(checks_of(result)) == ALL_ENDPOINT_CHECKS - {"legacy_tls_refused"}


# --- STARTTLS postgres ------------------------------------------------------------


def fake_postgres(
    context: ssl.SSLContext, answer: bytes, received: list[bytes]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # The client aborts some handshakes on purpose (verification).
        with contextlib.suppress(Exception):
            received.append(await reader.readexactly(8))
            writer.write(answer)
            await writer.drain()
            if answer == b"S":
                await writer.start_tls(context)
                await reader.read()
        writer.close()

    return handle


async def test_starttls_postgres(ca: trustme.CA, ca_file: Path) -> None:
    received: list[bytes] = []
    handler = fake_postgres(server_context(issue(ca)), b"S", received)
    async with serve(None, handler) as port:
        result = await run(
            host="127.0.0.1",
            port=port,
            server_name="localhost",
            ca_file=str(ca_file),
            starttls="postgres",
        )
    assert failing(result) == set(), checks_of(result)
    assert received[0] == b"\x00\x00\x00\x08\x04\xd2\x16\x2f" == POSTGRES_SSL_REQUEST
    assert len(received) == 3  # chain, verification, legacy handshakes
    assert len(certs_of(result, "tls_cert_not_after_timestamp_seconds")) == 1


async def test_starttls_postgres_without_tls(ca: trustme.CA) -> None:
    handler = fake_postgres(server_context(issue(ca)), b"N", [])
    async with serve(None, handler) as port:
        result = await run(host="127.0.0.1", port=port, starttls="postgres")
    assert result.reason is Reason.TLS
    assert "answered N" in result.error


async def test_starttls_postgres_garbage_answer(ca: trustme.CA) -> None:
    handler = fake_postgres(server_context(issue(ca)), b"E", [])
    async with serve(None, handler) as port:
        result = await run(host="127.0.0.1", port=port, starttls="postgres")
    assert result.reason is Reason.PROTOCOL


# --- unreachable, silent, not TLS ---------------------------------------------------


async def test_unreachable_is_connect() -> None:
    result = await run(host="127.0.0.1", port=free_port())
    assert result.reason is Reason.CONNECT
    assert not any(check.passed for check in result.checks)
    assert result.samples == ()


async def test_silent_server_is_timeout() -> None:
    async with serve(None) as port:  # accepts TCP, never answers the hello
        result = await run(host="127.0.0.1", port=port, timeout=0.5)
    assert result.reason is Reason.TIMEOUT
    assert result.duration_seconds < 3  # finished within the probe timeout


async def test_plain_text_server_is_tls_failure() -> None:
    async def answer_http(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        writer.close()

    async with serve(None, answer_http) as port:
        result = await run(host="127.0.0.1", port=port)
    assert result.reason is Reason.TLS, result.error


# --- shared client contexts ------------------------------------------------------


def _touch_later(path: Path) -> None:
    """Move *path*'s mtime a second on, as a rewrite by a rotation would."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_client_context_is_shared_until_the_ca_file_changes(ca_file: Path) -> None:
    first = client_context(ca_file=ca_file)
    assert client_context(ca_file=ca_file) is first
    insecure = client_context(ca_file=ca_file, insecure_skip_verify=True)
    assert insecure is not first
    assert insecure.verify_mode is ssl.CERT_NONE
    assert first.verify_mode is ssl.CERT_REQUIRED
    _touch_later(ca_file)
    rotated = client_context(ca_file=ca_file)
    assert rotated is not first
    assert client_context(ca_file=ca_file) is rotated


def test_client_context_with_a_bad_file_is_a_config_error(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(TargetConfigError, match="cannot load ca_file"):
        client_context(ca_file=garbage)
    with pytest.raises(TargetConfigError, match="cannot read ca_file"):
        client_context(ca_file=tmp_path / "missing.pem")


async def test_runs_reuse_the_verifying_context(ca: trustme.CA, ca_file: Path) -> None:
    ctx = ProbeContext("t", SharedResources())
    async with serve(server_context(issue(ca))) as port:
        config = tls_config(host="127.0.0.1", port=port, ca_file=str(ca_file))
        first = await run_probe(config, ctx)
        used = _verify_context(config)
        second = await run_probe(config, ctx)
        assert _verify_context(config) is used
        _touch_later(ca_file)
        third = await run_probe(config, ctx)
        assert _verify_context(config) is not used
    assert first.success and second.success and third.success, third.error
    assert _liberal_context() is _liberal_context()
    assert _liberal_context(legacy_only=True) is not _liberal_context()


# --- file form ---------------------------------------------------------------------


def write_pems(path: Path, *blobs: trustme.Blob) -> Path:
    path.write_bytes(b"".join(blob.bytes() for blob in blobs))
    return path


async def test_files_export_every_cert_and_name_the_bad_file(
    ca: trustme.CA, tmp_path: Path
) -> None:
    intermediate = ca.create_child_ca()
    good = issue(intermediate)
    expired = issue(ca, valid_from=timedelta(days=-60), valid_until=timedelta(days=-2))
    write_pems(tmp_path / "full.pem", *good.cert_chain_pems, ca.cert_pem)
    write_pems(tmp_path / "old.pem", *expired.cert_chain_pems)
    write_pems(tmp_path / "key.txt", good.private_key_pem)  # not matched

    result = await run(files=[str(tmp_path / "*.pem")])

    assert set(checks_of(result)) == {
        "cert_valid_now",
        "cert_expiry_30d",
        "cert_expiry_7d",
    }
    assert failing(result) == {"cert_valid_now", "cert_expiry_30d", "cert_expiry_7d"}
    detail = checks_of(result)["cert_valid_now"].detail
    assert detail.startswith(f"1 of 2 files: {tmp_path / 'old.pem'}: expired"), detail
    exported = certs_of(result, "tls_cert_not_after_timestamp_seconds")
    assert [(labels["file"], labels["position"]) for labels, _ in exported] == [
        (str(tmp_path / "full.pem"), "0"),
        (str(tmp_path / "full.pem"), "1"),
        (str(tmp_path / "full.pem"), "2"),
        (str(tmp_path / "old.pem"), "0"),
    ]
    assert result.reason is Reason.CHECK


async def test_files_all_healthy(ca: trustme.CA, tmp_path: Path) -> None:
    leaf = issue(ca, valid_until=timedelta(days=60))
    write_pems(tmp_path / "a.pem", *leaf.cert_chain_pems)
    write_pems(tmp_path / "b.pem", *issue(ca).cert_chain_pems)
    result = await run(files=[str(tmp_path / "a.pem"), str(tmp_path / "*.pem")])
    assert failing(result) == set()
    assert result.success
    assert len(certs_of(result, "tls_cert_not_before_timestamp_seconds")) == 2
    detail = checks_of(result)["cert_expiry_30d"].detail
    assert detail.startswith(f"2 leaves, earliest {tmp_path / 'a.pem'}"), detail


async def test_glob_matching_nothing_is_config(tmp_path: Path) -> None:
    result = await run(files=[str(tmp_path / "*.pem")])
    assert result.reason is Reason.CONFIG
    assert "matches no file" in result.error
    assert not any(check.passed for check in result.checks)


async def test_garbage_pem_is_protocol(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n")
    result = await run(files=[str(tmp_path / "bad.pem")])
    assert result.reason is Reason.PROTOCOL
    assert "bad.pem holds no readable PEM certificate" in result.error


async def test_key_only_file_is_protocol(ca: trustme.CA, tmp_path: Path) -> None:
    write_pems(tmp_path / "key.pem", issue(ca).private_key_pem)
    result = await run(files=[str(tmp_path / "key.pem")])
    assert result.reason is Reason.PROTOCOL


# --- config -------------------------------------------------------------------------


def config_problems(body: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config("probes:\n  - kind: tls\n    name: t\n" + body)
    return "\n".join(info.value.problems)


def test_config_needs_exactly_one_form() -> None:
    both = config_problems("    host: example.com\n    files: [/etc/x.pem]\n")
    assert "not both" in both
    neither = config_problems("    warn_days: 10\n")
    assert "set `host` (probe a TLS endpoint) or `files`" in neither


def test_config_rejects_endpoint_fields_on_files() -> None:
    problems = config_problems("    files: [/etc/x.pem]\n    port: 8443\n")
    assert "port only apply with `host`" in problems
    assert "at least" not in problems
    empty = config_problems("    files: []\n")
    assert "`files` needs one or more" in empty


def test_config_thresholds_in_order() -> None:
    problems = config_problems(
        "    host: example.com\n    warn_days: 5\n    critical_days: 10\n"
    )
    assert "critical_days (10) must not exceed warn_days (5)" in problems


def test_config_defaults_and_plan() -> None:
    config = parse_config(
        "probes:\n  - kind: tls\n    name: t\n    host: example.com\n"
    ).probes[0]
    assert isinstance(config, TlsConfig)
    assert (config.port, config.warn_days, config.critical_days) == (443, 30, 7)
    assert {spec.name for spec in plan(config)} == ALL_ENDPOINT_CHECKS
    files = tls_config(files=["/x.pem"])
    assert [spec.name for spec in plan(files)] == [
        "cert_valid_now",
        "cert_expiry_30d",
        "cert_expiry_7d",
    ]


# --- hostname rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "hostname", "expected"),
    [
        ("*.example.com", "www.example.com", True),
        ("*.example.com", "WWW.Example.COM.", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("example.com", "example.com", True),
        ("10.0.0.1", "10.0.0.1", True),
        ("10.0.0.1", "10.0.0.2", False),
        ("::1", "[::1]", True),
    ],
)
def test_hostname_rules(
    ca: trustme.CA, identity: str, hostname: str, expected: bool
) -> None:
    cert = cert_of(ca.issue_cert(identity))
    assert hostname_matches(cert, hostname) is expected


# --- where the chain comes from on other Pythons -----------------------------------


class _PublicChain:  # Python >= 3.13: DER bytes from a public method
    def __init__(self, chain: list[bytes]) -> None:
        self.chain = chain

    def get_unverified_chain(self) -> list[bytes]:
        return self.chain

    def getpeercert(self, binary_form: bool) -> bytes:
        raise AssertionError("the leaf-only fallback must not be used")


class _LeafOnly:  # neither method: the leaf alone
    def __init__(self, leaf: bytes) -> None:
        self.leaf = leaf

    def getpeercert(self, binary_form: bool) -> bytes:
        assert binary_form
        return self.leaf


def test_presented_chain_fallbacks(ca: trustme.CA) -> None:
    ders = [
        x509.load_pem_x509_certificate(pem.bytes()).public_bytes(Encoding.DER)
        for pem in ca.create_child_ca().issue_cert("a.example").cert_chain_pems
    ]
    assert presented_chain(_PublicChain(ders)) == ders  # type: ignore[arg-type]
    assert presented_chain(_LeafOnly(ders[0])) == ders[:1]  # type: ignore[arg-type]
