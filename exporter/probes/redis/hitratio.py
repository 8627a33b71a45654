"""The redis kind's hit ratio: keyspace hits over lookups between two runs,
other clients' lookups only, judged only on enough of them.

INFO's `keyspace_hits`/`keyspace_misses` count every key lookup of the server
(all databases), this exporter's own BullMQ reads included, and Redis 6 and 7
have no read that returns a size without being counted. So the daemon keeps
one `LookupLedger` per server address (`ctx.shared`): every probe that reads
keys adds the hits and misses its reads made, and every probe of that server
takes the ledger's growth since its previous run off the counters' growth,
whichever probe made the reads. One probe's reads never change another
probe's verdict:

    readiness_redis_hit_ratio_lookups{probe="cache"} 1250
    readiness_redis_hit_ratio{probe="cache"} 0.93
    readiness_check_passed{probe="cache",check="hit_ratio",...} 1

Ordering: the probes of one server take turns (the ledger's lock) for their
round trips, and a probe settles its replies in the ledger before its turn
ends: it notes the tally (every read the server ran before this run's INFO)
and then adds its own reads (run after that INFO, so in its next window).
The server thus runs the daemon's reads in the order the ledger records
them, and each window takes off exactly the daemon's reads inside it.
Connecting is outside the turn. Turns are taken only once a probe of the
server reads keys: with no reads the ledger stays at zero and order does not
matter. A run that waited half its budget for its turn (another probe's round
trip hung) goes ahead without it rather than fail a healthy server: its
window is unknown, so it starts a new baseline, every probe's if it reads
keys itself. What stays approximate: the same server under two addresses
gets two ledgers; a run whose replies were lost after its reads were sent (a
timeout) makes every probe of the server start a new baseline rather than
guess; the first run that reads keys on a server may overlap a run of
another probe that took no turn, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from redis.exceptions import ResponseError

from exporter.probes.base import Checks, Sample
from exporter.probes.redis.config import RedisConfig
from exporter.probes.redis.connection import error_code
from exporter.probes.redis.url import Target


@dataclass(frozen=True, slots=True)
class Keyspace:
    """INFO's keyspace counters and the server process (`run_id`) they count."""

    run_id: str
    hits: int
    misses: int


@dataclass(frozen=True, slots=True)
class Tally:
    """The ledger at one moment."""

    hits: int
    misses: int
    unaccounted: int


class LookupLedger:
    """The key lookups the daemon's own probes made on one server, and the
    lock its probes take turns with.

    *unaccounted* counts runs that sent key reads and did not read all the
    replies (a timeout), or sent them out of turn: the server may have
    counted lookups nobody recorded in order, so every probe of the server
    starts a new baseline rather than count them as others' traffic.
    *has_readers* turns on when a probe of the server first reads keys, and
    turns are taken from then on.
    """

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.hits = 0
        self.misses = 0
        self.unaccounted = 0
        self.has_readers = False

    def tally(self) -> Tally:
        return Tally(self.hits, self.misses, self.unaccounted)


class LedgerTurn:
    """One run's turn at its server: notes in *before* the tally as this
    run's INFO found it, then adds the run's own key reads (the replies from
    *first_read* on)."""

    def __init__(self, ledger: LookupLedger, first_read: int, reads: int) -> None:
        self._ledger = ledger
        self._first_read = first_read
        self._reads = reads
        ledger.has_readers |= reads > 0
        self.before = ledger.tally()  # noted again when the replies are in
        self.in_order = True  # False once the run went ahead without its turn

    @property
    def lock(self) -> asyncio.Lock:
        return self._ledger.lock

    @property
    def needed(self) -> bool:
        return self._ledger.has_readers

    def skipped(self) -> None:
        self.in_order = False
        if self._reads:
            self._ledger.unaccounted += 1

    def answered(self, replies: list[object]) -> None:
        self.before = self._ledger.tally()
        hits, misses = own_lookups(replies[self._first_read :])
        self._ledger.hits += hits
        self._ledger.misses += misses

    def unanswered(self) -> None:
        if self._reads:
            self._ledger.unaccounted += 1


def ledger_key(target: Target) -> Hashable:
    """One ledger per server: its counters are server-wide, so not per db.
    The same server under two names (or its TLS and plain ports) gets two."""
    return ("redis keyspace lookups", target.host, target.port)


