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
        ('$.status == "a && b || c.all(x)"', False),
    ],
)
def test_conditions(condition: str, passed: bool) -> None:
    assert parse_condition(condition).evaluate(DOC)[0] is passed


def test_failing_condition_names_where_it_failed() -> None:
    ok, detail = parse_condition('$.dependencies[*].status == "up"').evaluate(DOC)
    assert not ok
    assert detail == '$.dependencies[1].status is "down", wanted == "up"'


def test_fan_out_over_a_mapping_names_each_key() -> None:
    document = {"dependencies": {"redis": "down", "db": "up", "mq": "down"}}
    ok, detail = parse_condition('$.dependencies[*] == "up"').evaluate(document)
    assert not ok
    assert detail == (
        '2 of 3 fail: $.dependencies.redis is "down", $.dependencies.mq is "down";'
        ' wanted == "up"'
    )


def test_locate_gives_where_and_the_key_of_a_mapping_member() -> None:
    document = {"queues": {"pdf-processing": {"waiting": 4}, "odd key": {"waiting": 1}}}
    found = compile_path("$.queues[*].waiting").locate(document)
    assert [(m.where, m.value, m.key) for m in found] == [
        ("$.queues.pdf-processing.waiting", 4, "pdf-processing"),
        ('$.queues["odd key"].waiting', 1, "odd key"),
    ]
    # A list's members have positions, not keys.
    listed = compile_path("$.dependencies[*].name").locate(DOC)
    assert [(m.where, m.key) for m in listed] == [
        ("$.dependencies[0].name", None),
        ("$.dependencies[1].name", None),
    ]


@pytest.mark.parametrize(
    ("condition", "detail"),
    [
        (
            "$.data.health exists",
            '$ has no key "data" (keys: count, dependencies, odd key, status, workers)',
        ),
        ("$.status.code == 1", '$.status is a string, not an object with "code"'),
        ("$.dependencies[5].name exists", "$.dependencies has no [5] (2 items)"),
        ("$['odd key'].y == 1", '$["odd key"] has no key "y" (keys: x)'),
    ],
)
def test_a_missing_path_names_the_key_that_is_missing(
    condition: str, detail: str
) -> None:
    ok, why = parse_condition(condition).evaluate(DOC)
    assert not ok
    assert why.startswith(detail), why


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$.a = 1", "write PATH OP VALUE"),
        ("$.a == up", "is not a JSON value: quote a string"),
        ('$.a in "up"', "needs a JSON list"),
        ("$.a[x] == 1", "invalid JSON path"),
    ],
)
def test_bad_conditions_are_explained(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_condition(text)


@pytest.mark.parametrize(
    ("text", "suggested"),
    [
        ("$.pending < $.maxSize", "- cel: 'body.pending < body.maxSize'"),
        ("pending <= maxSize", "- cel: 'body.pending <= body.maxSize'"),
        ("$.inUse < $.size * 0.8", "- cel: 'body.inUse < body.size * 0.8'"),
    ],
)
def test_comparing_two_paths_points_to_cel_without_suggesting_quotes(
    text: str, suggested: str
) -> None:
    with pytest.raises(ValueError) as caught:
        parse_condition(text)
    assert suggested in str(caught.value)
    assert "quote" not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        'body.status == "up"',
        '$.dependencies.all(k, $.dependencies[k] == "up")',
        "$.a == 1 && $.b == 2",
        "$.pending < body.maxSize",
    ],
)
def test_cel_written_as_a_plain_condition_is_refused_with_the_cel_form(
    text: str,
) -> None:
    # A plain string is always JSONPath: `body.status` would read a key
    # "body", so a CEL-looking string is an error, never a silent guess.
    with pytest.raises(ValueError, match=r"looks like a CEL expression.*- cel: 'body"):
        parse_condition(text)


def test_the_cel_form_never_reads_body_twice() -> None:
    with pytest.raises(ValueError) as caught:
        parse_condition("$.pending < body.maxSize")
    assert "- cel: 'body.pending < body.maxSize'" in str(caught.value)
    # A reply's own field named body stays JSONPath.
    assert parse_condition('$.body.status == "ok"').evaluate(
        {"body": {"status": "ok"}}
    )[0]
