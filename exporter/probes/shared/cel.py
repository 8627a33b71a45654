"""CEL conditions over a JSON reply, as blackbox_exporter's
`fail_if_body_json_not_matches_cel`: the reply is `body`, the time of the
run is `now`, and the expression must give true.

    body.pending < body.maxSize
    body.dependencies.all(k, body.dependencies[k] == "up")

Expressions are compiled and type-checked when the config loads
(cel-expr-python, the CEL team's binding of cel-cpp): a syntax error, an
unknown name (`bdy`, `startswith`, an unquoted `healthy`) or an operator
that cannot apply is a config error with its column. JSON numbers are
doubles, as in cel-go and blackbox_exporter, so `inUse / size` divides as
a person expects; `size()` is an int and compares with any number.

A condition that does not hold is explained with what it read: the two
sides of a comparison (`body.pending is 12, wanted < body.maxSize (10)`),
the members that fail an `all()` (`false for redis (1 of 4): ...`), the key
that was missing (`body.queues has no key "pdf" (keys: email, ocr)`).
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel  # type: ignore[import-untyped]  # no py.typed
from cel_expr_python.ext import ext_strings  # type: ignore[import-untyped]

ITERATIONS_MAX = 10_000
"""cel-cpp's budget of one evaluation: members visited by all(), exists(),
filter() and map(), summed. It bounds what one condition can cost."""

LIST_BUILT_MAX = 2_000
"""The longest list of a reply that an expression building lists (filter(),
map()) is run on. cel-cpp builds their result a copy per member, so the cost
grows with the square of the length: 26 ms for 1,000 members, 80 ms for
2,000, 3.5 s for 8,000, all of it holding the GIL, so every other probe
waits (a thread does not help). all() and exists() cost 1 ms per 2,000."""

_BUILDS_LISTS = re.compile(r"\.\s*(?:filter|map)\s*\(")

# The variables every expression sees; comprehension variables are bound by
# the macros themselves.
_ENV = cel.NewEnv(
    variables={"body": cel.Type.DYN, "now": cel.Type.TIMESTAMP},
    extensions=[ext_strings.ExtStrings()],
)

_FUNCTIONS = frozenset(
    {
        *("all", "exists", "exists_one", "filter", "map", "size", "has"),
        *("matches", "contains", "startsWith", "endsWith", "lowerAscii"),
        *("upperAscii", "trim", "split", "replace", "indexOf", "lastIndexOf"),
        *("substring", "join", "charAt", "format", "timestamp", "duration"),
        *("int", "double", "string", "bool", "type"),
    }
)


# --- compiling -----------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> Any:
    return _ENV.compile(text)


@functools.lru_cache(maxsize=64)
def _env_binding(names: tuple[str, ...]) -> Any:
    """The environment with *names* bound too: the explainer evaluates a
    macro's predicate member by member with its variable bound."""
    return cel.NewEnv(
        variables={
            "body": cel.Type.DYN,
            "now": cel.Type.TIMESTAMP,
            **{name: cel.Type.DYN for name in names},
        },
        extensions=[ext_strings.ExtStrings()],
    )


@functools.lru_cache(maxsize=4096)
def _compile_binding(text: str, names: tuple[str, ...]) -> Any:
    return _env_binding(names).compile(text)


def _where(source: str, line: int, column: int) -> str:
    before = source[: column - 1].rstrip()
    place = f"line {line} column {column}" if line > 1 else f"column {column}"
    if not before:
        return f"at {place}"
    shown = before if len(before) <= 30 else "..." + before[-27:]
    return f"at {place}, after {shown!r}"


def _unknown_name(name: str) -> str:
    functions = {f.lower(): f for f in _FUNCTIONS}
    last = name.rsplit(".", 1)[-1]
    if last.lower() in functions and last != functions[last.lower()]:
        return f"unknown name {last!r}: did you mean {functions[last.lower()]}?"
    if "." in name or name.startswith("$"):
        return f"unknown name {name!r}: the reply is body (body.status, body['key'])"
    return (
        f'unknown name {name!r}: quote a string ("{name}"), or read the reply'
        f" as body.{name}"
    )