def own_lookups(replies: Sequence[object]) -> tuple[int, int]:
    """The keyspace hits and misses that key reads answered by *replies* made.

    For LLEN/ZCARD/HGETALL: Redis keeps no empty list, sorted set or hash, so
    a size above zero (a non-empty HGETALL) is a hit and zero (empty) a miss;
    WRONGTYPE is answered after the key was found (a hit); any other error
    (NOPERM, LOADING, MASTERDOWN) refused the command before its lookup.
    """
    hits = misses = 0
    for reply in replies:
        if isinstance(reply, ResponseError):
            hits += error_code(reply) == "WRONGTYPE"
        elif reply:
            hits += 1
        else:
            misses += 1
    return hits, misses


@dataclass(frozen=True, slots=True)
class Lookups:
    """Other clients' lookups in one window, and the daemon's own left out."""

    hits: int
    misses: int
    ours: int

    @property
    def total(self) -> int:
        return self.hits + self.misses

    def own(self, before: str, after: str) -> str:
        """How many lookups of the daemon's own were left out, if any."""
        if not self.ours:
            return ""
        return f"{before}{self.ours} of this exporter's own left out{after}"


@dataclass(frozen=True, slots=True)
class _Baseline:
    server: Keyspace
    ours: Tally


class HitWindow:
    """The counters at a probe's previous run, to measure the next window."""

    def __init__(self) -> None:
        self.baseline: _Baseline | None = None
        self.started = False

    def reset(self) -> None:
        """After a failed run: this run's place in the ledger is unknown."""
        self.baseline = None
        self.started = True

    def advance(
        self, server: Keyspace, ours: Tally, in_order: bool = True
    ) -> Lookups | str:
        """Others' lookups since the previous run, or why there is no window."""
        if not in_order:
            self.reset()
            return (
                "another probe's round trip to this server held its turn past"
                " half this run's budget, so this window is unknown: new baseline"
            )
        previous, self.baseline = self.baseline, _Baseline(server, ours)
        started, self.started = self.started, True
        if previous is None:
            if started:
                return "new baseline: the previous run had no window"
            return "first run: baseline taken"
        if server.run_id != previous.server.run_id:
            return "the server restarted (new run_id): new baseline"
        if server.hits < previous.server.hits or server.misses < previous.server.misses:
            return "counters went back (CONFIG RESETSTAT): new baseline"
        if ours.unaccounted != previous.ours.unaccounted:
            return (
                "a run reading BullMQ keys of this server lost its replies or"
                " ran out of turn, so its lookups are unknown: new baseline"
            )
        own_hits = ours.hits - previous.ours.hits
        own_misses = ours.misses - previous.ours.misses
        return Lookups(
            hits=max(0, server.hits - previous.server.hits - own_hits),
            misses=max(0, server.misses - previous.server.misses - own_misses),
            ours=own_hits + own_misses,
        )


def judge_hit_ratio(
    checks: Checks,
    config: RedisConfig,
    window: HitWindow,
    server: Keyspace,
    ours: Tally,
    in_order: bool = True,
) -> list[Sample]:
    """Record `hit_ratio`; the ratio is exported only when it was judged."""
    lookups = window.advance(server, ours, in_order)
    samples: list[Sample] = []
    passed = True
    if isinstance(lookups, str):
        detail = lookups
    elif lookups.total < config.hit_ratio_lookups_min:
        samples.append(Sample("redis_hit_ratio_lookups", lookups.total))
        detail = (
            f"not enough traffic to judge: {lookups.total} lookups since the last"
            f" run{lookups.own(' (', ')')}, floor {config.hit_ratio_lookups_min}"
        )
    else:
        ratio = lookups.hits / lookups.total
        samples.append(Sample("redis_hit_ratio_lookups", lookups.total))
        samples.append(Sample("redis_hit_ratio", ratio))
        floor = config.hit_ratio_min or 0.0
        passed = ratio >= floor
        detail = (
            f"ratio {ratio:.2f} ({lookups.hits} hits, {lookups.misses} misses since"
            f" the last run{lookups.own('; ', '')}), floor {floor:.2f}"
        )
    if config.hit_ratio_min is not None:
        checks.record("hit_ratio", passed, detail)
    return samples
