"""A stand-in MongoDB for tests: mockupdb answering with real-shaped replies.

No mongod can be installed here, so the probe is tested against mockupdb,
MongoDB's own wire-protocol mock. The canned documents copy the shape of
what MongoDB 7.0 returns for hello, serverStatus and replSetGetStatus.

    mongo = MockMongo.start()                      # standalone, 127.0.0.1:PORT
    mongo.uri()            # mongodb://127.0.0.1:PORT/?directConnection=true
    mongo.answer("serverStatus", server_status(current=900, available=100))
    hang = mongo.never_answer("serverStatus"); hang.cancel()
    mongo.stop(); again = MockMongo.start(port=mongo.port)   # a restart
    front = await TlsFront.start(mongo.port, server_context)  # TLS on a port of
    front.port; await front.stop()                            # its own
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Int64, Timestamp
from mockupdb import MockupDB

# pymongo 4.20 refuses servers below wire version 9; 21 is MongoDB 7.0.
MAX_WIRE_VERSION = 21
NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def hello_reply(
    port: int, *, set_name: str | None = None, primary: bool = True
) -> dict[str, Any]:
    """What `hello` (and the legacy `ismaster` handshake) answers."""
    reply: dict[str, Any] = {
        "isWritablePrimary": primary,
        "ismaster": primary,
        "secondary": not primary,
        "helloOk": True,
        "topologyVersion": {"processId": "6570a1b2c3d4e5f6a7b8c9d0", "counter": 6},
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "localTime": NOW,
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": 41,
        "minWireVersion": 0,
        "maxWireVersion": MAX_WIRE_VERSION,
        "readOnly": False,
    }
    if set_name is not None:
        me = f"127.0.0.1:{port}"
        reply.update(setName=set_name, setVersion=1, hosts=[me], me=me)
        if primary:
            reply["primary"] = me
    return reply


def server_status(
    *, current: int = 12, available: int = 838, version: str = "7.0.12"
) -> dict[str, Any]:
    """A trimmed serverStatus reply of a mongod 7.0."""
    return {
        "host": "db1",
        "version": version,
        "process": "mongod",
        "pid": Int64(1),
        "uptime": 86_400.0,
        "uptimeMillis": Int64(86_400_000),
        "uptimeEstimate": Int64(86_400),
        "localTime": NOW,
        "asserts": {"regular": 0, "warning": 0, "msg": 0, "user": 17, "rollovers": 0},
        "connections": {
            "current": current,
            "available": available,
            "totalCreated": 311,
            "rejected": 0,
            "active": 4,
            "threaded": current,
            "exhaustIsMaster": 0,
            "exhaustHello": 2,
            "awaitingTopologyChanges": 2,
        },
        "mem": {"bits": 64, "resident": 212, "virtual": 2870, "supported": True},
        "ok": 1.0,
    }


def member(
    index: int,
    name: str,
    state_text: str,
    *,
    lag_seconds: float = 0.0,
    is_self: bool = False,
) -> dict[str, Any]:
    """One entry of replSetGetStatus.members, as a reachable or down member."""
    states = {"PRIMARY": 1, "SECONDARY": 2, "ARBITER": 7}
    down = state_text not in states
    optime_date = EPOCH if down else NOW - timedelta(seconds=lag_seconds)
    seconds = int(optime_date.timestamp()) if not down else 0
    entry: dict[str, Any] = {
        "_id": index,
        "name": name,
        "health": 0.0 if down else 1.0,
        "state": 8 if down else states[state_text],
        "stateStr": "(not reachable/healthy)" if down else state_text,
        "uptime": 0 if down else 86_400,
        "optime": {"ts": Timestamp(seconds, 1), "t": Int64(-1 if down else 3)},
        "optimeDate": optime_date,
        "lastAppliedWallTime": optime_date,
        "lastDurableWallTime": optime_date,
        "syncSourceHost": "",
        "syncSourceId": -1,
        "infoMessage": "",
        "configVersion": -1 if down else 1,
        "configTerm": -1 if down else 3,
    }
    if is_self:
        entry["self"] = True
    else:
        entry.update(
            lastHeartbeat=NOW,
            lastHeartbeatRecv=EPOCH if down else NOW,
            pingMs=Int64(0),
            lastHeartbeatMessage=(
                f"Error connecting to {name} :: caused by :: Connection refused"
                if down
                else ""
            ),
        )
    if state_text == "PRIMARY":
        entry.update(electionTime=Timestamp(1_700_000_000, 1), electionDate=NOW)
    return entry


def replset_status(
    members: list[dict[str, Any]], set_name: str = "rs0"
) -> dict[str, Any]:
    """A replSetGetStatus reply around *members*."""
    my_state = next((m["state"] for m in members if m.get("self")), 2)
    return {
        "set": set_name,
        "date": NOW,
        "myState": my_state,
        "term": Int64(3),
        "syncSourceHost": "",
        "syncSourceId": -1,
        "heartbeatIntervalMillis": Int64(2000),
        "majorityVoteCount": len(members) // 2 + 1,
        "writeMajorityCount": len(members) // 2 + 1,
        "votingMembersCount": len(members),
        "writableVotingMembersCount": len(members),
        "members": members,
        "ok": 1.0,
    }


NOT_A_REPLICA_SET = {
    "ok": 0.0,
    "errmsg": "not running with --replSet",
    "code": 76,
    "codeName": "NoReplicationEnabled",
}
UNAUTHORIZED = {
    "ok": 0.0,
    "errmsg": "command listDatabases requires authentication",
    "code": 13,
    "codeName": "Unauthorized",
}
AUTHENTICATION_FAILED = {
    "ok": 0.0,
    "errmsg": "Authentication failed.",
    "code": 18,
    "codeName": "AuthenticationFailed",
}


@dataclass
class MockMongo:
    """A running mockupdb server with the handshake and usual commands wired."""

    server: MockupDB
    port: int

    @classmethod
    def start(
        cls,
        port: int | None = None,
        *,
        set_name: str | None = None,
        primary: bool = True,
    ) -> MockMongo:
        # A large request_timeout stops mockupdb from asserting on idle.
        server = MockupDB(port=port, request_timeout=int(1e6))
        bound = server.run()
        mongo = cls(server, bound)
        hello = hello_reply(bound, set_name=set_name, primary=primary)
        for command, reply in (
            ("ismaster", hello),
            ("hello", hello),
            ("ping", {"ok": 1.0}),
            ("serverStatus", server_status()),
        ):
            mongo.answer(command, reply)
        # close() sends {"endSessions": [lsid, ...]}; a name matcher would only
        # match {"endSessions": 1}, so match on the command name instead.
        server.autoresponds(lambda r: r.command_name == "endSessions" and r.ok())
        return mongo

    def answer(
        self, command: str, reply: dict[str, Any] | Callable[[Any], bool]
    ) -> Any:
        """Answer *command* with *reply*, a document or a handler such as
        `lambda r: r.hangup()`; the newest answer wins, `.cancel()` drops it."""
        return self.server.autoresponds(command, reply)

    def never_answer(self, command: str) -> Any:
        """Read *command* and never reply, until `.cancel()` on the result.

        Not "no responder": mockupdb queues unanswered requests, and the next
        `autoresponds` then trips over the queued request's closed socket.
        """
        return self.server.autoresponds(command, lambda request: True)

    def uri(
        self, user: str | None = None, options: str = "directConnection=true"
    ) -> str:
        userinfo = f"{user}@" if user else ""
        return f"mongodb://{userinfo}127.0.0.1:{self.port}/?{options}"

    def stop(self) -> None:
        # mockupdb's accept loop wakes once a second to look at its stop flag,
        # and stop() waits for it. Raise the flag and knock on the port so it
        # looks at once: each test saves about a second.
        self.server._stopped = True
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1),
        ):
            pass
        self.server.stop()


@dataclass
class TlsFront:
    """A TLS port on 127.0.0.1 relaying to a plain one: a MongoDB server with
    `net.tls.mode: requireTLS`, as a client sees it. mockupdb speaks no TLS
    itself (its own TLS support is gone with Python 3.12's ssl module).

    Runs on the test's event loop; the relayed bytes are the client's and
    the server's own, untouched.
    """

    server: asyncio.Server
    port: int
    _streams: set[asyncio.StreamWriter] = field(default_factory=set)

    @classmethod
    async def start(cls, backend_port: int, context: ssl.SSLContext) -> TlsFront:
        """Serve TLS with *context*; relay each connection to *backend_port*."""
        streams: set[asyncio.StreamWriter] = set()

        async def relay(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            try:
                backend = await asyncio.open_connection("127.0.0.1", backend_port)
            except OSError:
                writer.close()
                return
            streams.update((writer, backend[1]))
            await asyncio.gather(_pipe(reader, backend[1]), _pipe(backend[0], writer))
            streams.difference_update((writer, backend[1]))

        server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
        port: int = server.sockets[0].getsockname()[1]
        return cls(server, port, streams)

    async def stop(self) -> None:
        """Stop listening and cut every relayed connection."""
        self.server.close()
        for writer in list(self._streams):
            writer.close()
        await self.server.wait_closed()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy *source* to *sink* until either side is done, then close *sink*."""
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        sink.close()
