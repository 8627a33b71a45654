"""A throwaway PostgreSQL cluster for tests, from the installed server binaries.

`start_cluster()` runs initdb into a fresh temp dir, writes a pg_hba.conf with
scram-sha-256 for TCP and trust for the unix socket (in the temp dir), turns
TLS on with a trustme certificate for 127.0.0.1/localhost, and starts the
server on a free port of 127.0.0.1. initdb refuses to run as root, so as root
every server command runs as the `postgres` user. The system service on
127.0.0.1:5432 is never touched.

    cluster = start_cluster(max_connections=8, superuser_reserved=2)
    cluster.dsn("app", "app-secret")  # postgresql://app:app-secret@127.0.0.1:PORT/postgres
    cluster.stop(); cluster.start(); cluster.destroy()
    standby = start_standby(cluster)  # a streaming replica, in recovery
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import trustme

SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "super-secret-pw"
_SERVER_USER = "postgres"  # the OS account that owns the cluster when we are root


class BinariesMissing(RuntimeError):
    """initdb/pg_ctl are not installed; the caller should skip, loudly."""


def find_bin_dir() -> Path:
    """Directory holding initdb and pg_ctl: PATH first, then Debian's layout."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (
            Path(candidate) / "pg_ctl"
        ).exists():
            return Path(candidate)
    raise BinariesMissing(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under"
        " /usr/lib/postgresql/*/bin; install postgresql-15 to run these tests"
    )


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", _SERVER_USER, "--", *argv]
    return argv


def _run_as_server_user(argv: list[str], what: str) -> None:
    completed = subprocess.run(
        _as_server_user(argv), capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed: {completed.stderr[-2000:]}")


def _chown_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, _SERVER_USER, _SERVER_USER)


