"""Secrets stay out of logs, labels, details and the status page."""

from __future__ import annotations

import pytest

from exporter.probes.base import Category, CheckDef, Checks, Severity, first_line
from exporter.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:s3cr3t@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        (
            "mongodb://u:p@ss@h1,h2/?authSource=admin",
            "mongodb://u:***@h1,h2/?authSource=admin",
        ),
        ("host=db password=abc user=u", "host=db password=*** user=u"),
        ('{"password": "hunter2", "user": "u"}', '{"password": ***, "user": "u"}'),
        ("token: abc123", "token: ***"),
        ("https://example.com/health", "https://example.com/health"),
        ("http://h:8080/path?x=1", "http://h:8080/path?x=1"),
        # A base64 password holds `/`.
        ("postgresql://app:ab/c+d=@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("?access_token=abc&x=1", "?access_token=***&x=1"),
        ("client_secret: s3", "client_secret: ***"),
        ("PGPASSWORD=s3cret psql", "PGPASSWORD=*** psql"),
        ("Authorization: Bearer eyJhbGciOi.J9", "Authorization: Bearer ***"),
        ("Authorization: Basic b3BzOnBhNTU=", "Authorization: Basic ***"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_check_details_are_redacted() -> None:
    checks = Checks([CheckDef("c", Category.DATA, Severity.INFO, "A check.")], None)
    checks.record("c", False, "cannot reach postgresql://app:s3cr3t@db/x")
    (check,) = checks.finish()
    assert "s3cr3t" not in check.detail


def test_a_long_error_is_redacted_before_it_is_cut() -> None:
    # The cut at 200 characters falls inside the password.
    error = ConnectionError("x" * 160 + " http://monitor:supersecretpassword@host/")
    assert "supers" not in first_line(error)