def _compile_message(error: str) -> str:
    """cel-cpp's compile errors ("ERROR: <input>:1:16: ...") as one line."""
    found = re.findall(r"ERROR: <input>:(\d+):(\d+): ([^\n]*)", error)
    if not found:
        return error.split("\n", 1)[0][:200]
    line, column, message = found[0]
    message = re.sub(r" expecting \{.*", "", message).replace(" (in container '')", "")
    if match := re.search(r"undeclared reference to '([^']*)'", message):
        message = _unknown_name(match.group(1))
    elif "mismatched input '<EOF>'" in message or "at '<EOF>'" in message:
        message = "the expression ends too early" + (
            f" ({message.split(': ', 1)[-1].split(' at ')[0]})"
            if "missing" in message
            else ""
        )
    elif re.search(r"token recognition error at: '=", message):
        message = "a single '=' (compare with ==)"
    elif re.search(r"token recognition error at: '\$", message):
        message = "$ is JSONPath, not CEL: the reply is body (body.status)"
    elif re.search(r"token recognition error at: '[\"']", message):
        message = "a string that is not closed"
    elif match := re.search(
        r"no matching overload for '_?(.+?)_?' applied to '(.*)'", message
    ):
        message = (
            f"operator {match.group(1)} does not apply to {match.group(2)};"
            " CEL does not convert types (write double(x) or string(x))"
        )
    else:
        message = message[0].lower() + message[1:] if message else "invalid"
    return f"{_where_source(error, int(line), int(column))}: {message}"


def _where_source(error: str, line: int, column: int) -> str:
    # The source is echoed after each error as " | <line>"; take the first.
    echoed = re.search(r"\n \| ([^\n]*)\n", error)
    return _where(echoed.group(1) if echoed else "", line, column)


@dataclass(frozen=True, slots=True)
class CelCondition:
    """A compiled CEL condition; `evaluate(reply)` says whether it holds."""

    text: str

    def evaluate(self, reply: CelReply) -> tuple[bool, str]:
        """Whether the condition holds on *reply*, and the detail."""
        if reply.longest_list > LIST_BUILT_MAX and _builds_lists(self.text):
            return False, (
                f"not run: the reply has a list of {reply.longest_list} members,"
                f" more than {LIST_BUILT_MAX}, and filter() or map() over it would"
                " hold up every other probe (their cost grows with the square of"
                " the length); write it with all() or exists()"
            )
        value = reply.run(self.text)
        if isinstance(value, CelError):
            return False, reply.explain_error(self.text, value)
        if value is True:
            return True, ""
        if value is False:
            return False, _Explainer(reply).why_false(self.text)
        return False, f"gives {_shown(value)}, not true or false"


def _builds_lists(text: str) -> bool:
    outside = {index for index, _ in _scan(text)}
    return any(m.start() in outside for m in _BUILDS_LISTS.finditer(text))


def compile_cel(text: str) -> CelCondition:
    """Compile *text*; raise ValueError saying what is wrong, and where."""
    if not text.strip():
        raise ValueError("the expression is empty")
    try:
        program = _compile(text)
    except RuntimeError as error:
        raise ValueError(
            f"invalid CEL expression {text!r} {_compile_message(str(error))}"
        ) from None
    returns = program.return_type().name()
    if returns not in ("BOOL", "DYN"):
        raise ValueError(
            f"invalid CEL expression {text!r}: it gives a {returns.lower()}, not"
            " true or false; compare it (e.g. body.count > 0)"
        )
    return CelCondition(text)


# --- evaluating ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CelError:
    """An evaluation that failed (a missing key, an operator that does not
    apply), with cel-cpp's message."""

    message: str


