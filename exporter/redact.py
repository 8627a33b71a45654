"""Keep secrets out of logs, labels and the status page."""

from __future__ import annotations

import re

# scheme://user:password@host -> scheme://user:***@host; greedy up to the
# last @ before the path, in case the password holds an unescaped @.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^\s/?#]*@")
# password=secret / password: secret, as in libpq key=value DSNs and errors
_KEY_VALUE = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key)\b[\"']?\s*[=:]\s*)"
    r"(?P<quote>['\"]?)[^\s'\"&;,]+(?P=quote)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """*text* with passwords in URLs and key=value pairs replaced by ***."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEY_VALUE.sub(r"\g<key>***", text)
