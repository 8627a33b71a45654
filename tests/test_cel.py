"""CEL conditions shared by the http and workers probes: compiled at config
load, judged on a reply, explained with the values they read."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from exporter.probes.shared.cel import CelReply, compile_cel
from exporter.probes.shared.conditions import NamedCondition, judge

# The shapes of the checklists' systems: Schedgen's jobs endpoint keyed by
# queue (002), a readiness reply with dependencies (003/004), an MCP worker
# pool (000), a database pool.
REPLY: dict[str, Any] = {
    "status": "degraded",
    "version": "1.9.0",
    "healthy": False,
    "pending": 12,
    "maxSize": 10,
    "pool": {"inUse": 9, "size": 10},
    "dependencies": {"postgres": "up", "redis": "down", "minio": "down", "etcd": "up"},
    "queues": {
        "pdf-processing": {"waiting": 1200, "maxSize": 1000},
        "email": {"waiting": 3, "maxSize": 100},
    },
    "workers": [
        {"id": "w1", "state": "RUNNING", "heapMb": 100},
        {"id": "w3", "state": "STOPPED", "heapMb": 600},
    ],
}


def why(expression: str, reply: Any = REPLY) -> tuple[bool, str]:
    return compile_cel(expression).evaluate(CelReply(reply))


@pytest.mark.parametrize(
    ("expression", "detail"),
    [
        ('body.status == "healthy"', 'body.status is "degraded", wanted == "healthy"'),
        (
            "body.pending < body.maxSize",
            "body.pending is 12, wanted < body.maxSize (10)",
        ),
        (
            "body.pool.inUse / body.pool.size < 0.8",
            "body.pool.inUse / body.pool.size is 0.9, wanted < 0.8"
            " (body.pool.inUse 9, body.pool.size 10)",
        ),
        (
            'body.dependencies.all(k, body.dependencies[k] == "up")',
            'false for minio, redis (2 of 4); k = "minio": body.dependencies[k] is'
            ' "down", wanted == "up"',
        ),
        (
            "body.queues.all(q, body.queues[q].waiting < body.queues[q].maxSize)",
            'false for pdf-processing (1 of 2); q = "pdf-processing":'
            " body.queues[q].waiting is 1200, wanted < body.queues[q].maxSize (1000)",
        ),
        (
            'body.workers.all(w, w.state in ["RUNNING", "IDLE"])',
            'false for w3 (1 of 2); w = w3: w.state is "STOPPED", wanted in'
            ' ["RUNNING", "IDLE"]',
        ),
        (
            'body.workers.all(w, w.state == "RUNNING" && w.heapMb < 512)',
            'false for w3 (1 of 2); w = w3: w.state is "STOPPED", wanted == "RUNNING"',
        ),
        (
            'body.status == "degraded" && body.pending < 5',
            "body.pending is 12, wanted < 5",
        ),
        (
            'body.workers.exists(w, w.state == "CRASHED")',
            "none of the 2 members of body.workers satisfies it",
        ),
        ('body.version.startsWith("2.")', 'false (body.version "1.9.0")'),
        ("body.healthy", "false (body.healthy false)"),
        ("has(body.uptime)", 'body has no key "uptime"'),
        ("body.workers.size() >= 3", "body.workers.size() is 2, wanted >= 3"),
    ],
)
def test_a_false_condition_names_the_values_it_read(
    expression: str, detail: str
) -> None:
    passed, said = why(expression)
    assert not passed
    assert said.startswith(detail), said


@pytest.mark.parametrize(
    ("expression", "detail"),
    [
        (
            "body.pendng < body.maxSize",
            'body has no key "pendng" (keys: dependencies, healthy, maxSize,'
            " pending, pool, ...)",
        ),
        (
            'body.queues["pdf"].waiting < 10',
            'body.queues has no key "pdf" (keys: email, pdf-processing)',
        ),
        (
            "body.queues.all(q, body.queues[q].limit > 0)",
            'body.queues[q] has no key "limit"',
        ),
        (
            "body.pending + 1 < 100",
            "operator + does not apply to (double, int); numbers from the reply"
            " are doubles: write 1.0, not 1",
        ),
        ('body.workers[5].id == "x"', "index 5 is out of range (size 2)"),
        ("body.pool.inUse", "gives 9, not true or false"),
        (
            "body.pool.inUse.value > 1",
            "a field was read from a value that is not an object",
        ),
    ],
)
def test_an_evaluation_error_says_which_key_index_or_operator(
    expression: str, detail: str
) -> None:
    assert why(expression) == (False, detail)


def test_json_numbers_are_doubles_so_a_ratio_divides() -> None:
    # With ints, 7 / 8 would be 0 and the condition would always hold.
    assert why("body.a / body.b < 0.8", {"a": 7, "b": 8}) == (
        False,
        "body.a / body.b is 0.875, wanted < 0.8 (body.a 7, body.b 8)",
    )
    # A double compares with an int literal, and size() with any number.
    assert why("body.a == 7 && body.l.size() == body.b", {"a": 7, "b": 1, "l": [1]})[0]


def test_string_functions_and_now_are_there() -> None:
    reply = {"status": "OK", "tags": "a,b", "at": "2026-01-01T00:00:00Z"}
    assert why('body.status.lowerAscii() == "ok"', reply)[0]
    assert why('body.tags.split(",").size() == 2', reply)[0]
    at = datetime.datetime(2026, 1, 1, 0, 1, tzinfo=datetime.UTC)
    fresh = compile_cel('timestamp(body.at) > now - duration("5m")')
    assert fresh.evaluate(CelReply(reply, now=at))[0]
    later = at + datetime.timedelta(hours=1)
    assert fresh.evaluate(CelReply(reply, now=later)) == (
        False,
        'timestamp(body.at) is 2026-01-01T00:00:00Z, wanted > now - duration("5m")'
        ' (2026-01-01T00:56:00Z) (body.at "2026-01-01T00:00:00Z")',
    )


def test_one_evaluation_is_bounded_and_says_so() -> None:
    reply = {"items": list(range(6000))}
    passed, detail = why(
        "body.items.all(i, i >= 0) && body.items.all(i, i < 1e9)", reply
    )
    assert not passed
    assert detail.startswith("the expression visits more than 10000 members")


def test_a_long_list_is_explained_member_by_member() -> None:
    # 9,000 failing members: explained in full (cel-cpp's filter() would
    # take seconds holding the GIL, and ran out of budget before).
    workers = [{"id": f"w{n}", "state": "STOPPED"} for n in range(9000)]
    passed, detail = why(
        'body.workers.all(w, w.state == "RUNNING")', {"workers": workers}
    )
    assert not passed
    assert detail == (
        "false for w0, w1, w2 and 8997 more (9000 of 9000);"
        ' w = w0: w.state is "STOPPED", wanted == "RUNNING"'
    )
    # all() stops at its first false member, within the budget of a longer
    # list: the explanation judges as many members as the budget allows.
    items = [-1, *range(20_000)]
    passed, detail = why("body.items.all(i, i >= 0)", {"items": items})
    assert detail.startswith("false for [0] (1 of the first 10000 of 20001); i = [0]")


def test_equal_members_are_named_by_their_own_place() -> None:
    jobs = [{"ok": True}, {"ok": False}, {"ok": False}]
    assert why("body.jobs.all(j, j.ok)", {"jobs": jobs})[1] == (
        "false for [1], [2] (2 of 3); j = [1]: false (j.ok false)"
    )


def test_filter_and_map_are_not_run_on_a_list_too_long_for_them() -> None:
    reply = {"items": [{"ok": True}] * 3000}
    passed, detail = why("body.items.filter(i, !i.ok).size() == 0", reply)
    assert not passed
    assert detail.startswith(
        "not run: the reply has a list of 3000 members, more than 2000,"
    )
    assert detail.endswith("write it with all() or exists()")
    # The same question with all() is answered; "map" in a string is no call.
    assert why("body.items.all(i, i.ok)", reply) == (True, "")
    assert why('body.items.all(i, i.ok) && ".map(" != ""', reply)[0]


def test_any_json_a_reply_can_hold_is_converted() -> None:
    deep: Any = True
    for _ in range(750):  # 1,500 deep: more than Python's recursion limit
        deep = {"a": [deep]}
    assert why("has(body.a)", deep) == (True, "")
    # An integer beyond a double's range is infinite, as for other readers.
    assert why(
        "body.big > 1e308 && body.small < -1e308", {"big": 10**400, "small": -(10**400)}
    ) == (True, "")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            'body.status = "up"',
            "at column 13, after 'body.status': a single '=' (compare with ==)",
        ),
        (
            "body.status == healthy",
            "at column 16, after 'body.status ==': unknown name 'healthy': quote a"
            ' string ("healthy"), or read the reply as body.healthy',
        ),
        (
            'bdy.status == "up"',
            "unknown name 'bdy.status': the reply is body (body.status, body['key'])",
        ),
        (
            'body.name.startswith("x")',
            "unknown name 'startswith': did you mean startsWith?",
        ),
        (
            'body.deps.all(k, body.deps[k] == "up"',
            "at column 38, after '...all(k, body.deps[k] == \"up\"': the expression"
            " ends too early (missing ')')",
        ),
        ("body.pending <", "the expression ends too early"),
        ("body.status == 'up", "a string that is not closed"),
        ('$.status == "up"', "$ is JSONPath, not CEL: the reply is body"),
        ('1 + "a" == 2', "operator + does not apply to (int, string)"),
        ("size(body)", "it gives a int, not true or false"),
        ("body.count > 3 &&\n  body.x <", "at line 2 column 11"),
        ("  ", "the expression is empty"),
    ],
)
def test_mistakes_are_found_when_the_config_loads(
    expression: str, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        compile_cel(expression)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value).replace(expression, "")


def test_judge_gives_every_condition_its_check_and_detail() -> None:
    conditions = [
        NamedCondition(name="a", cel='body.status == "degraded"'),
        NamedCondition(name="b", condition='$.status == "degraded"'),
        NamedCondition(name="c", cel="body.pending > body.maxSize"),
    ]
    assert judge(conditions, REPLY) == [
        ("condition_a", True, 'body.status == "degraded" holds'),
        ("condition_b", True, '$.status == "degraded" holds'),
        ("condition_c", True, "body.pending > body.maxSize holds"),
    ]
