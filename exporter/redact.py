"""Keep secrets out of logs, labels and the status page."""

from __future__ import annotations

import re

# scheme://user:password@host -> scheme://user:***@host. The password may
# hold an unescaped `/` (base64) or `@`: everything up to the last `@` before
# a space goes, which may take more than the password (an `@` in the path),
# never less.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)\S*@")
# password=secret / password: secret, as in libpq key=value DSNs and errors,
# also under a prefix: access_token=, client_secret=, PGPASSWORD=; a JSON key
# in double quotes. Not `'password':`, which is how messages name a field.
_KEY_VALUE = re.compile(
    r"(?P<key>\b\w*?(?:password|passwd|pwd|secret|token|api[_-]?key)\b\"?\s*[=:]\s*)"
    r"(?P<quote>['\"]?)[^\s'\"&;,]+(?P=quote)",
    re.IGNORECASE,
)
# Authorization: Bearer <token> / Basic <base64>
_AUTH_SCHEME = re.compile(r"(?P<scheme>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """*text* with passwords in URLs, key=value pairs and Authorization
    values replaced by ***."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    text = _AUTH_SCHEME.sub(r"\g<scheme>***", text)
    return _KEY_VALUE.sub(r"\g<key>***", text)
