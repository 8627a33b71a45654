"""JSON conditions, one model for the http and workers kinds.

A condition is the JSONPath shorthand, `PATH OP VALUE` or `PATH exists`
(see `jsonpath.py`), or a CEL expression over the reply `body` under the
key `cel` (see `cel.py`). A plain string is always the shorthand; CEL is
always written under `cel:`, so the two never need guessing. Each becomes
a check `condition_<name>`; an entry without a name is named by its
position, so `condition_0` stays stable until the list is reordered:

    conditions:
      - '$.status == "healthy"'                        # condition_0
      - cel: body.pending < body.maxSize               # condition_1
      - name: redis_up
        condition: '$.dependencies.redis == "up"'      # condition_redis_up
      - name: deps_up
        cel: body.dependencies.all(k, body.dependencies[k] == "up")
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from exporter.probes.base import Category, CheckDef, Model, Severity
from exporter.probes.shared.cel import CelReply, compile_cel
from exporter.probes.shared.jsonpath import parse_condition

CEL_IN_THREAD_BYTES = 262_144
"""Replies larger than this are judged off the event loop when a CEL
condition reads them: converting a reply for CEL costs about 35 us per KiB
(bench/bench_cel.py), so 256 KiB is about 9 ms, what parsing 1 MiB of JSON
costs, the size above which the workers kind parses in a thread."""


class NamedCondition(Model):
    """A condition with the name of its check (`condition_<name>`): the
    JSONPath shorthand under `condition`, or a CEL expression under `cel`.

    *endpoint* says which reply it reads, for kinds that fetch several.
    """

    name: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    condition: str | None = None
    cel: str | None = None
    endpoint: str | None = None

    @field_validator("condition")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_condition(value)
        return value

    @field_validator("cel")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            compile_cel(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.condition is None) == (self.cel is None):
            raise ValueError(
                f"condition {self.name!r}: give either `condition` (a JSONPath"
                ' condition, $.status == "up") or `cel` (a CEL expression,'
                " body.pending < body.maxSize), not "
                + ("both" if self.condition is not None else "neither")
            )
        return self

    @property
    def text(self) -> str:
        """The condition as written."""
        return self.cel if self.cel is not None else str(self.condition)

    def evaluate(
        self, document: Any, reply: CelReply | None = None
    ) -> tuple[bool, str]:
        """Whether the condition holds on *document* (for CEL, on *reply*,
        the same document converted once for every CEL condition)."""
        if self.cel is not None:
            passed, why = compile_cel(self.cel).evaluate(reply or CelReply(document))
        else:
            passed, why = parse_condition(str(self.condition)).evaluate(document)
        return passed, why or f"{self.text} holds"


def _name_by_position(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    named = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            item = {"name": str(index), "condition": item}
        elif isinstance(item, dict) and "name" not in item:
            item = {"name": str(index), **item}
        named.append(item)
    return named


def _unique(value: list[NamedCondition]) -> list[NamedCondition]:
    names = [c.name for c in value]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"condition names {duplicates} are used more than once")
    return value


Conditions = Annotated[
    list[NamedCondition], BeforeValidator(_name_by_position), AfterValidator(_unique)
]
"""A list of conditions: plain strings (JSONPath), or mappings with
`condition` or `cel` and an optional `name` (and, for workers, `endpoint`)."""


def judge(
    conditions: Sequence[NamedCondition], document: Any
) -> list[tuple[str, bool, str]]:
    """(check name, passed, detail) of each condition on *document*."""
    reply = CelReply(document) if any(c.cel is not None for c in conditions) else None
    return [(f"condition_{c.name}", *c.evaluate(document, reply)) for c in conditions]


async def judge_reply(
    conditions: Sequence[NamedCondition], document: Any, size: int
) -> list[tuple[str, bool, str]]:
    """`judge`, in a thread when CEL reads a reply of more than
    `CEL_IN_THREAD_BYTES` (*size*, its length as received)."""
    if size > CEL_IN_THREAD_BYTES and any(c.cel is not None for c in conditions):
        return await asyncio.to_thread(judge, conditions, document)
    return judge(conditions, document)


CONDITION_CHECK = CheckDef(
    "condition_{item}",
    Category.RELIABILITY,
    Severity.CRITICAL,
    "The condition (JSONPath or `cel`) holds on the JSON reply (for workers, the"
    " reply of the condition's `endpoint`): one check per entry of `conditions`,"
    " named after it (`condition_0`, `condition_redis_up`).",
    items=lambda config: [c.name for c in config.conditions],
)
"""The check row every kind with `conditions` declares."""