def json_doubles(document: Any) -> tuple[Any, int]:
    """*document* with every JSON number a double, as CEL reads JSON, and
    the length of its longest list.

    A loop, not recursion: a reply nested deeper than Python's recursion
    limit is still judged. An integer beyond a double's range is infinite,
    as JSON parsers that read numbers as doubles make it.
    """
    longest = 0
    root: list[Any] = [document]
    # (container, key) pairs whose value is still to convert, in place in
    # the copies made below.
    pending: list[tuple[Any, Any]] = [(root, 0)]
    while pending:
        container, key = pending.pop()
        value = container[key]
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            try:
                container[key] = float(value)
            except OverflowError:
                container[key] = math.inf if value > 0 else -math.inf
        elif isinstance(value, dict):
            copy = dict(value)
            container[key] = copy
            pending.extend((copy, k) for k in copy)
        elif isinstance(value, list):
            copy_list = list(value)
            container[key] = copy_list
            longest = max(longest, len(copy_list))
            pending.extend((copy_list, i) for i in range(len(copy_list)))
    return root[0], longest


class CelReply:
    """One reply, converted once for every CEL condition that reads it."""

    def __init__(self, document: Any, now: datetime.datetime | None = None) -> None:
        self.document, self.longest_list = json_doubles(document)
        self.now = now or datetime.datetime.now(datetime.UTC)
        self._activation = _ENV.Activation({"body": self.document, "now": self.now})

    def run(self, text: str, bound: Mapping[str, Any] | None = None) -> Any:
        """The plain value of *text* on this reply, or a CelError; *bound*
        gives variables of the explainer's own (a macro's, bound to one
        member)."""
        try:
            if bound:
                names = tuple(sorted(bound))
                program = _compile_binding(text, names)
                activation = _env_binding(names).Activation(
                    {"body": self.document, "now": self.now, **bound}
                )
                value = program.eval(activation)
            else:
                value = _compile(text).eval(self._activation)
        except RuntimeError as error:  # our own sub-expression; the iteration budget
            return CelError(str(error))
        if value.type().name() == "ERROR":
            return CelError(str(value.value()))
        return value.plain_value()

    def explain_error(self, text: str, error: CelError) -> str:
        """*error* in words, naming the key, index or operator at fault."""
        message = re.sub(r"^[A-Z_]+: ", "", error.message)
        if match := re.search(r'Key not found in map : "(.*)"', message):
            return self._missing_key(text, match.group(1))
        if match := re.search(
            r"No matching overloads found : _?(.+?)_?\((.*)\)", message
        ):
            operands = match.group(2).replace("int64", "int")
            hint = (
                "; numbers from the reply are doubles: write 1.0, not 1"
                if "double" in operands and "int" in operands
                else ""
            )
            return f"operator {match.group(1)} does not apply to ({operands}){hint}"
        if match := re.search(r"index=(-?\d+) size=(\d+)", message):
            return f"index {match.group(1)} is out of range (size {match.group(2)})"
        if "Iteration budget exceeded" in message:
            return (
                f"the expression visits more than {ITERATIONS_MAX} members in all"
                " (all, exists, filter, map summed), the most one evaluation may"
            )
        if "SELECT to non-message" in message:
            return "a field was read from a value that is not an object"
        return message[:160]

    def _missing_key(self, text: str, key: str) -> str:
        for chain in _chains(text):
            for step_at in _key_steps(chain, key):
                parent = chain[:step_at]
                value = self.run(parent)
                if isinstance(value, dict):
                    keys = ", ".join(sorted(str(k) for k in value)[:5])
                    more = ", ..." if len(value) > 5 else ""
                    return f"{parent} has no key {json.dumps(key)} (keys: {keys}{more})"
                return f"{parent} has no key {json.dumps(key)}"
        return f"no key {json.dumps(key)} in the reply (test with has())"


def _key_steps(chain: str, key: str) -> Iterator[int]:
    """Where in *chain* the step reading *key* starts (`.key` or `["key"]`)."""
    for match in re.finditer(
        rf"\.({re.escape(key)})(?!\w)|\[\s*(['\"]){re.escape(key)}\2\s*\]",
        chain,
    ):
        yield match.start()


# --- explaining why an expression is false -----------------------------------


