"""The mongodb probe against mockupdb servers on 127.0.0.1.

Runs go through the real runner, so reasons and timeouts are the ones the
daemon would export. Failure cases cost a driver timeout of about a second.
TLS is served by a relay in front of mockupdb (`TlsFront`), which speaks no
TLS itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from exporter.config import parse_config
from exporter.kinds import PROBES
from exporter.probes.base import ProbeResult, Reason, Severity
from exporter.probes.context import ProbeContext, SharedResources
from exporter.probes.mongodb import (
    MongodbConfig,
    MongoState,
    _without_credentials,
    encryption,
)
from tests.conftest import StartServer, free_port
from tests.helpers import (
    config_problems,
    detail,
    probe_config,
    run_once,
    sample,
    samples_of,
    verdicts,
)
from tests.servers.mongodb import (
    AUTHENTICATION_FAILED,
    NOT_A_REPLICA_SET,
    UNAUTHORIZED,
    MockMongo,
    TlsFront,
    member,
    replset_status,
    server_status,
)
from tests.servers.tls import server_context

TIMEOUT = 2.0  # budget 1.8 s: selection 0.9 s, connect 0.72 s, command 1.44 s


def make_config(**fields: Any) -> MongodbConfig:
    """The module's usual probe: name `db`, timeout 2 s."""
    config: MongodbConfig = probe_config(
        "mongodb", name="db", **{"timeout": TIMEOUT, **fields}
    )
    return config


def mongodb_problems(**fields: Any) -> str:
    """The config problems of one mongodb probe entry with *fields*."""
    entry = {"kind": "mongodb", "name": "db", **fields}
    return config_problems(yaml.safe_dump({"probes": [entry]}))


def by_member(result: ProbeResult, name: str) -> dict[str, float]:
    """The values of series *name*, keyed by their `member` label."""
    return {
        dict(labels)["member"]: value
        for labels, value in samples_of(result, name).items()
    }


def the_runners_own_timeout(config: MongodbConfig, result: ProbeResult) -> bool:
    """Whether *result* was cut off by the runner's hard timeout rather than
    ended by a driver timeout (the runner's text for a bare timeout)."""
    return result.error == f"no answer within {config.timeout:g}s"


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


# --- healthy and unhealthy targets --------------------------------------------------


async def test_healthy_standalone(mongo: MockMongo, ctx: ProbeContext) -> None:
    result = await run_once(make_config(uri=mongo.uri()), ctx=ctx)

    assert result.success, result.error
    assert verdicts(result) == {"reachable": True, "connections_under_limit": True}
    assert sample(result, "mongodb_connections", state="current") == 12
    assert sample(result, "mongodb_connections", state="available") == 838
    assert sample(result, "mongodb_server_info", version="7.0.12") == 1
    assert (sample(result, "mongodb_ping_seconds") or 0) > 0
    assert (sample(result, "mongodb_connect_seconds") or 0) > 0


async def test_client_is_kept_between_runs(mongo: MockMongo, ctx: ProbeContext) -> None:
    config = make_config(uri=mongo.uri())
    await run_once(config, ctx=ctx)
    first = ctx.state(MongoState).clients
    result = await run_once(config, ctx=ctx)

    assert result.success, result.error
    assert first is not None and ctx.state(MongoState).clients is first
    # connect time comes only from runs that (re)connected
    assert sample(result, "mongodb_connect_seconds") is None