@dataclass
class PostgresCluster:
    """A running throwaway cluster and how to reach it."""

    bin_dir: Path
    base_dir: Path
    port: int
    ca: trustme.CA
    max_connections: int
    superuser_reserved: int
    running: bool = field(default=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir

    @property
    def ca_file(self) -> Path:
        return self.base_dir / "ca.pem"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def dsn(
        self,
        user: str = SUPERUSER,
        password: str | None = SUPERUSER_PASSWORD,
        database: str = "postgres",
        **params: str,
    ) -> str:
        """A TCP DSN for *user*; *params* become the query string."""
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        query = f"?{urlencode(params)}" if params else ""
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}{query}"

    def admin_dsn(self) -> str:
        """Superuser over the unix socket (trust), plain text, no TLS."""
        return (
            f"postgresql://{SUPERUSER}@/postgres?host={self.socket_dir}"
            f"&port={self.port}"
        )

    def client(self, program: str, *args: str) -> bytes:
        """Run this installation's *program* (pg_dump, psql, ...) as the
        superuser over the unix socket; its standard output."""
        argv = [
            str(self.bin_dir / program),
            *("-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER),
            *args,
        ]
        completed = subprocess.run(
            _as_server_user(argv), capture_output=True, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"{program} failed: {completed.stderr.decode(errors='replace')[-2000:]}"
            )
        return completed.stdout

    def dump(self, target: Path, *args: str) -> None:
        """`pg_dump -f` of the postgres database into *target* (a file, or a
        directory with `-Fd`), which must not exist: written as the server
        user into a scratch directory, then copied."""
        scratch = Path(tempfile.mkdtemp(prefix="readiness-pg-dump-"))
        try:
            _chown_to_server_user(scratch)
            self.client("pg_dump", "-f", str(scratch / "dump"), *args, "postgres")
            if (scratch / "dump").is_dir():
                shutil.copytree(scratch / "dump", target)
            else:
                shutil.copy2(scratch / "dump", target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        argv = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args]
        completed = subprocess.run(
            _as_server_user(argv), capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"pg_ctl {' '.join(args)} failed: {completed.stderr}\n{log[-2000:]}"
            )

    def _postmaster_may_run(self) -> bool:
        # A `pg_ctl start` that timed out (or was interrupted) can leave the
        # postmaster up without `running` set; its pid file gives it away.
        return (self.data_dir / "postmaster.pid").exists()

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._pg_ctl("-l", str(self.log_file), "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast` disconnects clients, as in production)."""
        self._pg_ctl("-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def destroy(self) -> None:
        """Stop if running and delete every file of the cluster."""
        try:
            if self.running or self._postmaster_may_run():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _write_owned(path: Path, content: bytes, mode: int = 0o600) -> None:
    path.write_bytes(content)
    path.chmod(mode)
    _chown_to_server_user(path)


def _server_settings(cluster: PostgresCluster) -> str:
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(cluster.port),
        "unix_socket_directories": f"'{cluster.socket_dir}'",
        "max_connections": str(cluster.max_connections),
        "superuser_reserved_connections": str(cluster.superuser_reserved),
        "ssl": "on",
        "ssl_cert_file": f"'{cluster.base_dir / 'server.crt'}'",
        "ssl_key_file": f"'{cluster.base_dir / 'server.key'}'",
        # A test cluster: no durability, little memory, no background noise.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "16MB",
        "max_wal_senders": "2",  # for start_standby()
        "autovacuum": "off",
    }
    return "".join(f"{key} = {value}\n" for key, value in settings.items())


_PG_HBA = """\
local all all trust
local replication all trust
host all all 127.0.0.1/32 scram-sha-256
"""


def start_cluster(
    max_connections: int = 8, superuser_reserved: int = 2
) -> PostgresCluster:
    """initdb a new cluster in a temp dir and start it; the caller destroys it."""
    bin_dir = find_bin_dir()
    base_dir = Path(tempfile.mkdtemp(prefix="readiness-pg-"))
    base_dir.chmod(0o700)
    _chown_to_server_user(base_dir)
    ca = trustme.CA()
    cluster = PostgresCluster(
        bin_dir, base_dir, free_port(), ca, max_connections, superuser_reserved
    )
    try:
        _initdb(cluster)
        cluster.start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster


def _initdb(cluster: PostgresCluster) -> None:
    password_file = cluster.base_dir / "superuser.pw"
    _write_owned(password_file, SUPERUSER_PASSWORD.encode())
    argv = [
        str(cluster.bin_dir / "initdb"),
        "-D",
        str(cluster.data_dir),
        "-U",
        SUPERUSER,
        "--pwfile",
        str(password_file),
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
    ]
    _run_as_server_user(argv, "initdb")
    password_file.unlink()
    leaf = cluster.ca.issue_cert("127.0.0.1", "localhost")
    _write_owned(cluster.base_dir / "server.key", leaf.private_key_pem.bytes())
    _write_owned(
        cluster.base_dir / "server.crt",
        b"".join(pem.bytes() for pem in leaf.cert_chain_pems),
    )
    cluster.ca.cert_pem.write_to_path(str(cluster.ca_file))
    cluster.ca_file.chmod(0o644)
    (cluster.data_dir / "pg_hba.conf").write_text(_PG_HBA)
    with (cluster.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(_server_settings(cluster))


def start_standby(primary: PostgresCluster) -> PostgresCluster:
    """A streaming standby of *primary* (pg_basebackup -R) on its own port."""
    base_dir = Path(tempfile.mkdtemp(prefix="readiness-pg-standby-"))
    base_dir.chmod(0o700)
    _chown_to_server_user(base_dir)
    standby = PostgresCluster(
        primary.bin_dir,
        base_dir,
        free_port(),
        primary.ca,
        primary.max_connections,
        primary.superuser_reserved,
    )
    try:
        argv = [
            str(primary.bin_dir / "pg_basebackup"),
            *("-h", str(primary.socket_dir), "-p", str(primary.port)),
            *("-U", SUPERUSER, "-D", str(standby.data_dir), "-R", "--no-sync"),
        ]
        _run_as_server_user(argv, "pg_basebackup")
        with (standby.data_dir / "postgresql.conf").open("a") as conf:
            # Later lines win: the copy of the primary's file names its port.
            conf.write(f"port = {standby.port}\n")
            conf.write(f"unix_socket_directories = '{standby.socket_dir}'\n")
        standby.start()
    except BaseException:
        standby.destroy()
        raise
    return standby


@contextlib.contextmanager
def running_cluster(
    max_connections: int = 8, superuser_reserved: int = 2
) -> Iterator[PostgresCluster]:
    """`start_cluster()` as a context manager that always destroys it."""
    cluster = start_cluster(max_connections, superuser_reserved)
    try:
        yield cluster
    finally:
        cluster.destroy()
