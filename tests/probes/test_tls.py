"""The tls probe against real asyncio TLS servers on 127.0.0.1 (trustme certs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
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

from exporter.kinds import PROBES
from exporter.probes.base import (
    Category,
    ProbeResult,
    Reason,
    Severity,
    TargetConfigError,
)
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.shared.tls import TlsClientConfig, client_context
from exporter.probes.tls import (
    POSTGRES_SSL_REQUEST,
    _liberal_context,
    _verify_context,
)
from exporter.probes.tls.certs import hostname_matches, presented_chain
from tests.conftest import free_port
from tests.helpers import (
    config_problems,
    detail,
    eventually,
    failing,
    probe_config,
    run_once,
    sample,
    samples_of,
    verdicts,
)

NOW = datetime.now(UTC)
NAMES = ("localhost", "127.0.0.1")
ALL_ENDPOINT_CHECKS = {
    "cert_valid_now",
    "cert_expiry_warning",
    "cert_expiry_critical",
    "chain_verifies",
    "hostname_matches",
    "tls_version_min",
    "legacy_tls_refused",
}
FILE_CHECKS = {"cert_valid_now", "cert_expiry_warning", "cert_expiry_critical"}
NOT_AFTER = "tls_cert_not_after_timestamp_seconds"
NOT_BEFORE = "tls_cert_not_before_timestamp_seconds"


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


def tls_probe(**fields: Any) -> Any:
    """A tls probe config with this module's usual timeout."""
    return probe_config("tls", name="t", **{"timeout": 3, "interval": 30, **fields})


async def run(**fields: Any) -> ProbeResult:
    return await run_once(tls_probe(**fields))


def trusting(ca_file: Path, **fields: str) -> dict[str, str]:
    """A `tls_config` block trusting *ca_file*."""
    return {"ca_file": str(ca_file), **fields}


