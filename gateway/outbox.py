"""The outbox: signed readings and claims that the broker has not acknowledged yet.

SQLite in WAL mode with synchronous=FULL, so a committed transaction survives a power
cut. A reading is inserted in the same transaction that advances the chain head
(seq, hash of the last body): after a crash the next reading continues the chain from
exactly the last durable one, and nothing that was published can be signed twice with
the same seq. Rows are deleted only after the broker's PUBACK; on start every row left
is re-sent in seq order.

Group commit: the writer hands over every reading that is pending at once, so one fsync
covers many readings under load and one reading when idle.

Size bound (`max_readings`). When the broker is away longer than the bound allows, the
outbox thins the oldest readings. Energy is never lost: energy comes from cumulative
registers, and the first reading of every device in every 15-minute interval is marked
`keep` and thinned last, so the server still has a register value at (just after) every
interval boundary and interval energies stay exact; only resolution within an interval
is lost, and the thinned seqs are gaps that the server sees and counts. Only when the
outbox holds nothing but kept readings are the oldest of those dropped too. The energy
rows the gateway keeps for its own period claims are separate and never thinned.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from quartier.reading import GENESIS_PREV, ChainHead

KEEP_INTERVAL_MS = 15 * 60 * 1000
# Thin a little more than the excess at once, so that thinning is not done per insert.
THIN_SLACK = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chain (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    gw TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    keep INTEGER NOT NULL DEFAULT 0,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS energy (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    dev TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS energy_ts ON energy (ts);
CREATE TABLE IF NOT EXISTS claims (
    period_start INTEGER PRIMARY KEY,
    period_end INTEGER NOT NULL,
    payload BLOB NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class OutboxError(Exception):
    """The outbox cannot be opened or written (wrong gateway, disk full...)."""


@dataclass(frozen=True, slots=True)
class Row:
    """A signed reading ready to store: what the outbox and the energy table need."""

    seq: int
    ts: int
    dev: str
    payload: bytes  # the wire envelope
    energy_body: bytes | None = None  # the body, when it carries energy registers (claims)


@dataclass(frozen=True, slots=True)
class EnergyRow:
    seq: int
    ts: int
    dev: str
    body: bytes


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    oldest_seq: int | None
    oldest_ts: int | None
    last_seq: int
    claims_pending: int
    thinned: int


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0,
                             check_same_thread=False)
        return db
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


class Outbox:
    """The gateway's durable store. Used from one thread (the writer)."""

    def __init__(self, path: Path, gateway: str, max_readings: int = 1_000_000) -> None:
        self.path = path
        self.max_readings = max_readings
        try:
            self.db = connect(path)
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from None
        row = self.db.execute("SELECT gw, seq, hash FROM chain WHERE id = 1").fetchone()
        if row is None:
            self.db.execute("INSERT INTO chain (id, gw, seq, hash) VALUES (1, ?, 0, ?)",
                            (gateway, GENESIS_PREV))
            row = (gateway, 0, GENESIS_PREV)
        if row[0] != gateway:
            raise OutboxError(
                f"outbox {path} holds the chain of gateway {row[0]}, but the key is {gateway}: "
                "use the key this outbox was made with, or a new outbox path"
            )
        self.head = ChainHead(row[1], row[2])
        self.depth = self.db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        self.thinned = self._counter("thinned")
        # (dev -> interval index) of the last reading stored, for the `keep` mark
        self._last_interval: dict[str, int] = {}

    def _counter(self, name: str) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def keep_mark(self, dev: str, ts: int) -> int:
        """1 for the first reading of `dev` in a 15-minute interval (thinned last)."""
        idx = ts // KEEP_INTERVAL_MS
        if self._last_interval.get(dev) == idx:
            return 0
        self._last_interval[dev] = idx
        return 1

    def commit(self, rows: Sequence[Row], head: ChainHead, acked: Iterable[int] = (),
               keeps: Sequence[int] | None = None) -> None:
        """Store `rows` and the new chain head, and delete `acked` seqs: one transaction."""
        db = self.db
        acked = list(acked)
        try:
            db.execute("BEGIN IMMEDIATE")
            if rows:
                if keeps is None:
                    keeps = [self.keep_mark(r.dev, r.ts) for r in rows]
                db.executemany(
                    "INSERT INTO outbox (seq, ts, keep, payload) VALUES (?, ?, ?, ?)",
                    [(r.seq, r.ts, k, r.payload) for r, k in zip(rows, keeps, strict=True)],
                )
                energy = [(r.seq, r.ts, r.dev, r.energy_body) for r in rows
                          if r.energy_body is not None]
                if energy:
                    db.executemany("INSERT INTO energy VALUES (?, ?, ?, ?)", energy)
                db.execute("UPDATE chain SET seq = ?, hash = ? WHERE id = 1", (head.seq, head.hash))
            deleted = 0
            if acked:
                # PUBACKs come in seq order: delete runs of consecutive seqs at once.
                acked.sort()
                runs: list[tuple[int, int]] = []
                lo = hi = acked[0]
                for s in acked[1:]:
                    if s == hi + 1:
                        hi = s
                    else:
                        runs.append((lo, hi))
                        lo = hi = s
                runs.append((lo, hi))
                cur = db.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", runs)
                deleted = cur.rowcount
            depth = self.depth + len(rows) - deleted
            thinned = 0
            if depth > self.max_readings:
                thinned = self._thin(depth - self.max_readings)
                depth -= thinned
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise OutboxError(f"cannot write outbox {self.path}: {exc}") from None
        self.depth = depth
        self.thinned += thinned
        if rows:
            self.head = head

    def _thin(self, excess: int) -> int:
        n = excess + int(self.max_readings * THIN_SLACK)
        cur = self.db.execute(
            "DELETE FROM outbox WHERE seq IN "
            "(SELECT seq FROM outbox WHERE keep = 0 ORDER BY seq LIMIT ?)", (n,))
        removed = max(cur.rowcount, 0)
        if removed < excess:
            cur = self.db.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                (excess - removed,))
            removed += max(cur.rowcount, 0)
        self.db.execute(
            "INSERT INTO counters (name, value) VALUES ('thinned', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (removed,))
        return removed

    def delete(self, acked: Iterable[int]) -> None:
        self.commit((), self.head, acked)

    def pending(self, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Unacknowledged readings after `after_seq`, in seq order."""
        return self.db.execute(
            "SELECT seq, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()

    # --- claims ---------------------------------------------------------------------

    def add_claim(self, period_start: int, period_end: int, payload: bytes) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO claims (period_start, period_end, payload) VALUES (?, ?, ?)",
            (period_start, period_end, payload))

    def has_claim(self, period_start: int) -> bool:
        return self.db.execute("SELECT 1 FROM claims WHERE period_start = ?",
                               (period_start,)).fetchone() is not None

    def unsent_claims(self) -> list[tuple[int, bytes]]:
        return self.db.execute(
            "SELECT period_start, payload FROM claims WHERE sent = 0 ORDER BY period_start"
        ).fetchall()

    def claim_acked(self, period_starts: Iterable[int], keep_periods: int = 3) -> None:
        """Mark claims sent; keep the last few (a claim is never signed twice)."""
        starts = list(period_starts)
        if not starts:
            return
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("UPDATE claims SET sent = 1 WHERE period_start = ?",
                            [(s,) for s in starts])
        self.db.execute(
            "DELETE FROM claims WHERE sent = 1 AND period_start NOT IN "
            "(SELECT period_start FROM claims ORDER BY period_start DESC LIMIT ?)",
            (keep_periods,))
        self.db.execute("COMMIT")

    def oldest_energy_ts(self) -> int | None:
        row = self.db.execute("SELECT min(ts) FROM energy").fetchone()
        return row[0] if row and row[0] is not None else None

    def last_claim_end(self) -> int | None:
        row = self.db.execute("SELECT max(period_end) FROM claims").fetchone()
        return row[0] if row and row[0] is not None else None

    def energy_rows(self, start_ms: int, end_ms: int) -> list[EnergyRow]:
        """Energy rows with start_ms <= ts < end_ms, plus the last one before start of each
        device (the register value the period starts from) and the first at or after end
        (so the last interval can be interpolated to the boundary)."""
        rows = self.db.execute(
            "SELECT seq, ts, dev, body FROM energy WHERE ts >= ? AND ts < ? ORDER BY seq",
            (start_ms, end_ms)).fetchall()
        before = self.db.execute(
            "SELECT e.seq, e.ts, e.dev, e.body FROM energy e JOIN "
            "(SELECT dev, max(seq) AS s FROM energy WHERE ts < ? GROUP BY dev) x ON e.seq = x.s",
            (start_ms,)).fetchall()
        after = self.db.execute(
            "SELECT e.seq, e.ts, e.dev, e.body FROM energy e JOIN "
            "(SELECT dev, min(seq) AS s FROM energy WHERE ts >= ? GROUP BY dev) x ON e.seq = x.s",
            (end_ms,)).fetchall()
        return [EnergyRow(*r) for r in sorted(set(before) | set(rows) | set(after))]

    def prune_energy(self, before_ms: int) -> None:
        """Drop energy rows older than `before_ms`, keeping each device's last one before it."""
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(
            "DELETE FROM energy WHERE ts < ? AND seq NOT IN "
            "(SELECT max(seq) FROM energy WHERE ts < ? GROUP BY dev)", (before_ms, before_ms))
        self.db.execute("COMMIT")

    def stats(self) -> OutboxStats:
        return read_stats(self.db, self.thinned)

    def close(self) -> None:
        self.db.close()


def read_stats(db: sqlite3.Connection, thinned: int | None = None) -> OutboxStats:
    depth = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    oldest = db.execute("SELECT seq, ts FROM outbox ORDER BY seq LIMIT 1").fetchone()
    head = db.execute("SELECT seq FROM chain WHERE id = 1").fetchone()
    claims = db.execute("SELECT count(*) FROM claims WHERE sent = 0").fetchone()[0]
    if thinned is None:
        row = db.execute("SELECT value FROM counters WHERE name = 'thinned'").fetchone()
        thinned = int(row[0]) if row else 0
    return OutboxStats(
        depth=depth,
        oldest_seq=oldest[0] if oldest else None,
        oldest_ts=oldest[1] if oldest else None,
        last_seq=head[0] if head else 0,
        claims_pending=claims,
        thinned=thinned,
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000