def _shown(value: Any, limit: int = 40) -> str:
    if isinstance(value, datetime.datetime):
        return value.isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, datetime.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return str(int(value))
    if (
        isinstance(value, dict)
        and len(json.dumps(value, default=str, sort_keys=True)) > limit
    ):
        return f"{{{len(value)} keys}}"
    if (
        isinstance(value, list)
        and len(json.dumps(value, default=str, sort_keys=True)) > limit
    ):
        return f"[{len(value)} items]"
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _member_label(member: Any, index: int) -> str:
    if isinstance(member, str):
        return member
    if isinstance(member, dict):
        for field in ("name", "id", "key"):
            if isinstance(member.get(field), str | int | float):
                return _shown(member[field]).strip('"')
    return f"[{index}]"


_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _scan(text: str) -> Iterator[tuple[int, int]]:
    """(index, depth) of every character outside string literals."""
    depth = 0
    position = 0
    while position < len(text):
        char = text[position]
        if char in "\"'":
            end = position + 1
            while end < len(text) and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            position = end + 1
            continue
        if char in _PAIRS:
            depth += 1
        elif char in ")]}":
            depth -= 1
        yield position, depth if char not in _PAIRS else depth - 1
        position += 1


def _split_top(text: str, separator: str) -> list[str]:
    parts, start = [], 0
    for index, depth in _scan(text):
        if depth == 0 and text.startswith(separator, index) and index >= start:
            parts.append(text[start:index].strip())
            start = index + len(separator)
    parts.append(text[start:].strip())
    return parts


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        inner = text[1:-1]
        if all(depth >= 0 for _, depth in _scan(inner)):
            text = inner.strip()
        else:
            break
    return text


_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">", " in ")


def _comparison(text: str) -> tuple[str, str, str] | None:
    for index, depth in _scan(text):
        if depth != 0:
            continue
        for op in _COMPARISONS:
            if text.startswith(op, index):
                return text[:index].strip(), op.strip(), text[index + len(op) :].strip()
    return None


_MACRO = re.compile(r"\.(all|exists_one|exists)\(\s*([A-Za-z_]\w*)\s*,")


def _macro(text: str) -> tuple[str, str, str, str] | None:
    """`R.all(v, P)` as (R, macro, v, P) when the whole of *text* is one."""
    if not text.endswith(")"):
        return None
    depths = dict(_scan(text))
    for match in _MACRO.finditer(text):
        if depths.get(match.start()) != 0:
            continue
        body = text[match.end() : -1]
        if (
            all(depth >= 0 for _, depth in _scan(body))
            and depths.get(len(text) - 1) == 0
        ):
            return text[: match.start()], match.group(1), match.group(2), body.strip()
    return None


def _chains(text: str) -> list[str]:
    """The field reads of *text* (`body.pool.inUse`, `body.deps[k]`), in order."""
    chains: list[str] = []
    outside = {index for index, _ in _scan(text)}
    for match in re.finditer(r"(?<![\w.])[A-Za-z_]\w*", text):
        if match.start() not in outside or match.group() in _FUNCTIONS:
            continue
        end = match.end()
        while end < len(text):
            step = re.match(r"\s*\.\s*[A-Za-z_]\w*\b(?!\s*\()", text[end:])
            if step:
                end += step.end()
                continue
            if text[end] == "[":
                close = _closing(text, end)
                if close is None:
                    break
                end = close + 1
                continue
            break
        chain = text[match.start() : end].strip()
        if chain != match.group() or chain == "body":
            chains.append(chain)
    return list(dict.fromkeys(chains))


def _closing(text: str, start: int) -> int | None:
    depths = _scan(text[start:])
    for index, depth in depths:
        if depth == 0 and text[start + index] == "]":
            return start + index
    return None


Bound = Mapping[str, Any]
"""The variables of the macros being explained, each bound to one member."""