async def test_fresh_connection_closes_the_client_every_run(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    config = make_config(uri=mongo.uri(), fresh_connection=True)
    for _ in range(2):
        result = await run_once(config, ctx=ctx)
        assert result.success, result.error
        assert ctx.state(MongoState).clients is None


async def test_fresh_connection_closes_in_the_background(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    # A server that never answers endSessions makes every close() wait out
    # its budget (1 s a client): a run with fresh_connection must not.
    mongo.server.autoresponds(lambda r: r.command_name == "endSessions")
    config = make_config(uri=mongo.uri(), fresh_connection=True, timeout=1.0)
    result = await run_once(config, ctx=ctx)
    assert result.success, result.error
    assert ctx.state(MongoState).clients is None


def test_uri_is_not_in_the_repr() -> None:
    config = make_config(uri="mongodb://ops:pa55word@127.0.0.1:27017/")
    assert "pa55word" not in repr(config)


async def test_connections_over_the_ratio_fail_the_warning(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    mongo.answer("serverStatus", server_status(current=900, available=100))
    result = await run_once(make_config(uri=mongo.uri()), ctx=ctx)

    assert verdicts(result)["connections_under_limit"] is False
    assert "900 of 1000" in detail(result, "connections_under_limit")
    assert "limit 80%" in detail(result, "connections_under_limit")
    assert result.success  # a warning does not fail the probe
    assert sample(result, "mongodb_connections", state="current") == 900


async def test_connections_ratio_max_sets_the_limit(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    mongo.answer("serverStatus", server_status(current=900, available=100))
    config = make_config(uri=mongo.uri(), connections_ratio_max=0.95)

    result = await run_once(config, ctx=ctx)

    assert verdicts(result)["connections_under_limit"] is True
    assert "limit 95%" in detail(result, "connections_under_limit")


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
        result = await run_once(config, ctx=ctx)
    finally:
        mongo.stop()

    assert result.success, result.error  # only warnings fail
    assert verdicts(result) == {
        "reachable": True,
        "replset_has_primary": True,
        "replset_members_healthy": False,
        "replica_lag": False,
        "connections_under_limit": True,
    }
    assert "db4:27017" in detail(result, "replset_members_healthy")
    assert "db3:27017 45s" in detail(result, "replica_lag")
    assert by_member(result, "mongodb_replset_member_state") == {
        "db1:27017": 1,
        "db2:27017": 2,
        "db3:27017": 2,
        "db4:27017": 8,
    }
    assert by_member(result, "mongodb_replset_member_healthy") == {
        "db1:27017": 1,
        "db2:27017": 1,
        "db3:27017": 1,
        "db4:27017": 0,
    }
    assert by_member(result, "mongodb_replset_member_lag_seconds") == {
        "db1:27017": 0,
        "db2:27017": 2,
        "db3:27017": 45,
    }
    assert sample(result, "mongodb_replset_has_primary") == 1


async def test_replica_lag_max_sets_the_limit(ctx: ProbeContext) -> None:
    mongo = MockMongo.start(set_name="rs0")
    try:
        mongo.answer(
            "replSetGetStatus",
            replset_status(
                [
                    member(0, "db1:27017", "PRIMARY", is_self=True),
                    member(1, "db2:27017", "SECONDARY", lag_seconds=45),
                ]
            ),
        )
        config = make_config(uri=mongo.uri(), replica_set=True, replica_lag_max="1m")
        result = await run_once(config, ctx=ctx)
    finally:
        mongo.stop()

    assert verdicts(result)["replica_lag"] is True
    assert "max lag 45s behind the primary" in detail(result, "replica_lag")


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
        result = await run_once(config, ctx=ctx)
    finally:
        mongo.stop()

    assert not result.success
    assert result.reason is Reason.CHECK
    assert verdicts(result)["replset_has_primary"] is False
    assert verdicts(result)["reachable"] is True
    assert sample(result, "mongodb_replset_has_primary") == 0
    # without a primary, lag is measured against the newest member
    assert by_member(result, "mongodb_replset_member_lag_seconds") == {
        "db1:27017": 0,
        "db2:27017": 3,
    }


async def test_replica_set_checks_fail_on_a_standalone(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    mongo.answer("replSetGetStatus", NOT_A_REPLICA_SET)
    result = await run_once(make_config(uri=mongo.uri(), replica_set=True), ctx=ctx)

    assert result.reason is Reason.CHECK
    assert verdicts(result)["replset_has_primary"] is False
    assert "not a replica set" in detail(result, "replica_lag")


# --- authentication ---------------------------------------------------------------


async def test_auth_required_when_anonymous_listdatabases_is_refused(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    mongo.answer("listDatabases", UNAUTHORIZED)
    result = await run_once(make_config(uri=mongo.uri(), expect_auth=True), ctx=ctx)

    assert result.success, result.error
    assert verdicts(result)["auth_required"] is True
    assert "refused (Unauthorized)" in detail(result, "auth_required")


async def test_auth_not_required_when_anonymous_listdatabases_is_allowed(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    databases = [{"name": "admin", "sizeOnDisk": 40960.0, "empty": False}]
    mongo.answer("listDatabases", {"databases": databases, "totalSize": 40960.0})
    result = await run_once(make_config(uri=mongo.uri(), expect_auth=True), ctx=ctx)

    assert result.reason is Reason.CHECK
    assert verdicts(result)["auth_required"] is False
    assert "allowed" in detail(result, "auth_required")


async def test_wrong_password_is_auth_and_never_shown(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    conversations: list[dict[str, Any]] = []

    def refuse(request: Any) -> bool:
        conversations.append(dict(request.doc))
        return bool(request.replies(AUTHENTICATION_FAILED))

    mongo.answer("saslStart", refuse)
    config = make_config(uri=mongo.uri(user="app"), password="hunter2-secret")
    result = await run_once(config, ctx=ctx)

    assert result.reason is Reason.AUTH
    assert "code 18 (AuthenticationFailed)" in result.error
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
    missing = await run_once(config, ctx=ctx)
    assert missing.reason is Reason.CONFIG
    assert "password_file" in missing.error

    secret.write_text("from-file\n")
    mongo.answer("saslStart", AUTHENTICATION_FAILED)
    result = await run_once(config, ctx=ctx)
    assert result.reason is Reason.AUTH


async def test_empty_inline_password_leaves_the_file(
    mongo: MockMongo, ctx: ProbeContext, tmp_path: Path
) -> None:
    # `password: ${MONGO_PASSWORD:-}` with the variable unset.
    secret = tmp_path / "mongo-password"
    secret.write_text("from-file\n")
    logins: list[str] = []

    def refuse(request: Any) -> bool:
        logins.append(bytes(request.doc["payload"]).decode())
        return bool(request.replies(AUTHENTICATION_FAILED))

    mongo.answer("saslStart", refuse)
    config = make_config(
        uri=mongo.uri(user="app"), password="", password_file=str(secret)
    )

    result = await run_once(config, ctx=ctx)

    # The driver logged in as app: it had the file's password.
    assert result.reason is Reason.AUTH, result.error
    assert logins and "n=app," in logins[0]


async def test_unauthorized_probe_command_is_auth(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    denied = UNAUTHORIZED | {"errmsg": "not authorized on admin to execute command"}
    mongo.answer("serverStatus", denied)
    result = await run_once(make_config(uri=mongo.uri()), ctx=ctx)

    assert result.reason is Reason.AUTH
    assert "code 13" in result.error


# --- broken targets and recovery ---------------------------------------------------


async def test_hangup_mid_command_fails_then_recovers(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    config = make_config(uri=mongo.uri())
    hangup = mongo.answer("serverStatus", lambda request: request.hangup())
    failed = await run_once(config, ctx=ctx)
    hangup.cancel()
    recovered = await run_once(config, ctx=ctx)

    assert failed.reason is Reason.CONNECT
    assert not any(verdicts(failed).values())
    assert recovered.success, recovered.error


async def test_stopped_server_is_connect_and_restart_recovers(
    ctx: ProbeContext,
) -> None:
    mongo = MockMongo.start()
    config = make_config(uri=mongo.uri())
    try:
        assert (await run_once(config, ctx=ctx)).success
    finally:
        mongo.stop()

    stopped = await run_once(config, ctx=ctx)
    assert stopped.reason is Reason.CONNECT

    restarted = MockMongo.start(port=mongo.port)
    try:
        recovered = await run_once(config, ctx=ctx)
    finally:
        restarted.stop()
    assert recovered.success, recovered.error


async def test_nothing_listening_is_connect_without_the_password(
    ctx: ProbeContext,
) -> None:
    uri = f"mongodb://app:pw-in-uri-42@127.0.0.1:{free_port()}/?directConnection=true"
    result = await run_once(make_config(uri=uri), ctx=ctx)

    # refused, as the client's monitor saw it, not "no answer in time"
    assert result.reason is Reason.CONNECT
    assert "pw-in-uri-42" not in result.error
    assert all("pw-in-uri-42" not in check.detail for check in result.checks)


async def test_unanswered_command_is_timeout_on_the_drivers_deadline(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    config = make_config(uri=mongo.uri())
    hang = mongo.never_answer("serverStatus")
    result = await run_once(config, ctx=ctx)
    hang.cancel()

    assert result.reason is Reason.TIMEOUT
    # the socket timeout, a share of ctx.deadline, fired before the runner's
    assert not the_runners_own_timeout(config, result), result.error
    assert (await run_once(config, ctx=ctx)).success


async def test_commands_that_take_the_whole_budget_end_the_run_and_its_client(
    ctx: ProbeContext,
) -> None:
    mongo = MockMongo.start(set_name="rs0")
    config = make_config(uri=mongo.uri(), replica_set=True)

    def slow_status(request: Any) -> bool:
        # A slow server, not a wait of the test's: 1 s, within the 1.44 s
        # socket timeout, answered from mockupdb's own thread.
        time.sleep(1.0)
        return bool(request.replies(server_status()))

    try:
        mongo.answer("serverStatus", slow_status)
        # 1 s + replSetGetStatus's 1.44 s socket timeout would overrun the
        # run: the probe ends it at its budget (1.8 s of 2 s), by itself.
        hang = mongo.never_answer("replSetGetStatus")
        result = await run_once(config, ctx=ctx)
        hang.cancel()
        assert result.reason is Reason.TIMEOUT
        assert not the_runners_own_timeout(config, result), result.error
        assert "answers took the whole budget (1.8s)" in result.error
        assert ctx.state(MongoState).clients is None

        mongo.answer("serverStatus", server_status())
        mongo.answer(
            "replSetGetStatus",
            replset_status([member(0, "db1:27017", "PRIMARY", is_self=True)]),
        )
        recovered = await run_once(config, ctx=ctx)
    finally:
        mongo.stop()
    assert recovered.success, recovered.error


async def test_silent_server_is_timeout(
    tcp_server: StartServer, ctx: ProbeContext
) -> None:
    port = await tcp_server()  # accepts, never answers the handshake
    config = make_config(uri=f"mongodb://127.0.0.1:{port}/?directConnection=true")
    result = await run_once(config, ctx=ctx)

    assert result.reason is Reason.TIMEOUT
    # the connect timeout, a share of ctx.deadline, fired before the runner's
    assert not the_runners_own_timeout(config, result), result.error
    assert f"127.0.0.1:{port}" in result.error


async def test_garbage_server_status_is_protocol(
    mongo: MockMongo, ctx: ProbeContext
) -> None:
    mongo.answer("serverStatus", {"ok": 1.0, "connections": "plenty"})
    result = await run_once(make_config(uri=mongo.uri()), ctx=ctx)

    assert result.reason is Reason.PROTOCOL
    assert "connections" in result.error


# --- TLS (tls_config) -------------------------------------------------------------------


@pytest.fixture
async def tls_mongo(
    mongo: MockMongo, ca: trustme.CA
) -> AsyncIterator[tuple[MockMongo, TlsFront]]:
    """*mongo* behind a TLS port with a certificate for 127.0.0.1 from *ca*."""
    front = await TlsFront.start(mongo.port, server_context(ca))
    yield mongo, front
    await front.stop()


def tls_uri(front: TlsFront) -> str:
    return f"mongodb://127.0.0.1:{front.port}/?directConnection=true"


async def test_tls_config_ca_file_verifies_the_server(
    tls_mongo: tuple[MockMongo, TlsFront], ca_file: Path, ctx: ProbeContext
) -> None:
    _, front = tls_mongo
    config = make_config(uri=tls_uri(front), tls_config={"ca_file": str(ca_file)})

    result = await run_once(config, ctx=ctx)

    assert result.success, result.error
    assert sample(result, "mongodb_server_info", version="7.0.12") == 1


async def test_tls_config_with_a_wrong_ca_is_tls(
    tls_mongo: tuple[MockMongo, TlsFront], ctx: ProbeContext, tmp_path: Path
) -> None:
    _, front = tls_mongo
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    config = make_config(uri=tls_uri(front), tls_config={"ca_file": str(other_ca)})

    result = await run_once(config, ctx=ctx)

    assert result.reason is Reason.TLS, result.error
    assert "CERTIFICATE_VERIFY_FAILED" in result.error


async def test_tls_config_insecure_skip_verify(
    tls_mongo: tuple[MockMongo, TlsFront], ctx: ProbeContext, tmp_path: Path
) -> None:
    _, front = tls_mongo
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    config = make_config(
        uri=tls_uri(front),
        tls_config={"ca_file": str(other_ca), "insecure_skip_verify": True},
    )

    result = await run_once(config, ctx=ctx)

    assert result.success, result.error


async def test_tls_config_client_certificate_with_its_key_in_cert_file(
    mongo: MockMongo,
    ca: trustme.CA,
    ca_file: Path,
    ctx: ProbeContext,
    tmp_path: Path,
) -> None:
    # PyMongo's tlsCertificateKeyFile: certificate and key in one file.
    client = ca.issue_cert("readiness-exporter")
    cert_file = tmp_path / "client.pem"
    cert_file.write_bytes(
        client.private_key_pem.bytes() + client.cert_chain_pems[0].bytes()
    )
    front = await TlsFront.start(mongo.port, server_context(ca, client_ca=ca))
    other_ctx = ProbeContext("db-without", SharedResources())
    try:
        with_cert = await run_once(
            make_config(
                uri=tls_uri(front),
                tls_config={"ca_file": str(ca_file), "cert_file": str(cert_file)},
            ),
            ctx=ctx,
        )
        without = await run_once(
            make_config(uri=tls_uri(front), tls_config={"ca_file": str(ca_file)}),
            ctx=other_ctx,
        )
    finally:
        await other_ctx.aclose()
        await front.stop()

    assert with_cert.success, with_cert.error
    # Refused: asyncio's TLS server hangs up before its alert leaves, so the
    # client sees a closed connection (see tests/servers/tls.py).
    assert without.reason is Reason.CONNECT, without.error


async def test_tls_endpoint_without_tls_config_is_not_spoken_to_in_plain(
    tls_mongo: tuple[MockMongo, TlsFront], ctx: ProbeContext
) -> None:
    _, front = tls_mongo

    result = await run_once(make_config(uri=tls_uri(front)), ctx=ctx)

    # the TLS port hangs up on a plain hello
    assert result.reason is Reason.CONNECT, result.error


# --- require_tls: connection_encrypted ---------------------------------------------------


async def test_require_tls_passes_over_tls_config(
    tls_mongo: tuple[MockMongo, TlsFront], ca_file: Path, ctx: ProbeContext
) -> None:
    _, front = tls_mongo
    config = make_config(
        uri=tls_uri(front), tls_config={"ca_file": str(ca_file)}, require_tls=True
    )

    result = await run_once(config, ctx=ctx)

    assert result.success, result.error
    assert verdicts(result)["connection_encrypted"] is True
    assert detail(result, "connection_encrypted") == (
        "TLS on (tls_config) and the server answered over it"
    )


@pytest.mark.parametrize(
    ("options", "source"),
    [
        ("tls=true&tlsCAFile={ca}", "tls=true in the uri"),
        ("ssl=true&tlsCAFile={ca}", "tls=true in the uri"),
        ("tlsCAFile={ca}", "the uri's TLS options"),
    ],
)
async def test_require_tls_passes_over_the_uris_tls(
    tls_mongo: tuple[MockMongo, TlsFront],
    ca_file: Path,
    ctx: ProbeContext,
    options: str,
    source: str,
) -> None:
    _, front = tls_mongo
    uri = f"{tls_uri(front)}&{options.format(ca=ca_file)}"

    result = await run_once(make_config(uri=uri, require_tls=True), ctx=ctx)

    assert result.success, result.error
    assert detail(result, "connection_encrypted") == (
        f"TLS on ({source}) and the server answered over it"
    )


async def test_require_tls_says_when_the_certificate_is_not_verified(
    tls_mongo: tuple[MockMongo, TlsFront], ctx: ProbeContext
) -> None:
    _, front = tls_mongo
    uri = f"{tls_uri(front)}&tls=true&tlsInsecure=true"

    result = await run_once(make_config(uri=uri, require_tls=True), ctx=ctx)

    assert result.success, result.error
    assert detail(result, "connection_encrypted") == (
        "TLS on (tls=true in the uri) and the server answered over it; the"
        " server's certificate is not verified"
    )


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ("directConnection=true", "no tls_config and no tls=true in the uri"),
        ("directConnection=true&tls=false", "the uri says tls=false"),
    ],
)
async def test_require_tls_fails_on_a_plain_connection(
    mongo: MockMongo, ctx: ProbeContext, options: str, why: str
) -> None:
    result = await run_once(
        make_config(uri=mongo.uri(options=options), require_tls=True), ctx=ctx
    )

    # The server answered: everything else is judged, and the critical
    # finding is the plain text.
    assert result.reason is Reason.CHECK, result.error
    assert result.error == "failed: connection_encrypted"
    assert verdicts(result) == {
        "reachable": True,
        "connection_encrypted": False,
        "connections_under_limit": True,
    }
    assert detail(result, "connection_encrypted") == f"plain text: {why}"


async def test_require_tls_is_not_judged_when_the_handshake_fails(
    tls_mongo: tuple[MockMongo, TlsFront], ctx: ProbeContext, tmp_path: Path
) -> None:
    _, front = tls_mongo
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    config = make_config(
        uri=tls_uri(front), tls_config={"ca_file": str(other_ca)}, require_tls=True
    )

    result = await run_once(config, ctx=ctx)

    assert result.reason is Reason.TLS, result.error
    assert verdicts(result)["connection_encrypted"] is False
    assert detail(result, "connection_encrypted").startswith("not evaluated (tls:")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "mongodb+srv://app@cluster0.example.net/",
            (True, "TLS on (mongodb+srv:// (TLS by default)) and the server"),
        ),
        ("mongodb+srv://app@cluster0.example.net/?tls=false", (False, "plain text")),
        ("mongodb+srv://app@cluster0.example.net/?ssl=false", (False, "plain text")),
        ("mongodb://h/?SSL=true", (True, "TLS on (tls=true in the uri)")),
        ("mongodb://h/?tlsAllowInvalidHostnames=false", (True, "TLS on (the uri's")),
    ],
)
def test_encryption_reads_the_uri_as_pymongo_does(
    uri: str, expected: tuple[bool, str]
) -> None:
    passed, why = encryption(make_config(uri=uri, require_tls=True))
    assert (passed, why[: len(expected[1])]) == expected


@pytest.mark.parametrize(
    ("field", "content", "message"),
    [
        ("ca_file", None, "cannot read ca_file"),
        ("ca_file", b"not a certificate", "cannot load ca_file"),
        ("cert_file", None, "cannot read cert_file"),
    ],
)
async def test_unusable_tls_files_are_a_config_failure(
    mongo: MockMongo,
    ctx: ProbeContext,
    tmp_path: Path,
    field: str,
    content: bytes | None,
    message: str,
) -> None:
    path = tmp_path / "tls.pem"
    if content is not None:
        path.write_bytes(content)
    config = make_config(uri=mongo.uri(), tls_config={field: str(path)})

    result = await run_once(config, ctx=ctx)

    assert result.reason is Reason.CONFIG, result.error
    assert f"{message} {path}" in result.error


@pytest.mark.parametrize(
    ("tls_config", "refused"),
    [
        ({"server_name": "db.example"}, "tls_config.server_name"),
        ({"min_version": "TLS13"}, "tls_config.min_version"),
        (
            {"cert_file": "/c.pem", "key_file": "/k.pem"},
            "tls_config.key_file",
        ),
        (
            {"server_name": "db.example", "min_version": "TLS12"},
            "tls_config.server_name, tls_config.min_version",
        ),
    ],
)
def test_tls_config_fields_pymongo_cannot_honour_are_refused(
    tls_config: dict[str, str], refused: str
) -> None:
    problems = mongodb_problems(uri="mongodb://h", tls_config=tls_config)

    assert f"{refused}: not supported by the mongodb kind; remove it" in problems


@pytest.mark.parametrize(
    ("query", "named"),
    [("tls=true", "tls"), ("ssl=true&tlsCAFile=/x.pem", "ssl, tlsCAFile")],
)
def test_tls_options_in_the_uri_and_tls_config_together_are_refused(
    query: str, named: str
) -> None:
    problems = mongodb_problems(
        uri=f"mongodb://h/?replicaSet=rs0&{query}", tls_config={"ca_file": "/ca.pem"}
    )

    assert (
        f"TLS is set both in the uri ({named}) and in tls_config; keep one" in problems
    )


def test_tls_config_loads() -> None:
    config = make_config(
        uri="mongodb://h",
        tls_config={
            "ca_file": "/ca.pem",
            "cert_file": "/client.pem",
            "insecure_skip_verify": True,
        },
    )
    assert config.tls_config is not None
    assert config.tls_config.ca_file == Path("/ca.pem")


# --- config ----------------------------------------------------------------------


def test_plan_follows_the_config() -> None:
    plan = PROBES["mongodb"].plan

    assert [s.name for s in plan(make_config(uri="mongodb://h"))] == [
        "reachable",
        "connections_under_limit",
    ]
    everything = make_config(
        uri="mongodb://h", expect_auth=True, replica_set=True, require_tls=True
    )
    assert [(s.name, s.category, s.severity) for s in plan(everything)] == [
        ("reachable", "reliability", "critical"),
        ("auth_required", "security", "critical"),
        ("connection_encrypted", "security", "critical"),
        ("replset_has_primary", "reliability", "critical"),
        ("replset_members_healthy", "reliability", "warning"),
        ("replica_lag", "reliability", "warning"),
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
        ({"uri": "mongodb://h/?bogusOption=1"}, "not a valid MongoDB connection"),
        (
            {"uri": "mongodb://h", "connections_ratio_max": 1.5},
            "expected at most 1.0, got 1.5",
        ),
        ({"uri": "mongodb://h", "replica_lag_max": "soon"}, "invalid duration"),
        (
            {"uri": "mongodb://h", "ca_file": "/ca.pem"},
            "field 'ca_file' is now 'tls_config.ca_file' (renamed in 0.2.0",
        ),
        (
            {"uri": "mongodb://h", "insecure_skip_verify": True},
            "field 'insecure_skip_verify' is now 'tls_config.insecure_skip_verify'",
        ),
        (
            {
                "uri": "mongodb://h",
                "expect_auth": True,
                "checks": {"auth_enforced": {"enabled": False}},
            },
            "check 'auth_enforced' is now 'auth_required' (renamed in 0.2.0)",
        ),
        (
            {
                "uri": "mongodb://h",
                "replica_set": True,
                "checks": {"replset_lag": {"severity": "info"}},
            },
            "check 'replset_lag' is now 'replica_lag' (renamed in 0.2.0)",
        ),
    ],
)
def test_bad_config_says_what_to_write(fields: dict[str, Any], message: str) -> None:
    assert message in mongodb_problems(**fields)


def test_password_and_password_file_together_is_one_error() -> None:
    problems = mongodb_problems(
        uri="mongodb://app@h", password="x-secret", password_file="/p"
    )

    assert problems.splitlines() == [
        "probe 'db' (probes[0]): set either password or password_file, not both"
        " (password_file is read at every use, so rotation needs no reload)"
    ]


def test_overrides_of_the_new_check_names_apply() -> None:
    entry = {
        "kind": "mongodb",
        "name": "db",
        "uri": "mongodb://h",
        "expect_auth": True,
        "replica_set": True,
        "checks": {
            "auth_required": {"severity": "warning"},
            "replica_lag": {"enabled": False},
        },
    }
    config = parse_config(yaml.safe_dump({"probes": [entry]})).probes[0]

    assert config.checks["auth_required"].severity is Severity.WARNING
    assert config.checks["replica_lag"].enabled is False


def test_bad_uri_message_hides_the_password() -> None:
    problems = mongodb_problems(uri="mongodb://app:s3cr3t-pw@h/?bogusOption=1")
    assert "not a valid MongoDB connection" in problems
    assert "s3cr3t-pw" not in problems


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
