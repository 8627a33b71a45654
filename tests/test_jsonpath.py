"""The JSONPath subset and conditions shared by the http and workers probes."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.probes.shared.jsonpath import compile_path, parse_condition

DOC: dict[str, Any] = {
    "status": "healthy",
    "count": 3,
    "dependencies": [{"name": "db", "status": "up"}, {"name": "mq", "status": "down"}],
    "odd key": {"x": 1},
    "workers": {"a": {"alive": True}, "b": {"alive": False}},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.status", ["healthy"]),
        ("status", ["healthy"]),
        ("$.dependencies[*].name", ["db", "mq"]),
        ("$.dependencies[1].status", ["down"]),
        ("$.dependencies[-1].name", ["mq"]),
        ("$['odd key'].x", [1]),
        ("$.workers.*.alive", [True, False]),
        ("$.missing.deeper", []),
        ("$.dependencies[9]", []),
    ],
)
def test_paths_find_values(path: str, expected: list[Any]) -> None:
    assert compile_path(path).find(DOC) == expected


@pytest.mark.parametrize(
    ("condition", "passed"),
    [
        ('$.status == "healthy"', True),
        ('$.status != "healthy"', False),
        ("$.count < 5", True),
        ("$.count >= 4", False),
        ('$.count < "5"', False),
        ("$.count in [1, 3]", True),
        ('$.dependencies[*].status == "up"', False),
        ('$.dependencies[0].status in ["up", "ok"]', True),
        ("$.status exists", True),
        ("$.nothing exists", False),
        ('$.nothing == "x"', False),
        ("$['odd key'].x == 1", True),
        ("$.count == 3.0", True),
        ("$.workers.a.alive == true", True),
        ("$.workers.a.alive == 1", False),
        ("$.count in [true, 3]", True),
    ],
)
def test_conditions(condition: str, passed: bool) -> None:
    assert parse_condition(condition).evaluate(DOC)[0] is passed


def test_failing_condition_says_what_it_saw() -> None:
    ok, detail = parse_condition('$.dependencies[*].status == "up"').evaluate(DOC)
    assert not ok
    assert detail == '$.dependencies[*].status is "down", wanted == "up"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$.a = 1", "write PATH OP VALUE"),
        ("$.a == up", "is not a JSON value"),
        ('$.a in "up"', "needs a JSON list"),
        ("$.a[x] == 1", "invalid JSON path"),
    ],
)
def test_bad_conditions_are_explained(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_condition(text)
