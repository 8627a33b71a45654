"""Pydantic's validation errors as sentences a user can act on.

Pydantic names union branches and model classes in its locations and
messages (`security_headers.list[literal[...]][1]`, "Input should be a
valid dictionary or instance of ValueSpec"). A user wrote YAML, not Python:
a location is rebuilt from the keys that exist in what they wrote, one
error is kept per field (the branch that got furthest), and messages name
what was expected and what was found:

    field 'security_headers[1]': expected one of hsts, x_frame_options,
    x_content_type_options, csp, got 'bogus'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Loc = tuple[int | str, ...]


def field_path(loc: Loc) -> str:
    """`a.b[0].c` from a location."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts)


def _child(node: Any, part: int | str) -> tuple[bool, Any]:
    """Whether *node* has *part* (a key, or an index of a list), and it."""
    if isinstance(node, Mapping) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def user_location(loc: Sequence[int | str], data: Any, missing: bool) -> Loc:
    """The part of *loc* a user wrote: keys and indexes found in *data*,
    walked along; pydantic's union and validator tags (not in the data)
    dropped. The last part of a *missing* field is kept."""
    kept: list[int | str] = []
    node = data
    for position, part in enumerate(loc):
        found, child = _child(node, part)
        if found:
            kept.append(part)
            node = child
        elif missing and position == len(loc) - 1 and isinstance(part, str):
            kept.append(part)
    return tuple(kept)


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_LITERAL = re.compile(r"^Input should be (.+)$")
# Fields whose values may be secrets (or hold them, as URLs and headers do):
# a mistake there is told without the value, which would reach logs, the
# reload reply and the status page.
_SECRET_FIELD = re.compile(
    r"^(?:headers|url|.*_url|dsn|uri|endpoint|basic_auth)$"
    r"|password|secret|token|api_?key|access_key",
    re.IGNORECASE,
)


def _got(error: Mapping[str, Any]) -> str:
    """`, got <the value>`, unless the field may hold a secret."""
    if "input" not in error:
        return ""
    if any(
        isinstance(part, str) and _SECRET_FIELD.search(part)
        for part in error.get("loc", ())
    ):
        return ""
    return f", got {_shown(error['input'])}"


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    got = _got(error)
    if kind == "literal_error":
        options = str((error.get("ctx") or {}).get("expected", ""))
        options = options.replace("'", "").replace(" or ", ", ")
        return f"expected one of {options}{got}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping of fields (key: value){got}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list{got}"
    if kind == "bool_type" or kind == "bool_parsing":
        return f"expected true or false{got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number{got}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number{got}"
    if kind in ("string_type",):
        return f"expected a string{got}"
    bounds = {
        "less_than_equal": ("at most", "le"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "greater_than": ("more than", "gt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"expected {words} {(error.get('ctx') or {}).get(key)}{got}"
    if kind in ("too_short", "too_long"):
        ctx = error.get("ctx") or {}
        if kind == "too_short":
            least = ctx.get("min_length")
            return f"expected at least {least} item{'' if least == 1 else 's'}{got}"
        most = ctx.get("max_length")
        return f"expected at most {most} item{'' if most == 1 else 's'}{got}"
    if kind == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        shown = _got(error).removeprefix(", got ") or "the value"
        return f"{shown} does not match {pattern}"
    # Drop pydantic's own class names wherever they remain.
    message = re.sub(r" or instance of \w+", "", message)
    match = _LITERAL.match(message)
    if match and kind not in ("value_error", "assertion_error"):
        return f"expected {match.group(1)}{got}"
    return message


def describe(
    error: Mapping[str, Any], allowed: Iterable[str] = (), data: Any = None
) -> str:
    """One error as a sentence; *allowed* lists the fields of the model the
    error is about (for unknown fields), *data* is what the user wrote."""
    kind = error.get("type", "")
    loc = user_location(tuple(error.get("loc", ())), data, kind == "missing")
    where = f"field {field_path(loc)!r}: " if loc else ""
    if kind == "extra_forbidden":
        names = ", ".join(sorted(allowed))
        return f"unknown field {field_path(loc)!r}" + (
            f" (allowed: {names})" if names and len(loc) == 1 else ""
        )
    if kind == "missing":
        return f"{where}required field is missing"
    return f"{where}{_message(error)}"


def describe_all(
    errors: Sequence[Mapping[str, Any]], allowed: Iterable[str], data: Any
) -> list[str]:
    """Every error of one model, one sentence per field: of the union
    branches that failed for a field, the one that got furthest into what
    the user wrote speaks (`security_headers[1]`, not `security_headers`
    "expected true or false"); branches that failed at the same place are
    told as one ("expected true or false, or a list")."""
    allowed = list(allowed)
    located = [
        (user_location(tuple(e.get("loc", ())), data, e.get("type") == "missing"), e)
        for e in errors
    ]
    groups: dict[Loc, list[Mapping[str, Any]]] = {}
    for loc, error in located:
        deeper = any(
            other[: len(loc)] == loc and len(other) > len(loc) for other, _e in located
        )
        if deeper and error.get("type") not in ("value_error", "missing"):
            continue  # a branch that failed higher up than another did
        groups.setdefault(loc, []).append(error)
    sentences: list[str] = []
    for loc, group in groups.items():
        if len(group) == 1 or any(e.get("type") == "extra_forbidden" for e in group):
            sentences.extend(describe(e, allowed, data) for e in group)
            continue
        got = _got(group[0])
        wanted = [_message(e).removesuffix(got) for e in group]
        # "expected true or false, or a list", not "... or expected a list".
        wanted = wanted[:1] + [w.removeprefix("expected ") for w in wanted[1:]]
        where = f"field {field_path(loc)!r}: " if loc else ""
        sentences.append(where + ", or ".join(dict.fromkeys(wanted)) + got)
    return list(dict.fromkeys(sentences))
