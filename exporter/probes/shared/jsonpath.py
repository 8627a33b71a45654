"""A small JSONPath subset and conditions on it, shared by http and workers.

Paths: `$.status`, `$.dependencies[*].status`, `$.workers[0].id`,
`$['odd key'].x`; the leading `$` is optional (`memory.rss` is relative to
whatever it is applied to). `[*]` fans out over a list (or a mapping's
values), so a path yields a list of matches.

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

    def __str__(self) -> str:
        return self.text


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


@dataclass(frozen=True, slots=True)
class Condition:
    """`PATH OP VALUE` or `PATH exists`, checked against a JSON document."""

    text: str
    path: JsonPath
    op: str
    value: Any = None

    def evaluate(self, document: Any) -> tuple[bool, str]:
        """Whether *document* satisfies the condition, and why not."""
        found = self.path.find(document)
        if self.op == "exists":
            return bool(found), "" if found else f"{self.path} not found"
        if not found:
            return False, f"{self.path} not found"
        compare = _OPERATORS[self.op]
        for value in found:
            if not compare(value, self.value):
                shown = json.dumps(value)[:60]
                return False, f"{self.path} is {shown}, wanted {self.op} " + (
                    json.dumps(self.value)[:60]
                )
        return True, ""

    def __str__(self) -> str:
        return self.text


def parse_condition(text: str) -> Condition:
    """Parse *text*; raise ValueError saying what a condition looks like."""
    match = _CONDITION.match(text)
    if match is None:
        raise ValueError(
            f"invalid condition {text!r}: write PATH OP VALUE"
            " (OP one of == != < <= > >= in, VALUE JSON, e.g. $.status =="
            ' "healthy") or PATH exists'
        )
    path = compile_path(match.group("path"))
    if match.group("exists"):
        return Condition(text, path, "exists")
    raw = match.group("value")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError(
            f"invalid condition {text!r}: {raw!r} is not a JSON value"
            ' (quote strings: "up")'
        ) from None
    if match.group("op") == "in" and not isinstance(value, list):
        raise ValueError(
            f'invalid condition {text!r}: `in` needs a JSON list, e.g. ["up", "ok"]'
        )
    return Condition(text, path, match.group("op"), value)
