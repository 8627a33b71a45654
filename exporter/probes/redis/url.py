"""The redis kind's URL: redis://[user[:password]@]host[:port][/db], or
rediss:// for TLS. Errors never repeat the URL, which may hold a password."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class Target:
    """The parts of a redis:// or rediss:// URL the probe uses."""

    host: str
    port: int
    db: int
    tls: bool
    username: str | None
    password: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """host:port, safe to show (no credentials)."""
        return f"{self.host}:{self.port}"


def parse_url(url: str) -> Target:
    """Split *url*; errors never repeat the URL, which may hold a password."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("url must start with redis:// or rediss:// (TLS)")
    if not parts.hostname:
        raise ValueError("url has no host; write redis://host:6379/0")
    if parts.query or parts.fragment:
        raise ValueError(
            "url query options are not supported; use the probe's fields"
            " (timeout, username, password, tls_config, ...)"
        )
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("url has an invalid port") from None
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError("the url path must be a database number, as in /0")
    return Target(
        host=parts.hostname,
        port=port,
        db=int(database or 0),
        tls=parts.scheme == "rediss",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