class _Explainer:
    """Works out why an expression is false by evaluating its parts.

    A macro's members are judged one at a time in Python, the variable bound
    to each (5 us a member): never with filter(), whose cost grows with the
    square of the list's length in cel-cpp.
    """

    def __init__(self, reply: CelReply) -> None:
        self.reply = reply

    def value(self, text: str, bound: Bound) -> Any:
        return self.reply.run(text, bound)

    def why_false(self, text: str) -> str:
        try:
            return self._why_false(_strip_parens(text), {}, depth=0)
        except (RuntimeError, ValueError, KeyError, IndexError, TypeError):
            return "false"

    def _why_false(self, text: str, bound: Bound, depth: int) -> str:
        if depth > 4:
            return "false"
        conjuncts = _split_top(text, "&&")
        if len(conjuncts) > 1:
            for conjunct in conjuncts:
                if self.value(conjunct, bound) is False:
                    return self._why_false(_strip_parens(conjunct), bound, depth + 1)
        if present := re.fullmatch(r"has\((.+)\.([A-Za-z_]\w*)\)", text):
            return f"{present.group(1)} has no key {json.dumps(present.group(2))}"
        if text.startswith("!") and not text.startswith("!="):
            return f"{text[1:].strip()} is true"
        macro = _macro(text)
        if macro is not None:
            return self._why_macro(*macro, bound, depth)
        compared = _comparison(text)
        if compared is not None:
            return self._why_comparison(*compared, bound)
        return self._reads(text, bound) or "false"

    def _why_macro(
        self,
        over: str,
        macro: str,
        variable: str,
        predicate: str,
        bound: Bound,
        depth: int,
    ) -> str:
        members = self.value(over, bound)
        if isinstance(members, dict):
            # A map's keys come in no fixed order: take them sorted, so a
            # detail is the same each run.
            candidates: list[tuple[str, Any]] = [
                (_shown(key).strip('"'), key) for key in sorted(members, key=str)
            ]
        elif isinstance(members, list):
            candidates = [
                (_member_label(member, index), member)
                for index, member in enumerate(members)
            ]
        else:
            return "false"
        count = len(candidates)
        if macro == "exists":
            return f"none of the {count} members of {over} satisfies it"
        # all() stops at its first false member, so a long list can be false
        # within cel-cpp's budget: judge no more members than it may visit.
        outcomes = [
            (label, member, self.value(predicate, {**bound, variable: member}))
            for label, member in candidates[:ITERATIONS_MAX]
        ]
        of = (
            f"{count}"
            if count <= ITERATIONS_MAX
            else f"the first {ITERATIONS_MAX} of {count}"
        )
        if macro == "exists_one":
            holding = sum(outcome is True for _, _, outcome in outcomes)
            among = f"the {count}" if count <= ITERATIONS_MAX else f"{of} the"
            return f"{holding} of {among} members of {over} satisfy it, wanted 1"
        failing = [(label, member) for label, member, out in outcomes if out is False]
        if not failing:
            return "false"
        labels = [label for label, _ in failing[:3]]
        more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
        label, member = failing[0]
        first = f"{variable} = {label if isinstance(members, list) else _shown(member)}"
        why = self._why_false(
            _strip_parens(predicate), {**bound, variable: member}, depth + 1
        )
        return (
            f"false for {', '.join(labels)}{more} ({len(failing)} of {of});"
            f" {first}: {why}"
        )

    def _why_comparison(self, left: str, op: str, right: str, bound: Bound) -> str:
        left_value = self.value(left, bound)
        right_value = self.value(right, bound)
        if isinstance(left_value, CelError) or isinstance(right_value, CelError):
            return self._reads(f"{left} {right}", bound) or "false"
        right_shown = (
            right if _is_literal(right) else f"{right} ({_shown(right_value)})"
        )
        said = f"{left} is {_shown(left_value)}, wanted {op} {right_shown}"
        reads = [
            self._read(chain, bound)
            for chain in _chains(left) + _chains(right)
            if chain not in (left, right)
        ]
        shown = [read for read in reads if read]
        return said + (f" ({', '.join(shown[:3])})" if shown else "")

    def _read(self, chain: str, bound: Bound) -> str:
        value = self.value(chain, bound)
        return "" if isinstance(value, CelError) else f"{chain} {_shown(value)}"

    def _reads(self, text: str, bound: Bound) -> str:
        reads = [self._read(chain, bound) for chain in _chains(text)]
        shown = [read for read in reads if read]
        return f"false ({', '.join(shown[:4])})" if shown else ""


def _is_literal(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return text in ("true", "false", "null") or bool(
            re.fullmatch(r"'[^']*'|\[[^\]]*\]", text)
        )
    return True
