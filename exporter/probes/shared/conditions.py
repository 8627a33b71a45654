"""JSON conditions, one model for the http and workers kinds.

A condition is `PATH OP VALUE` or `PATH exists` (see `jsonpath.py`), named
or not; each becomes a check `condition_<name>`. An unnamed one is named by
its position, so `condition_0` stays stable until the list is reordered:

    conditions:
      - '$.status == "healthy"'                  # check condition_0
      - name: redis_up
        condition: '$.dependencies.redis == "up"'  # check condition_redis_up
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from exporter.probes.base import Category, CheckDef, Model, Severity
from exporter.probes.shared.jsonpath import parse_condition


class NamedCondition(Model):
    """A JSON condition with the name of its check (`condition_<name>`).

    *endpoint* says which reply it reads, for kinds that fetch several.
    """

    name: str = Field(pattern=r"^[a-z0-9_]{1,60}$")
    condition: str
    endpoint: str | None = None

    @field_validator("condition")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_condition(value)
        return value

    def evaluate(self, document: Any) -> tuple[bool, str]:
        """Whether the condition holds on *document*, and the detail."""
        passed, why = parse_condition(self.condition).evaluate(document)
        return passed, why or f"{self.condition} holds"


def _name_plain(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    return [
        {"name": str(index), "condition": item} if isinstance(item, str) else item
        for index, item in enumerate(value)
    ]


def _unique(value: list[NamedCondition]) -> list[NamedCondition]:
    names = [c.name for c in value]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"condition names {duplicates} are used more than once")
    return value


Conditions = Annotated[
    list[NamedCondition], BeforeValidator(_name_plain), AfterValidator(_unique)
]
"""A list of conditions, plain strings or `{name, condition}` mappings."""

CONDITION_CHECK = CheckDef(
    "condition_{item}",
    Category.RELIABILITY,
    Severity.CRITICAL,
    "The condition holds on the JSON reply (for workers, the reply of the"
    " condition's `endpoint`): one check per entry of `conditions`, named after"
    " it (`condition_0`, `condition_redis_up`).",
    items=lambda config: [c.name for c in config.conditions],
)
"""The check row every kind with `conditions` declares."""