def certs_of(result: ProbeResult, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample *name* as (labels, value), in the order exported."""
    return [(dict(labels), value) for labels, value in samples_of(result, name).items()]


def cert_of(leaf: trustme.LeafCert) -> x509.Certificate:
    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())


# --- endpoint: one case per kind of certificate ---------------------------------

LEAF_CASES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "valid_90_days": ({}, set()),
    "expires_in_25_days": (
        {"valid_until": timedelta(days=25)},
        {"cert_expiry_warning"},
    ),
    "expires_in_5_days": (
        {"valid_until": timedelta(days=5)},
        {"cert_expiry_warning", "cert_expiry_critical"},
    ),
    "expired": (
        {"valid_from": timedelta(days=-60), "valid_until": timedelta(days=-1)},
        {
            "cert_valid_now",
            "cert_expiry_warning",
            "cert_expiry_critical",
            "chain_verifies",
        },
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
            host="127.0.0.1",
            port=port,
            tls_config=trusting(ca_file, server_name="localhost"),
        )

    assert failing(result) == expected_failures, result.checks
    assert set(verdicts(result)) == ALL_ENDPOINT_CHECKS
    # The metrics are there whatever the verdict, expired leaf included.
    cert = cert_of(leaf)
    [(labels, not_after)] = certs_of(result, NOT_AFTER)
    assert labels == {
        "cn": "localhost",
        "issuer_cn": "",  # trustme CAs carry no CN
        "serial": format(cert.serial_number, "x"),
        "position": "0",
    }
    assert not_after == cert.not_valid_after_utc.timestamp()
    [(_, not_before)] = certs_of(result, NOT_BEFORE)
    assert not_before == cert.not_valid_before_utc.timestamp()
    assert samples_of(result, "tls_version_info") == {(("version", "TLSv1.3"),): 1}
    handshake = sample(result, "tls_handshake_seconds")
    assert handshake is not None and 0 < handshake < 3  # within the timeout
    critical = {"cert_valid_now", "cert_expiry_critical", "chain_verifies"}
    assert result.reason == (Reason.CHECK if expected_failures & critical else None)


async def test_expiry_thresholds_are_configurable(
    ca: trustme.CA, ca_file: Path
) -> None:
    leaf = issue(ca, valid_until=timedelta(days=25))
    async with serve(server_context(leaf)) as port:
        result = await run(
            host="127.0.0.1",
            port=port,
            tls_config=trusting(ca_file),
            days_left_min_warning=20,
            days_left_min_critical=3,
        )
    assert failing(result) == set()
    assert "valid until" in detail(result, "cert_expiry_warning")


async def test_expiry_detail_says_when(ca: trustme.CA, ca_file: Path) -> None:
    leaf = issue(ca, valid_until=timedelta(days=5))
    async with serve(server_context(leaf)) as port:
        result = await run(host="127.0.0.1", port=port, tls_config=trusting(ca_file))
    text = detail(result, "cert_expiry_critical")
    assert "in 4.9 days" in text or "in 5.0 days" in text, text


async def test_wrong_host_fails_only_hostname(ca: trustme.CA, ca_file: Path) -> None:
    leaf = issue(ca, "other.example")
    async with serve(server_context(leaf)) as port:
        result = await run(
            host="127.0.0.1",
            port=port,
            tls_config=trusting(ca_file, server_name="localhost"),
        )
    assert failing(result) == {"hostname_matches"}
    assert detail(result, "hostname_matches") == (
        "leaf is for other.example, not localhost"
    )
    assert result.reason is Reason.CHECK
    assert certs_of(result, NOT_AFTER)


async def test_server_name_defaults_to_host(ca: trustme.CA, ca_file: Path) -> None:
    leaf = issue(ca, "localhost")  # no IP entry, so host 127.0.0.1 must not match
    async with serve(server_context(leaf)) as port:
        result = await run(host="127.0.0.1", port=port, tls_config=trusting(ca_file))
    assert failing(result) == {"hostname_matches"}
    assert detail(result, "hostname_matches").endswith("not 127.0.0.1")


async def test_unknown_ca_fails_only_chain(ca: trustme.CA, ca_file: Path) -> None:
    leaf = issue(trustme.CA())
    async with serve(server_context(leaf)) as port:
        result = await run(host="127.0.0.1", port=port, tls_config=trusting(ca_file))
    assert failing(result) == {"chain_verifies"}
    text = detail(result, "chain_verifies")
    assert "unable to get local issuer certificate" in text, text
    assert str(ca_file) in text
    assert len(certs_of(result, NOT_AFTER)) == 1


async def test_system_store_does_not_trust_a_private_ca(ca: trustme.CA) -> None:
    async with serve(server_context(issue(ca))) as port:
        result = await run(host="127.0.0.1", port=port)
    assert failing(result) == {"chain_verifies"}
    assert "the system store" in detail(result, "chain_verifies")


async def test_whole_presented_chain_in_order(ca: trustme.CA, ca_file: Path) -> None:
    intermediate = ca.create_child_ca()
    leaf = issue(intermediate)
    async with serve(server_context(leaf)) as port:
        result = await run(host="127.0.0.1", port=port, tls_config=trusting(ca_file))
    assert failing(result) == set()
    served = [x509.load_pem_x509_certificate(p.bytes()) for p in leaf.cert_chain_pems]
    assert len(served) == 2
    exported = certs_of(result, NOT_AFTER)
    assert [(labels["position"], labels["serial"]) for labels, _ in exported] == [
        ("0", format(served[0].serial_number, "x")),
        ("1", format(served[1].serial_number, "x")),
    ]


async def test_missing_ca_file_is_a_config_failure(
    ca: trustme.CA, tmp_path: Path
) -> None:
    async with serve(server_context(issue(ca))) as port:
        result = await run(
            host="127.0.0.1",
            port=port,
            tls_config={"ca_file": str(tmp_path / "missing.pem")},
        )
    assert result.reason is Reason.CONFIG
    assert "missing.pem" in result.error


async def test_thresholds_name_the_limit_not_the_check(
    ca: trustme.CA, ca_file: Path
) -> None:
    # The check names stay true whatever the limits: 90 days left is below
    # a 100-day warning limit, and above a 60-day critical one.
    async with serve(server_context(issue(ca))) as port:
        result = await run(
            host="127.0.0.1",
            port=port,
            tls_config=trusting(ca_file, server_name="localhost"),
            days_left_min_warning=100,
            days_left_min_critical=60,
        )
    assert failing(result) == {"cert_expiry_warning"}
    assert "limit 100" in detail(result, "cert_expiry_warning")
    assert result.success  # a warning


async def test_override_by_the_new_check_name(ca: trustme.CA, ca_file: Path) -> None:
    async with serve(server_context(issue(ca, valid_until=timedelta(days=25)))) as port:
        result = await run(
            host="127.0.0.1",
            port=port,
            tls_config=trusting(ca_file, server_name="localhost"),
            checks={"cert_expiry_warning": {"severity": "critical"}},
        )
    assert failing(result) == {"cert_expiry_warning"}
    assert result.reason is Reason.CHECK
    assert result.error == "failed: cert_expiry_warning"


# --- client certificates (tls_config.cert_file / key_file) ----------------------


def requiring_client_cert(
    ca: trustme.CA, *, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A server context that accepts only clients with a certificate of *ca*."""
    context = server_context(issue(ca), maximum=maximum)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@contextlib.asynccontextmanager
async def serve_recording_clients(
    context: ssl.SSLContext,
) -> AsyncIterator[tuple[int, list[str]]]:
    """*context*'s server; the list gets the client certificate's common
    name of every handshake the server completed."""
    clients: list[str] = []

    async def record(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peercert") or {}
        subject = dict(pair for rdn in peer.get("subject", ()) for pair in rdn)
        clients.append(subject.get("commonName", ""))
        await _hold_until_eof(reader, writer)

    async with serve(context, record) as port:
        yield port, clients


def client_certificate(ca: trustme.CA, directory: Path) -> dict[str, str]:
    """The cert_file and key_file of a client certificate issued by *ca*."""
    client = ca.issue_cert("probe.example", common_name="probe.example")
    cert, key = directory / "client.pem", directory / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    return {"cert_file": str(cert), "key_file": str(key)}


@pytest.mark.parametrize("maximum", [None, ssl.TLSVersion.TLSv1_2], ids=["1.3", "1.2"])
async def test_client_certificate_gets_the_handshake_through(
    ca: trustme.CA, ca_file: Path, tmp_path: Path, maximum: ssl.TLSVersion | None
) -> None:
    context = requiring_client_cert(ca, maximum=maximum)
    mine = client_certificate(ca, tmp_path)
    async with serve_recording_clients(context) as (port, clients):
        result = await run(
            host="127.0.0.1",
            port=port,
            tls_config=trusting(ca_file, server_name="localhost", **mine),
        )
        # The chain's and the verifying handshake; the legacy one is refused.
        await eventually(lambda: len(clients) == 2)
    assert failing(result) == set(), result.checks
    assert verdicts(result)["chain_verifies"]
    assert clients == ["probe.example", "probe.example"]


async def test_without_a_client_certificate_the_handshake_fails(
    ca: trustme.CA, ca_file: Path
) -> None:
    # TLS 1.2: the client certificate is part of the handshake. (In TLS 1.3
    # the server refuses after the client's side of the handshake is done,
    # so the probe, which sends nothing, judges the chain it was shown.)
    context = requiring_client_cert(ca, maximum=ssl.TLSVersion.TLSv1_2)
    async with serve_recording_clients(context) as (port, clients):
        result = await run(
            host="127.0.0.1",
            port=port,
            tls_config=trusting(ca_file, server_name="localhost"),
        )
    assert result.reason is Reason.TLS, result.error
    assert failing(result) == ALL_ENDPOINT_CHECKS
    assert clients == []


async def test_an_unreadable_client_key_is_a_config_failure(
    ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    mine = client_certificate(ca, tmp_path)
    Path(mine["key_file"]).write_text("not a key")
    async with serve(server_context(issue(ca))) as port:
        result = await run(
            host="127.0.0.1",
            port=port,
            tls_config=trusting(ca_file, server_name="localhost", **mine),
        )
    assert result.reason is Reason.CONFIG
    assert "tls_config.cert_file/key_file" in result.error


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
        result = await run(host="127.0.0.1", port=port, tls_config=trusting(ca_file))
    assert verdicts(result)["legacy_tls_refused"], result.checks
    assert detail(result, "legacy_tls_refused").startswith("refused")


async def test_server_allowing_tls10_fails_legacy_check(
    ca: trustme.CA, ca_file: Path
) -> None:
    context = server_context(issue(ca), minimum=ssl.TLSVersion.TLSv1)
    async with serve(context) as port:
        unavailable = await _tls10_unavailable(port)
        if unavailable:
            pytest.skip(unavailable)
        result = await run(host="127.0.0.1", port=port, tls_config=trusting(ca_file))
    assert failing(result) == {"legacy_tls_refused"}
    assert detail(result, "legacy_tls_refused").startswith("server accepted TLSv1")
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
        result = await run(host="127.0.0.1", port=port, tls_config=trusting(ca_file))
    assert failing(result) == {"tls_version_min", "legacy_tls_refused"}
    assert detail(result, "tls_version_min") == "negotiated TLSv1.1"
    assert certs_of(result, "tls_version_info") == [({"version": "TLSv1.1"}, 1.0)]


async def test_legacy_check_can_be_turned_off(ca: trustme.CA, ca_file: Path) -> None:
    async with serve(server_context(issue(ca))) as port:
        result = await run(
            host="127.0.0.1",
            port=port,
            tls_config=trusting(ca_file),
            check_legacy_tls=False,
        )
    assert set(verdicts(result)) == ALL_ENDPOINT_CHECKS - {"legacy_tls_refused"}


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
            tls_config=trusting(ca_file, server_name="localhost"),
            starttls="postgres",
        )
    assert failing(result) == set(), result.checks
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


async def test_a_server_silent_on_a_later_handshake_keeps_the_first_verdicts(
    ca: trustme.CA, ca_file: Path
) -> None:
    """Only the first of the run's handshakes is answered: the certificate
    it showed is still judged, and the handshakes that got no answer fail
    their own checks as not evaluated, instead of the whole run timing out."""
    tls = server_context(issue(ca))
    handshakes = 0

    async def first_only(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal handshakes
        handshakes += 1
        if handshakes == 1:
            await writer.start_tls(tls)
        await _hold_until_eof(reader, writer)

    async with serve(None, first_only) as port:
        result = await run(
            host="127.0.0.1",
            port=port,
            timeout=1,
            tls_config=trusting(ca_file, server_name=NAMES[0]),
        )
    checks = {c.name: c for c in result.checks}
    assert checks["cert_valid_now"].passed
    assert checks["hostname_matches"].passed
    assert not checks["chain_verifies"].passed
    assert "not evaluated: the verifying handshake: TLS handshake: no answer" in (
        checks["chain_verifies"].detail
    )
    assert result.reason is Reason.CHECK  # chain_verifies is critical


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
        config = tls_probe(host="127.0.0.1", port=port, tls_config=trusting(ca_file))
        first = await run_once(config, ctx=ctx)
        used = _verify_context(config.tls_config)
        second = await run_once(config, ctx=ctx)
        assert _verify_context(config.tls_config) is used
        _touch_later(ca_file)
        third = await run_once(config, ctx=ctx)
        assert _verify_context(config.tls_config) is not used
    assert first.success and second.success and third.success, third.error
    plain = TlsClientConfig()
    assert _liberal_context(plain) is _liberal_context(TlsClientConfig())
    assert _liberal_context(plain, legacy_only=True) is not _liberal_context(plain)


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

    assert set(verdicts(result)) == FILE_CHECKS
    assert failing(result) == FILE_CHECKS
    text = detail(result, "cert_valid_now")
    assert text.startswith(f"1 of 2 files: {tmp_path / 'old.pem'}: expired"), text
    exported = certs_of(result, NOT_AFTER)
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
    assert len(certs_of(result, NOT_BEFORE)) == 2
    text = detail(result, "cert_expiry_warning")
    assert text.startswith(f"2 leaves, earliest {tmp_path / 'a.pem'}"), text


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


def tls_problems(fields: str) -> str:
    """The config problems of one tls probe with *fields* (YAML flow style)."""
    return config_problems(f"- {{kind: tls, name: t, {fields}}}")


def test_config_needs_exactly_one_form() -> None:
    both = tls_problems("host: example.com, files: [/etc/x.pem]")
    assert "not both" in both
    neither = tls_problems("days_left_min_warning: 10")
    assert "set `host` (probe a TLS endpoint) or `files`" in neither


def test_config_rejects_endpoint_fields_on_files() -> None:
    problems = tls_problems("files: [/etc/x.pem], port: 8443")
    assert "port only apply with `host`" in problems
    assert "at least" not in problems
    tls = tls_problems("files: [/etc/x.pem], tls_config: {ca_file: /etc/ca.pem}")
    assert "tls_config only apply with `host`" in tls
    empty = tls_problems("files: []")
    assert "`files` needs one or more" in empty


def test_config_thresholds_in_order() -> None:
    problems = tls_problems(
        "host: example.com, days_left_min_warning: 5, days_left_min_critical: 10"
    )
    assert (
        "days_left_min_critical (10) must not exceed days_left_min_warning (5)"
        in problems
    )


def test_config_defaults_and_plan() -> None:
    config = tls_probe(host="example.com")
    assert (config.port, config.days_left_min_warning) == (443, 30)
    assert config.days_left_min_critical == 7
    assert config.tls_config == TlsClientConfig()
    assert {spec.name for spec in PROBES["tls"].plan(config)} == ALL_ENDPOINT_CHECKS
    files = tls_probe(files=["/x.pem"])
    assert [spec.name for spec in PROBES["tls"].plan(files)] == [
        "cert_valid_now",
        "cert_expiry_warning",
        "cert_expiry_critical",
    ]


@pytest.mark.parametrize(
    ("old", "value", "new"),
    [
        ("warn_days", "20", "days_left_min_warning"),
        ("critical_days", "3", "days_left_min_critical"),
        ("ca_file", "/etc/ca.pem", "tls_config.ca_file"),
        ("server_name", "example.com", "tls_config.server_name"),
    ],
)
def test_a_renamed_field_names_the_new_one(old: str, value: str, new: str) -> None:
    problems = tls_problems(f"host: example.com, {old}: {value}")
    assert f"field {old!r} is now {new!r} (renamed in 0.2.0" in problems


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("cert_expiry_30d", "cert_expiry_warning"),
        ("cert_expiry_7d", "cert_expiry_critical"),
    ],
)
def test_an_override_of_a_renamed_check_names_the_new_one(old: str, new: str) -> None:
    problems = tls_problems(f"host: example.com, checks: {{{old}: {{enabled: false}}}}")
    assert f"check {old!r} is now {new!r} (renamed in 0.2.0)" in problems


@pytest.mark.parametrize("field", ["insecure_skip_verify: true", "min_version: TLS13"])
def test_client_settings_that_would_judge_ourselves_are_refused(field: str) -> None:
    # This kind judges what the server offers; a client that skips
    # verification or narrows the versions would judge itself instead.
    problems = tls_problems(f"host: example.com, tls_config: {{{field}}}")
    name = field.split(":")[0]
    assert f"tls_config.{name}: not supported by the tls kind" in problems


# What `plan()` gave before checks became data (0.1.x, with the names of the
# time): the table must give the same checks, categories and severities for
# the same configs, only renamed.
FORMER_NAMES = {
    "cert_expiry_30d": "cert_expiry_warning",
    "cert_expiry_7d": "cert_expiry_critical",
}
_SEC = Category.SECURITY
FORMER_LEAF_PLAN = [
    ("cert_valid_now", _SEC, Severity.CRITICAL),
    ("cert_expiry_30d", _SEC, Severity.WARNING),
    ("cert_expiry_7d", _SEC, Severity.CRITICAL),
]
FORMER_ENDPOINT_PLAN = [
    *FORMER_LEAF_PLAN,
    ("chain_verifies", _SEC, Severity.CRITICAL),
    ("hostname_matches", _SEC, Severity.CRITICAL),
    ("tls_version_min", _SEC, Severity.WARNING),
]
FORMER_PLANS: dict[str, tuple[dict[str, Any], list[tuple[str, Category, Severity]]]] = {
    "endpoint": (
        {"host": "example.com"},
        [*FORMER_ENDPOINT_PLAN, ("legacy_tls_refused", _SEC, Severity.WARNING)],
    ),
    "endpoint, other thresholds": (
        {
            "host": "example.com",
            "days_left_min_warning": 14,
            "days_left_min_critical": 2,
            "tls_config": {"server_name": "www.example.com"},
        },
        [*FORMER_ENDPOINT_PLAN, ("legacy_tls_refused", _SEC, Severity.WARNING)],
    ),
    "endpoint, no legacy check": (
        {"host": "example.com", "check_legacy_tls": False},
        FORMER_ENDPOINT_PLAN,
    ),
    "files": ({"files": ["/etc/ssl/*.pem"]}, FORMER_LEAF_PLAN),
}


@pytest.mark.parametrize("case", sorted(FORMER_PLANS))
def test_the_checks_table_plans_what_plan_did(case: str) -> None:
    fields, former = FORMER_PLANS[case]
    planned = [
        (spec.name, spec.category, spec.severity)
        for spec in PROBES["tls"].plan(tls_probe(**fields))
    ]
    assert planned == [
        (FORMER_NAMES.get(name, name), category, severity)
        for name, category, severity in former
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
