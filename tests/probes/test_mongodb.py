"""The mongodb probe against mockupdb servers on 127.0.0.1.

Runs go through the real runner, so reasons and timeouts are the ones the
daemon would export. Failure cases cost a driver timeout of about a second.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError

from exporter.kinds import config_adapter
from exporter.probes.base import ProbeResult, Reason
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.mongodb import MongodbConfig, MongoState, _without_credentials
from exporter.runner import run_probe
from tests.conftest import StartServer, free_port
from tests.servers.mongodb import (
    AUTHENTICATION_FAILED,
    NOT_A_REPLICA_SET,
    UNAUTHORIZED,
    MockMongo,
    member,
    replset_status,
    server_status,
)

TIMEOUT = 2.0  # driver: selection 1.0 s, connect 0.8 s, whole run 1.7 s


def make_config(**fields: Any) -> MongodbConfig:
    raw = {"kind": "mongodb", "name": "db", "timeout": TIMEOUT, "interval": 10}
    config = config_adapter().validate_python(raw | fields)
    assert isinstance(config, MongodbConfig)
    return config


@pytest.fixture
def mongo() -> Iterator[MockMongo]:
    server = MockMongo.start()
    yield server
    server.stop()


@pytest.fixture
async def ctx() -> AsyncIterator[ProbeContext]:
    context = ProbeContext("db", SharedResources())
    yield context
    await context.aclose()


def checks_of(result: ProbeResult) -> dict[str, bool]:
    return {check.name: check.passed for check in result.checks}


def detail_of(result: ProbeResult, name: str) -> str:
    return next(check.detail for check in result.checks if check.name == name)


def samples_of(result: ProbeResult, name: str) -> dict[str, float]:
    """Values of series *name*, keyed by the first label value ("" if none)."""
    return {
        (sample.labels[0][1] if sample.labels else ""): sample.value
        for sample in result.samples
        if sample.name == name
    }


# --- healthy and unhealthy targets --------------------------------------------------


async def test_healthy_standalone(mongo: MockMongo, ctx: ProbeContext) -> None:
    result = await run_probe(make_config(uri=mongo.uri()), ctx)

    assert result.success, result.error
    assert checks_of(result) == {"reachable": True, "connections_under_limit": True}
    assert samples_of(result, "mongodb_connections") == {
        "current": 12,
        "available": 838,
    }
    assert samples_of(result, "mongodb_server_info") == {"7.0.12": 1}
    assert samples_of(result, "mongodb_ping_seconds")[""] > 0
    assert samples_of(result, "mongodb_connect_seconds")[""] > 0


async def test_client_is_kept_between_runs(mongo: MockMongo, ctx: ProbeContext) -> None:
    config = make_config(uri=mongo.uri())
    await run_probe(config, ctx)
    first = ctx.state(MongoState).clients
    result = await run_probe(config, ctx)

    assert result.success, result.error
    assert first is not None and ctx.state(MongoState).clients is first
    # connect time comes only from runs that (re)connected
    assert "mongodb_connect_seconds" not in {s.name for s in result.samples}


async def test_fresh_connection_closes_the_client_every_run(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    config = make_config(uri=mongo.uri(), fresh_connection=True)
    for _ in range(2):
        result = await run_probe(config, ctx)
        assert result.success, result.error
        assert ctx.state(MongoState).clients is None


async def test_fresh_connection_closes_in_the_background(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    # A server that never answers endSessions makes every close() wait out
    # its budget (1 s a client): a run with fresh_connection must not.
    mongo.server.autoresponds(lambda r: r.command_name == "endSessions")
    config = make_config(uri=mongo.uri(), fresh_connection=True, timeout=1.0)
    result = await run_probe(config, ctx)
    assert result.success, result.error
    assert ctx.state(MongoState).clients is None


def test_uri_is_not_in_the_repr() -> None:
    config = make_config(uri="mongodb://ops:pa55word@127.0.0.1:27017/")
    assert "pa55word" not in repr(config)


async def test_connections_over_the_ratio_fail_the_warning(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    mongo.answer("serverStatus", server_status(current=900, available=100))
    result = await run_probe(make_config(uri=mongo.uri()), ctx)

    assert checks_of(result)["connections_under_limit"] is False
    assert "900 of 1000" in detail_of(result, "connections_under_limit")
    assert result.success  # a warning does not fail the probe
    assert samples_of(result, "mongodb_connections")["current"] == 900


async def test_replica_set_with_a_lagging_and_a_down_member(ctx: ProbeContext) -> None:
    mongo = MockMongo.start(set_name="rs0")
    try:
        mongo.answer(
            "replSetGetStatus",
            replset_status(
                [
                    member(0, "db1:27017", "PRIMARY", is_self=True),
                    member(1, "db2:27017", "SECONDARY", lag_seconds=2),
                    member(2, "db3:27017", "SECONDARY", lag_seconds=45),
                    member(3, "db4:27017", "DOWN"),
                ]
            ),
        )
        config = make_config(uri=mongo.uri(), replica_set=True)
        result = await run_probe(config, ctx)
    finally:
        mongo.stop()

    assert result.success, result.error  # only warnings fail
    assert checks_of(result) == {
        "reachable": True,
        "replset_has_primary": True,
        "replset_members_healthy": False,
        "replset_lag": False,
        "connections_under_limit": True,
    }
    assert "db4:27017" in detail_of(result, "replset_members_healthy")
    assert "db3:27017 45s" in detail_of(result, "replset_lag")
    assert samples_of(result, "mongodb_replset_member_state") == {
        "db1:27017": 1,
        "db2:27017": 2,
        "db3:27017": 2,
        "db4:27017": 8,
    }
    assert samples_of(result, "mongodb_replset_member_healthy") == {
        "db1:27017": 1,
        "db2:27017": 1,
        "db3:27017": 1,
        "db4:27017": 0,
    }
    assert samples_of(result, "mongodb_replset_member_lag_seconds") == {
        "db1:27017": 0,
        "db2:27017": 2,
        "db3:27017": 45,
    }
    assert samples_of(result, "mongodb_replset_has_primary") == {"": 1}


async def test_replica_set_without_primary(ctx: ProbeContext) -> None:
    # Discovery through replicaSet=: the probe must still reach a secondary.
    mongo = MockMongo.start(set_name="rs0", primary=False)
    try:
        mongo.answer(
            "replSetGetStatus",
            replset_status(
                [
                    member(0, "db1:27017", "SECONDARY", is_self=True),
                    member(1, "db2:27017", "SECONDARY", lag_seconds=3),
                    member(2, "db3:27017", "DOWN"),
                ]
            ),
        )
        config = make_config(uri=mongo.uri(options="replicaSet=rs0"), replica_set=True)
        result = await run_probe(config, ctx)
    finally:
        mongo.stop()

    assert not result.success
    assert result.reason is Reason.CHECK
    assert checks_of(result)["replset_has_primary"] is False
    assert checks_of(result)["reachable"] is True
    assert samples_of(result, "mongodb_replset_has_primary") == {"": 0}
    # without a primary, lag is measured against the newest member
    assert samples_of(result, "mongodb_replset_member_lag_seconds") == {
        "db1:27017": 0,
        "db2:27017": 3,
    }


async def test_replica_set_checks_fail_on_a_standalone(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    mongo.answer("replSetGetStatus", NOT_A_REPLICA_SET)
    result = await run_probe(make_config(uri=mongo.uri(), replica_set=True), ctx)

    assert result.reason is Reason.CHECK
    assert checks_of(result)["replset_has_primary"] is False
    assert "not a replica set" in detail_of(result, "replset_lag")


# --- authentication ---------------------------------------------------------------


async def test_auth_enforced_when_anonymous_listdatabases_is_refused(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    mongo.answer("listDatabases", UNAUTHORIZED)
    result = await run_probe(make_config(uri=mongo.uri(), expect_auth=True), ctx)

    assert result.success, result.error
    assert checks_of(result)["auth_enforced"] is True


async def test_auth_not_enforced_when_anonymous_listdatabases_is_allowed(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    databases = [{"name": "admin", "sizeOnDisk": 40960.0, "empty": False}]
    mongo.answer("listDatabases", {"databases": databases, "totalSize": 40960.0})
    result = await run_probe(make_config(uri=mongo.uri(), expect_auth=True), ctx)

    assert result.reason is Reason.CHECK
    assert checks_of(result)["auth_enforced"] is False
    assert "allowed" in detail_of(result, "auth_enforced")


async def test_wrong_password_is_auth_and_never_shown(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    conversations: list[dict[str, Any]] = []

    def refuse(request: Any) -> bool:
        conversations.append(dict(request.doc))
        return bool(request.replies(AUTHENTICATION_FAILED))

    mongo.answer("saslStart", refuse)
    config = make_config(uri=mongo.uri(user="app"), password="hunter2-secret")
    result = await run_probe(config, ctx)

    assert result.reason is Reason.AUTH
    assert "hunter2" not in result.error
    assert all("hunter2" not in check.detail for check in result.checks)
    # the password reached the driver (it started a SCRAM login as "app")
    assert conversations
    assert b"n=app," in bytes(conversations[0]["payload"])


async def test_password_file_is_read_at_run_time(
    mongo: MockMongo, ctx: ProbeContext, tmp_path: Path
) -> None:
    secret = tmp_path / "mongo-password"
    config = make_config(uri=mongo.uri(user="app"), password_file=str(secret))
    missing = await run_probe(config, ctx)
    assert missing.reason is Reason.CONFIG
    assert "password_file" in missing.error

    secret.write_text("from-file\n")
    mongo.answer("saslStart", AUTHENTICATION_FAILED)
    result = await run_probe(config, ctx)
    assert result.reason is Reason.AUTH


async def test_unauthorized_probe_command_is_auth(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    denied = UNAUTHORIZED | {"errmsg": "not authorized on admin to execute command"}
    mongo.answer("serverStatus", denied)
    result = await run_probe(make_config(uri=mongo.uri()), ctx)

    assert result.reason is Reason.AUTH
    assert "code 13" in result.error


# --- broken targets and recovery ---------------------------------------------------


async def test_hangup_mid_command_fails_then_recovers(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    config = make_config(uri=mongo.uri())
    hangup = mongo.answer("serverStatus", lambda request: request.hangup())
    failed = await run_probe(config, ctx)
    hangup.cancel()
    recovered = await run_probe(config, ctx)

    assert failed.reason is Reason.CONNECT
    assert all(not check.passed for check in failed.checks)
    assert recovered.success, recovered.error


async def test_stopped_server_is_connect_and_restart_recovers(
    ctx: ProbeContext,
) -> None:
    mongo = MockMongo.start()
    config = make_config(uri=mongo.uri())
    try:
        assert (await run_probe(config, ctx)).success
    finally:
        mongo.stop()

    stopped = await run_probe(config, ctx)
    assert stopped.reason is Reason.CONNECT

    restarted = MockMongo.start(port=mongo.port)
    try:
        recovered = await run_probe(config, ctx)
    finally:
        restarted.stop()
    assert recovered.success, recovered.error


async def test_nothing_listening_is_connect_without_the_password(
    ctx: ProbeContext,
) -> None:
    uri = f"mongodb://app:pw-in-uri-42@127.0.0.1:{free_port()}/?directConnection=true"
    result = await run_probe(make_config(uri=uri), ctx)

    assert result.reason is Reason.CONNECT
    assert result.duration_seconds < TIMEOUT
    assert "pw-in-uri-42" not in result.error
    assert all("pw-in-uri-42" not in check.detail for check in result.checks)


async def test_unanswered_command_is_timeout_within_the_timeout(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    config = make_config(uri=mongo.uri())
    hang = mongo.never_answer("serverStatus")
    result = await run_probe(config, ctx)
    hang.cancel()

    assert result.reason is Reason.TIMEOUT
    assert result.duration_seconds <= TIMEOUT + 0.1
    assert (await run_probe(config, ctx)).success


async def test_run_cut_off_by_the_runner_drops_its_client(ctx: ProbeContext) -> None:
    mongo = MockMongo.start(set_name="rs0")
    config = make_config(uri=mongo.uri(), replica_set=True)

    def slow_status(request: Any) -> bool:
        time.sleep(0.6)  # mockupdb answers from its own thread
        return bool(request.replies(server_status()))

    try:
        mongo.answer("serverStatus", slow_status)
        # 0.6 s + the 1.6 s socket timeout: the runner's 2 s deadline cancels
        hang = mongo.never_answer("replSetGetStatus")
        result = await run_probe(config, ctx)
        hang.cancel()
        assert result.reason is Reason.TIMEOUT
        assert ctx.state(MongoState).clients is None

        mongo.answer(
            "replSetGetStatus",
            replset_status([member(0, "db1:27017", "PRIMARY", is_self=True)]),
        )
        recovered = await run_probe(config, ctx)
    finally:
        mongo.stop()
    assert recovered.success, recovered.error


async def test_silent_server_is_timeout(
    tcp_server: StartServer, ctx: ProbeContext
) -> None:
    port = await tcp_server()  # accepts, never answers the handshake
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    result = await run_probe(make_config(uri=uri), ctx)

    assert result.reason is Reason.TIMEOUT


async def test_untrusted_certificate_is_tls(ctx: ProbeContext, tmp_path: Path) -> None:
    server_ca, other_ca = trustme.CA(), trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("127.0.0.1").configure_cert(server_context)

    async def handshake_only(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(
        handshake_only, "127.0.0.1", 0, ssl=server_context
    )
    ca_file = tmp_path / "other-ca.pem"
    other_ca.cert_pem.write_to_path(str(ca_file))
    port = server.sockets[0].getsockname()[1]
    try:
        config = make_config(
            uri=f"mongodb://127.0.0.1:{port}/?directConnection=true",
            ca_file=str(ca_file),
        )
        result = await run_probe(config, ctx)
    finally:
        server.close()

    assert result.reason is Reason.TLS


async def test_garbage_server_status_is_protocol(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    mongo.answer("serverStatus", {"ok": 1.0, "connections": "plenty"})
    result = await run_probe(make_config(uri=mongo.uri()), ctx)

    assert result.reason is Reason.PROTOCOL
    assert "connections" in result.error


# --- config ----------------------------------------------------------------------


def test_plan_follows_the_config() -> None:
    from exporter.probes.mongodb import plan

    assert [s.name for s in plan(make_config(uri="mongodb://h"))] == [
        "reachable",
        "connections_under_limit",
    ]
    everything = make_config(uri="mongodb://h", expect_auth=True, replica_set=True)
    assert [(s.name, s.category, s.severity) for s in plan(everything)] == [
        ("reachable", "reliability", "critical"),
        ("auth_enforced", "security", "critical"),
        ("replset_has_primary", "reliability", "critical"),
        ("replset_members_healthy", "reliability", "warning"),
        ("replset_lag", "reliability", "warning"),
        ("connections_under_limit", "performance", "warning"),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"uri": "postgres://h"}, "uri must start with mongodb://"),
        (
            {"uri": "mongodb://app:pw@h", "password": "x"},
            "the uri already holds a password",
        ),
        ({"uri": "mongodb://h", "password": "x"}, "need a user name in the uri"),
        (
            {"uri": "mongodb://app@h", "password": "x", "password_file": "/p"},
            "password or password_file, not both",
        ),
        ({"uri": "mongodb://h/?bogusOption=1"}, "not a valid MongoDB connection"),
        ({"uri": "mongodb://h", "connections_ratio_max": 1.5}, "less than or equal"),
        ({"uri": "mongodb://h", "replica_lag_max": "soon"}, "invalid duration"),
    ],
)
def test_bad_config_says_what_to_write(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_config(**fields)


def test_bad_uri_message_hides_the_password() -> None:
    with pytest.raises(ValidationError) as caught:
        make_config(uri="mongodb://app:s3cr3t-pw@h/?bogusOption=1")
    assert all("s3cr3t-pw" not in str(e["msg"]) for e in caught.value.errors())


@pytest.mark.parametrize(
    ("uri", "anonymous"),
    [
        ("mongodb://app:pw@h:27017/db", "mongodb://h:27017/db"),
        (
            "mongodb://app@h1,h2/?replicaSet=rs0&authSource=admin&tls=true",
            "mongodb://h1,h2/?replicaSet=rs0&tls=true",
        ),
        (
            "mongodb+srv://app@cluster.example/?authMechanism=SCRAM-SHA-256",
            "mongodb+srv://cluster.example/",
        ),
        ("mongodb://h", "mongodb://h"),
    ],
)
def test_anonymous_client_uri_has_no_credentials(uri: str, anonymous: str) -> None:
    assert _without_credentials(uri) == anonymous
