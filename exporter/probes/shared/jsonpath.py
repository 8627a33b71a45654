"""A small JSONPath subset and conditions on it, shared by http and workers.

Paths: `$.status`, `$.dependencies[*].status`, `$.workers[0].id`,
`$['odd key'].x`; the leading `$` is optional (`memory.rss` is relative to
whatever it is applied to). `[*]` fans out over a list or over a mapping's
members, so a path yields a list of matches; `locate` also says where each
match is (`$.dependencies.redis`) and, for a mapping's members, its key:

    locate('$.queues[*]', {"queues": {"pdf": {...}}})
    -> [Match(where="$.queues.pdf", value={...}, key="pdf")]

Conditions: `PATH OP VALUE` with OP one of `== != < <= > >= in`, VALUE a JSON
literal (`"up"`, `3`, `true`, `null`, `["a", "b"]`), or `PATH exists`. With
several matches every one must hold, and no match fails (except `exists`).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_STEP = re.compile(
    r"""\.(?P<name>[A-Za-z_$@-][\w$@-]*)      # .name
      | \[(?P<index>-?\d+)\]                  # [0]
      | \[(?P<star>\*)\]|\.\*                 # [*] or .*
      | \[(?P<quote>['"])(?P<key>.*?)(?P=quote)\]   # ['key']
    """,
    re.VERBOSE,
)

_WILDCARD = object()


_PLAIN_KEY = re.compile(r"^[A-Za-z_$@-][\w$@-]*$")


def _step_text(key: str | int) -> str:
    if isinstance(key, int):
        return f"[{key}]"
    return f".{key}" if _PLAIN_KEY.match(key) else f"[{json.dumps(key)}]"


@dataclass(frozen=True, slots=True)
class Match:
    """One value a path reached: where it is, and the mapping key it was
    fanned out from by the path's last `[*]` (None when that was a list)."""

    where: str
    value: Any
    key: str | None = None


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A compiled path; `find(document)` lists what it matches."""

    text: str
    steps: tuple[str | int | object, ...]

    def find(self, document: Any) -> list[Any]:
        """Every value the path reaches in *document* (may be empty)."""
        current = [document]
        for step in self.steps:
            following: list[Any] = []
            for value in current:
                if step is _WILDCARD:
                    if isinstance(value, list):
                        following.extend(value)
                    elif isinstance(value, dict):
                        following.extend(value.values())
                elif isinstance(step, int):
                    if isinstance(value, list) and -len(value) <= step < len(value):
                        following.append(value[step])
                elif isinstance(value, dict) and step in value:
                    following.append(value[step])
            current = following
        return current

    def locate(self, document: Any) -> list[Match]:
        """Every value the path reaches, with where it is."""
        current = [Match("$", document)]
        for step in self.steps:
            following: list[Match] = []
            for match in current:
                following.extend(_follow(match, step))
            current = following
        return current

    def __str__(self) -> str:
        return self.text


def _follow(match: Match, step: str | int | object) -> list[Match]:
    value = match.value
    if step is _WILDCARD:
        if isinstance(value, list):
            return [
                Match(match.where + f"[{index}]", item)
                for index, item in enumerate(value)
            ]
        if isinstance(value, dict):
            return [
                Match(match.where + _step_text(key), item, key)
                for key, item in value.items()
            ]
        return []
    if isinstance(step, int):
        if isinstance(value, list) and -len(value) <= step < len(value):
            index = step % len(value)
            return [Match(match.where + f"[{index}]", value[step], match.key)]
        return []
    if isinstance(value, dict) and isinstance(step, str) and step in value:
        return [Match(match.where + _step_text(step), value[step], match.key)]
    return []


def compile_path(text: str) -> JsonPath:
    """Compile *text*; raise ValueError naming the part that is wrong."""
    source = text.strip()
    rest = source[1:] if source.startswith("$") else source
    if rest and not rest.startswith((".", "[")):
        rest = "." + rest
    steps: list[str | int | object] = []
    position = 0
    while position < len(rest):
        match = _STEP.match(rest, position)
        if match is None:
            raise ValueError(
                f"invalid JSON path {text!r} at {rest[position:]!r}:"
                " use $.a.b, $.list[0], $.list[*].field or $['key']"
            )
        if match.group("name") is not None:
            steps.append(match.group("name"))
        elif match.group("index") is not None:
            steps.append(int(match.group("index")))
        elif match.group("key") is not None:
            steps.append(match.group("key"))
        else:
            steps.append(_WILDCARD)
        position = match.end()
    return JsonPath(source, tuple(steps))


def _contains(value: Any, options: Any) -> bool:
    return isinstance(options, list) and any(_same(value, o) for o in options)


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(value: Any, limit: Any) -> bool:
        numbers = (int, float)
        if isinstance(value, bool) or not isinstance(value, numbers):
            return False
        if isinstance(limit, bool) or not isinstance(limit, numbers):
            return False
        return compare(value, limit)

    return check


def _same(value: Any, expected: Any) -> bool:
    # JSON true is not 1, and 1 is 1.0: compare like with like.
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    return bool(value == expected)


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": _same,
    "!=": lambda value, expected: not _same(value, expected),
    "<=": _ordered(operator.le),
    ">=": _ordered(operator.ge),
    "<": _ordered(operator.lt),
    ">": _ordered(operator.gt),
    "in": _contains,
}

_CONDITION = re.compile(
    # The path: anything but spaces, or a quoted key that may hold spaces.
    r"^\s*(?P<path>(?:\[(?P<q>['\"]).*?(?P=q)\]|[^\s\[]|\[[^'\"\]]*\])+)"
    r"\s+(?:(?P<exists>exists)|(?P<op>==|!=|<=|>=|<|>|in)\s+(?P<value>.+?))\s*$"
)


def _shown(value: Any, limit: int = 40) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _keys(value: Any, limit: int = 5) -> str:
    keys = sorted(str(key) for key in value)[:limit]
    more = ", ..." if len(value) > limit else ""
    return ", ".join(keys) + more


def missing(path: JsonPath, document: Any) -> str:
    """Why *path* reaches nothing in *document*: the first step that fails."""
    current = [Match("$", document)]
    for step in path.steps:
        following = [found for match in current for found in _follow(match, step)]
        if not following:
            where = current[0].where if len(current) == 1 else str(path)
            value = current[0].value
            if step is _WILDCARD:
                return f"{where} has no members"
            if isinstance(step, int):
                size = len(value) if isinstance(value, list) else 0
                return f"{where} has no [{step}] ({size} items)"
            if len(current) == 1 and isinstance(value, dict):
                return f"{where} has no key {_shown(step)} (keys: {_keys(value)})"
            if len(current) == 1:
                kind = "list" if isinstance(value, list) else _json_type(value)
                return f"{where} is a {kind}, not an object with {_shown(step)}"
            return f"no match of {path} has the key {_shown(step)}"
        current = following
    return f"{path} not found"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


@dataclass(frozen=True, slots=True)
class Condition:
    """`PATH OP VALUE` or `PATH exists`, checked against a JSON document."""

    text: str
    path: JsonPath
    op: str
    value: Any = None

    def evaluate(self, document: Any) -> tuple[bool, str]:
        """Whether *document* satisfies the condition, and why not: the
        matches that fail it, each by where it is (`$.dependencies.redis`)."""
        found = self.path.locate(document)
        if not found:
            return False, missing(self.path, document)
        if self.op == "exists":
            return True, ""
        compare = _OPERATORS[self.op]
        failing = [m for m in found if not compare(m.value, self.value)]
        if not failing:
            return True, ""
        wanted = f"wanted {self.op} {_shown(self.value, 60)}"
        shown = [f"{m.where} is {_shown(m.value)}" for m in failing[:3]]
        if len(failing) == 1:
            return False, f"{shown[0]}, {wanted}"
        more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
        return False, (
            f"{len(failing)} of {len(found)} fail: {', '.join(shown)}{more}; {wanted}"
        )

    def __str__(self) -> str:
        return self.text


# `body` as CEL names the reply (not `$.body`, a reply's own field), the
# boolean operators and the macros.
_CEL_HINT = re.compile(
    r"(?<![\w.$\[\]])body\b|&&|\|\||\.(all|exists|exists_one|filter|map)\("
)


def _as_cel(text: str) -> str:
    """*text* as the CEL condition it looks like (paths read from `body`)."""
    return re.sub(r"(?<![\w.\]])\$(?=[.\[])", "body", text.strip())


def _cel_path(path: str) -> str:
    path = path.strip()
    if re.match(r"body\b", path):  # already CEL's name for the reply
        return path
    if path.startswith("$"):
        return "body" + path[1:]
    return "body" + (path if path.startswith("[") else "." + path)


_BARE_PATH = re.compile(r"^\$|^[A-Za-z_][\w-]*(?:[.\[]|$)")


def parse_condition(text: str) -> Condition:
    """Parse *text*; raise ValueError saying what a condition looks like."""
    match = _CONDITION.match(text)
    # Strings may hold anything: look for CEL outside them.
    looks_like_cel = _CEL_HINT.search(re.sub(r"\"[^\"]*\"|'[^']*'", '""', text))
    if match is None or looks_like_cel:
        if looks_like_cel:
            raise ValueError(
                f"invalid condition {text!r}: this looks like a CEL expression;"
                f" write it under `cel:` (- cel: {_as_cel(text)!r}), since a"
                " plain condition is PATH OP VALUE (a reply's own field named"
                " body is $.body)"
            )
        raise ValueError(
            f"invalid condition {text!r}: write PATH OP VALUE"
            " (OP one of == != < <= > >= in, VALUE JSON, e.g. $.status =="
            ' "healthy") or PATH exists; for more, use `cel:`'
        )
    path = compile_path(match.group("path"))
    if match.group("exists"):
        return Condition(text, path, "exists")
    raw = match.group("value")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        op = match.group("op")
        cel = f"{_cel_path(match.group('path'))} {op} {_cel_path(raw)}"
        plain_word = re.fullmatch(r"[A-Za-z_][\w-]*", raw.strip()) is not None
        if raw.strip().startswith("$") or (
            _BARE_PATH.match(raw.strip())
            and not (plain_word and op in ("==", "!=", "in"))
        ):
            # Two paths: a comparison of fields, which CEL does; quoting
            # would compare with a string and always fail.
            raise ValueError(
                f"invalid condition {text!r}: {raw!r} is a path, and a plain"
                " condition compares a path with a JSON value; to compare two"
                f" fields write a CEL condition: - cel: '{cel}'"
            ) from None
        if plain_word:
            raise ValueError(
                f"invalid condition {text!r}: {raw!r} is not a JSON value: quote"
                f' a string ("{raw.strip()}"), or compare with the field'
                f" {raw.strip()} in CEL: - cel: '{cel}'"
            ) from None
        raise ValueError(
            f"invalid condition {text!r}: {raw!r} is not a JSON value"
            ' (quote strings: "up")'
        ) from None
    if match.group("op") == "in" and not isinstance(value, list):
        raise ValueError(
            f'invalid condition {text!r}: `in` needs a JSON list, e.g. ["up", "ok"]'
        )
    return Condition(text, path, match.group("op"), value)
