"""Throwaway redis-server processes for tests, from the installed binary.

`RedisServer.start()` runs `redis-server` in the foreground (no daemonize) in a
fresh temp dir, on a free port of 127.0.0.1, with RDB snapshots off, and
optionally a TLS port with a trustme certificate for 127.0.0.1. The system
service on 127.0.0.1:6379 is never touched.

    server = RedisServer.start(tls=True)
    server.url()                      # redis://127.0.0.1:PORT/0
    server.admin().config_set("maxmemory", "64mb")
    server.set_password("s3cret")     # CONFIG SET requirepass, remembered
    server.look_up(hits=90, misses=10)  # another client's key lookups
    server.kill(); server.restart()   # SIGKILL, then the same port again
    server.destroy()
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import trustme

REDIS_SERVER = "/usr/bin/redis-server"


class BinaryMissing(RuntimeError):
    """redis-server is not installed; the caller should skip, loudly."""


def find_binary() -> str:
    """Path of redis-server: Debian's location first, then PATH."""
    if Path(REDIS_SERVER).exists():
        return REDIS_SERVER
    found = shutil.which("redis-server")
    if found is None:
        raise BinaryMissing(
            "redis-server not found at /usr/bin/redis-server or on PATH;"
            " install the redis-server package to run these tests"
        )
    return found


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """A running (or killed) redis-server and how to reach it."""

    binary: str
    base_dir: Path
    port: int
    extra_args: tuple[str, ...]
    tls_port: int | None = None
    ca: trustme.CA | None = None
    password: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(cls, *extra_args: str, tls: bool = False) -> RedisServer:
        """Start a server; *extra_args* go to redis-server as given."""
        base_dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        server = cls(find_binary(), base_dir, free_port(), tuple(extra_args))
        if tls:
            server.ca = trustme.CA()
            cert = server.ca.issue_cert("127.0.0.1", "localhost")
            cert.private_key_pem.write_to_path(str(base_dir / "key.pem"))
            cert.cert_chain_pems[0].write_to_path(str(base_dir / "cert.pem"))
            server.ca.cert_pem.write_to_path(str(server.ca_file))
            server.tls_port = free_port()
        try:
            server.restart()
        except BaseException:
            server.destroy()
            raise
        return server

    @property
    def ca_file(self) -> Path:
        return self.base_dir / "ca.pem"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def _argv(self) -> list[str]:
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.base_dir),
            "--logfile", str(self.log_file),
        ]  # fmt: skip
        if self.tls_port is not None:
            argv += [
                "--tls-port", str(self.tls_port),
                "--tls-cert-file", str(self.base_dir / "cert.pem"),
                "--tls-key-file", str(self.base_dir / "key.pem"),
                "--tls-ca-cert-file", str(self.ca_file),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        if self.password is not None:
            argv += ["--requirepass", self.password]
        return argv + list(self.extra_args)

    def restart(self) -> None:
        """Start the process on the same port(s) and wait until it answers."""
        self.process = subprocess.Popen(
            self._argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log_file.read_text() if self.log_file.exists() else ""
                raise RuntimeError(f"redis-server exited: {log[-2000:]}")
            if self._answers():
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer within 10 s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.5) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def destroy(self) -> None:
        """Kill the process and delete every file of the server."""
        try:
            self.kill()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def url(self, password: str | None = None, *, tls: bool = False) -> str:
        """A redis:// (or rediss:// to the TLS port) URL, with *password*."""
        auth = f":{password}@" if password is not None else ""
        if tls:
            return f"rediss://{auth}127.0.0.1:{self.tls_port}/0"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def admin(self) -> redis.Redis:
        """A plain client with the current password, RESP2, no retries."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            protocol=2,
            decode_responses=True,
            socket_timeout=5,
            single_connection_client=True,
        )

    def command(self, *args: str | int) -> Any:
        """Run one command on a short-lived admin connection."""
        with contextlib.closing(self.admin()) as admin:
            return admin.execute_command(*args)

    def look_up(self, hits: int, misses: int) -> None:
        """Another client's traffic: *hits* GETs of a key that exists and
        *misses* of one that does not, in one pipeline (the SET that makes
        the key is a write, which the keyspace counters leave out)."""
        with contextlib.closing(self.admin()) as admin:
            admin.set("present", "value")
            pipe = admin.pipeline(transaction=False)
            for _ in range(hits):
                pipe.get("present")
            for _ in range(misses):
                pipe.get("absent")
            pipe.execute()

    def set_password(self, password: str | None) -> None:
        """CONFIG SET requirepass (None removes it) and remember it."""
        self.command("CONFIG", "SET", "requirepass", password or "")
        self.password = password

    def reset(self) -> None:
        """Back to the defaults of `start()`: no data, stats, password, limits,
        client certificates."""
        self.set_password(None)
        with contextlib.closing(self.admin()) as admin:
            admin.execute_command("REPLICAOF", "NO", "ONE")
            for name, value in {
                "maxmemory": "0",
                "maxmemory-policy": "noeviction",
                "appendonly": "no",
                "save": "",
                "maxclients": "10000",
                "replica-serve-stale-data": "yes",
                "tls-auth-clients": "no",
                "tls-protocols": "TLSv1.2 TLSv1.3",
            }.items():
                admin.execute_command("CONFIG", "SET", name, value)
            for user in admin.execute_command("ACL", "USERS"):
                if user != "default":
                    admin.execute_command("ACL", "DELUSER", user)
            admin.execute_command("FLUSHALL")
            admin.execute_command("CONFIG", "RESETSTAT")
            # A test that failed half-way may have left a probe connected.
            admin.execute_command("CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal")

    def clients(self) -> list[dict[str, str]]:
        """CLIENT LIST of everyone but the admin connection asking."""
        with contextlib.closing(self.admin()) as admin:
            me = str(admin.execute_command("CLIENT", "ID"))
            listing = str(admin.execute_command("CLIENT", "LIST"))
        clients = [
            dict(part.split("=", 1) for part in line.split(" ") if "=" in part)
            for line in listing.splitlines()
        ]
        return [client for client in clients if client.get("id") != me]
