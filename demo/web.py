"""The demo's web services: a healthy API, a frontend missing security
headers, and an HTTPS endpoint whose self-signed certificate expires in 20
days."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'",
}


def write_self_signed(directory: Path, days: int) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 valid *days* more."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "demo.localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "demo-cert.pem", directory / "demo-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _api(secure_headers: bool) -> web.Application:
    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        if secure_headers:
            response.headers.update(SECURITY_HEADERS)

    async def health(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "healthy",
                "dependencies": [
                    {"name": "database", "status": "up"},
                    {"name": "cache", "status": "up"},
                ],
            }
        )

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def index(request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>demo frontend</body></html>", content_type="text/html"
        )

    app = web.Application()
    app.on_response_prepare.append(add_headers)
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/health/ready", health)
    app.router.add_get("/health/live", live)
    return app


async def _serve(
    stack: contextlib.AsyncExitStack,
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()


async def start(
    stack: contextlib.AsyncExitStack,
    workdir: Path,
    host: str = "127.0.0.1",
    *,
    api_port: int = 18080,
    frontend_port: int = 18081,
    https_port: int = 18443,
) -> None:
    """The API, the frontend (no security headers) and the HTTPS endpoint."""
    await _serve(stack, _api(secure_headers=True), host, api_port)
    await _serve(stack, _api(secure_headers=False), host, frontend_port)
    cert, key = write_self_signed(workdir / "tls", days=20)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    await _serve(stack, _api(secure_headers=True), host, https_port, context)
