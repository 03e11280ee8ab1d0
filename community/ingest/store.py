"""SQL side of ingest: one transaction per batch of messages, queries for stats and intervals.

A batch is committed atomically: accepted readings, quarantined messages, claims and the
duplicate counter. Its chain checks read the neighbours of its readings inside the same
transaction, after taking the gateway's write lock (SQLite: BEGIN IMMEDIATE takes the
database's; PostgreSQL: a transaction-scoped advisory lock per gateway), so several
ingest processes sharing a subscription see each other's commits and never store a seq
twice or miss a fork between them.
"""

from __future__ import annotations

import itertools
import json
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from community.db import claims, gateways, ingest_counters, quarantine, readings, write_lock
from community.ingest import pipeline as pl
from quartier import reading as rd
from quartier.claim import PeriodClaim
from quartier.intervals import (
    DEFAULT_STEP_S,
    ENERGY_REGISTERS,
    IntervalEnergy,
    IntervalError,
    gateway_period,
    interval_energy,
    samples_from_readings,
    sum_intervals,
)

MAX_STORED_PAYLOAD = 4096  # quarantine keeps the start of a message: enough to diagnose it
CLAIM_MISMATCH = "claim_mismatch"
CLAIM_CONFLICT = "claim_conflict"
PENDING, VERIFIED = "pending", "verified"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def load_gateways(conn: Connection) -> dict[str, pl.GatewayState]:
    rows = conn.execute(sa.select(gateways.c.address, gateways.c.active_to))
    return {r.address: pl.GatewayState(r.address, r.active_to is not None) for r in rows}


@dataclass
class BatchOutcome:
    accepted: list[rd.SignedReading] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[pl.Rejected] = field(default_factory=list)
    claims_verified: list[PeriodClaim] = field(default_factory=list)
    claims_pending: list[PeriodClaim] = field(default_factory=list)


def _link(row: sa.Row) -> pl.Link:
    regs = {k: getattr(row, k) for k in ENERGY_REGISTERS if getattr(row, k) is not None}
    flags = tuple(row.flags.split(",")) if row.flags else ()
    return pl.Link(row.seq, row.dev, row.hash, row.prev, regs, flags, row.meter)


_LINK_SQL = "SELECT seq, dev, hash, prev, e_imp_wh, e_exp_wh, e_prod_wh, flags, meter, gw FROM readings"
# Gateways per neighbour query: keeps the statement (3 arms per device) far below
# SQLite's and PostgreSQL's limits on bound parameters.
_GATEWAYS_PER_QUERY = 100


def _ph(conn: Connection, name: str) -> str:
    """A named placeholder in the driver's own style (statements below bypass SQLAlchemy's
    compiler: at thousands of readings per second its per-parameter work shows)."""
    return f"%({name})s" if conn.dialect.paramstyle == "pyformat" else f":{name}"


def known_links_many(conn: Connection, by_gw: dict[str, Sequence[rd.SignedReading]]) -> dict[str, list[pl.Link]]:
    """For each gateway, the stored readings `pipeline.check_chain` needs to place its candidates.

    One statement per batch (a UNION ALL of index lookups), not one per gateway and device:
    per-statement overhead is what limits a Python ingest loop.
    """
    out: dict[str, list[pl.Link]] = {gw: [] for gw in by_gw}
    items = list(by_gw.items())
    p = lambda name: _ph(conn, name)  # noqa: E731
    energy = (f"(e_imp_wh IS NOT NULL OR e_exp_wh IS NOT NULL OR e_prod_wh IS NOT NULL) "
              f"AND flags NOT LIKE {p('nocb')} AND flags NOT LIKE {p('noimp')}")
    for i in range(0, len(items), _GATEWAYS_PER_QUERY):
        arms: list[str] = []
        params: dict[str, object] = {"nocb": "%counter_backwards%", "noimp": "%implausible%"}
        for j, (gw, cands) in enumerate(items[i:i + _GATEWAYS_PER_QUERY]):
            lo = min(c.reading.seq for c in cands) - 1
            hi = max(c.reading.seq for c in cands) + 1
            params.update({f"g{j}": gw, f"lo{j}": lo, f"hi{j}": hi})
            g, lo_p, hi_p = p(f"g{j}"), p(f"lo{j}"), p(f"hi{j}")
            arms.append(f"SELECT * FROM ({_LINK_SQL} WHERE gw = {g} AND seq BETWEEN {lo_p} AND {hi_p}) AS s{j}")
            for k, dev in enumerate(sorted({c.reading.dev for c in cands})):
                params[f"d{j}_{k}"] = dev
                where = f"gw = {g} AND dev = {p(f'd{j}_{k}')} AND {energy}"
                arms.append(f"SELECT * FROM ({_LINK_SQL} WHERE {where} AND seq < {lo_p} "
                            f"ORDER BY seq DESC LIMIT 1) AS b{j}_{k}")
                arms.append(f"SELECT * FROM ({_LINK_SQL} WHERE {where} AND seq > {hi_p} "
                            f"ORDER BY seq LIMIT 1) AS a{j}_{k}")
        for row in conn.exec_driver_sql(" UNION ALL ".join(arms), params):
            out[row.gw].append(_link(row))
    return out


_READING_COLS = ("gw", "seq", "dev", "ts", "prev", "hash", "body", "sig", "e_imp_wh", "e_exp_wh",
                 "e_prod_wh", "p_w", "flags", "meter", "received_at")


# Rows per multi-row INSERT on SQLite: 15 columns x 500 = 7,500 bound values, under
# SQLite's default limit of 32,766 (3.32+).
_SQLITE_ROWS_PER_INSERT = 500


def _insert_readings(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    if conn.dialect.name == "sqlite":
        # Multi-row statements rather than executemany: one step (and one release of
        # the GIL by the sqlite3 module) per statement instead of per row, which keeps
        # the committer thread from trading the GIL with the verifying thread per row.
        one = f"({', '.join('?' * len(_READING_COLS))})"
        head = f"INSERT INTO readings ({', '.join(_READING_COLS)}) VALUES "
        for i in range(0, len(rows), _SQLITE_ROWS_PER_INSERT):
            chunk = rows[i:i + _SQLITE_ROWS_PER_INSERT]
            conn.exec_driver_sql(head + ", ".join([one] * len(chunk)),
                                 tuple(itertools.chain.from_iterable(chunk)))
    else:  # SQLAlchemy's insertmanyvalues batches rows into multi-row INSERTs for PostgreSQL
        conn.execute(readings.insert(), [dict(zip(_READING_COLS, r, strict=True)) for r in rows])


def known_links(conn: Connection, gw: str, candidates: Sequence[rd.SignedReading]) -> list[pl.Link]:
    return known_links_many(conn, {gw: candidates})[gw]


def _lock_gateways(conn: Connection, gws: Iterable[str]) -> None:
    if conn.dialect.name == "postgresql":
        for gw in sorted(gws):  # always the same order: no deadlock between workers
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                         {"k": zlib.crc32(gw.encode()) - 2**31})


def _reading_row(s: rd.SignedReading, received: int) -> tuple[object, ...]:
    """Values in `_READING_COLS` order."""
    r = s.reading
    m = r.m
    return (r.gw, r.seq, r.dev, r.ts, r.prev, s.body_hash, s.body.decode("ascii"), s.sig,
            m.get("e_imp_wh"), m.get("e_exp_wh"), m.get("e_prod_wh"), m.get("p_w"),
            ",".join(r.flags), r.meter, received)


def _quarantine_row(topic: str, payload: bytes, rej: pl.Rejected, received: int) -> dict[str, object]:
    return {"received_at": received, "topic": topic[:300], "reason": rej.reason,
            "detail": rej.detail[:2000], "gw": rej.gw, "seq": rej.seq,
            "payload": payload[:MAX_STORED_PAYLOAD]}


def commit_batch(
    engine: Engine,
    items: Sequence[tuple[pl.Message, pl.Verdict]],
    *,
    step_s: int = DEFAULT_STEP_S,
    received: int | None = None,
) -> BatchOutcome:
    """Store one batch of classified messages in one transaction."""
    received = received if received is not None else now_ms()
    out = BatchOutcome()
    by_gw: dict[str, list[tuple[pl.Message, rd.SignedReading]]] = {}
    qrows: list[dict[str, object]] = []
    claim_items: list[tuple[pl.Message, pl.ClaimOk]] = []
    for msg, verdict in items:
        if isinstance(verdict, pl.ReadingOk):
            by_gw.setdefault(verdict.signed.reading.gw, []).append((msg, verdict.signed))
        elif isinstance(verdict, pl.ClaimOk):
            claim_items.append((msg, verdict))
        else:
            qrows.append(_quarantine_row(msg.topic, msg.payload, verdict, received))
            out.rejected.append(verdict)
    with write_lock(engine), engine.begin() as conn:
        _lock_gateways(conn, set(by_gw) | {c.claim.gateway for _, c in claim_items})
        rows = []
        known = known_links_many(conn, {gw: [s for _, s in pairs] for gw, pairs in by_gw.items()})
        for gw, pairs in by_gw.items():
            cands = [s for _, s in pairs]
            topic_of = {id(s): m for m, s in pairs}
            res = pl.check_chain(gw, cands, known[gw])
            out.accepted += res.accepted
            out.duplicates += len(res.duplicates)
            rows += [_reading_row(s, received) for s in res.accepted]
            for s, rej in res.rejected:
                m = topic_of[id(s)]
                qrows.append(_quarantine_row(m.topic, m.payload, rej, received))
                out.rejected.append(rej)
        if rows:
            _insert_readings(conn, rows)
        for msg, c in claim_items:
            _store_claim(conn, msg, c, step_s, received, out, qrows)
        if qrows:
            conn.execute(quarantine.insert(), qrows)
        if out.duplicates:
            conn.execute(ingest_counters.update().where(ingest_counters.c.name == "duplicates")
                         .values(value=ingest_counters.c.value + out.duplicates))
    return out


# --- claims -----------------------------------------------------------------------------


def stored_readings(conn: Connection, gw: str, first_seq: int, last_seq: int) -> list[rd.Reading]:
    """A gateway's stored readings with seq in [first_seq, last_seq], values as intervals need."""
    rows = conn.execute(sa.select(
        readings.c.gw, readings.c.seq, readings.c.dev, readings.c.ts, readings.c.prev,
        readings.c.e_imp_wh, readings.c.e_exp_wh, readings.c.e_prod_wh, readings.c.flags,
        readings.c.meter).where(readings.c.gw == gw, readings.c.seq.between(first_seq, last_seq))
        .order_by(readings.c.seq))
    return [_as_reading(r) for r in rows]


def _as_reading(r: sa.Row) -> rd.Reading:
    m = {k: getattr(r, k) for k in ENERGY_REGISTERS if getattr(r, k) is not None}
    flags = tuple(r.flags.split(",")) if r.flags else ()
    return rd.Reading(gw=r.gw, dev=r.dev, seq=r.seq, ts=r.ts, prev=r.prev, m=m, flags=flags,
                      meter=r.meter)


def check_claim(conn: Connection, claim: PeriodClaim, step_s: int) -> tuple[str, str]:
    """(`verified`, "") / (`pending`, why) / (`claim_mismatch`, the differences as JSON)."""
    expected = claim.last_seq - claim.first_seq + 1
    rs = stored_readings(conn, claim.gateway, claim.first_seq, claim.last_seq)
    if len(rs) < expected:
        return PENDING, f"{expected - len(rs)} of {expected} readings in seq {claim.first_seq}..{claim.last_seq} not stored yet"
    try:
        totals = gateway_period(rs, claim.period_start, claim.period_end, step_s)
    except IntervalError as exc:
        return CLAIM_MISMATCH, json.dumps({"error": str(exc)})
    diff: dict[str, object] = {}
    for name in ("imported_wh", "exported_wh", "produced_wh"):
        got, want = getattr(claim, name), getattr(totals, name)
        if got != want:
            diff[name] = {"claimed": got, "stored": want, "difference": got - want}
    if totals.root != claim.intervals_root:
        diff["intervals_root"] = {"claimed": "0x" + claim.intervals_root.hex(),
                                  "stored": "0x" + totals.root.hex()}
        diff["intervals"] = [
            {"start": iv.start, "imported_wh": iv.imported_wh, "exported_wh": iv.exported_wh,
             "produced_wh": iv.produced_wh} for iv in totals.intervals
        ][:96]
    if diff:
        return CLAIM_MISMATCH, json.dumps(diff, sort_keys=True)
    return VERIFIED, ""


def _store_claim(conn: Connection, msg: pl.Message, c: pl.ClaimOk, step_s: int, received: int,
                 out: BatchOutcome, qrows: list[dict[str, object]]) -> None:
    claim = c.claim
    existing = conn.execute(sa.select(claims.c.sig, claims.c.status).where(
        claims.c.gw == claim.gateway, claims.c.period_start == claim.period_start)).first()
    if existing is not None:
        if bytes(existing.sig) == c.sig:
            out.duplicates += 1
            return
        rej = pl.Rejected(CLAIM_CONFLICT, f"gateway {claim.gateway} already has a {existing.status} "
                          f"claim for the period starting {claim.period_start}", claim.gateway)
        qrows.append(_quarantine_row(msg.topic, msg.payload, rej, received))
        out.rejected.append(rej)
        return
    status, detail = check_claim(conn, claim, step_s)
    if status == CLAIM_MISMATCH:
        rej = pl.Rejected(CLAIM_MISMATCH, f"claim of {claim.gateway} for {claim.period_start}: {detail}", claim.gateway)
        qrows.append(_quarantine_row(msg.topic, msg.payload, rej, received))
        out.rejected.append(rej)
        return
    conn.execute(claims.insert().values(
        gw=claim.gateway, period_start=claim.period_start, period_end=claim.period_end,
        community=claim.community, first_seq=claim.first_seq, last_seq=claim.last_seq,
        imported_wh=claim.imported_wh, exported_wh=claim.exported_wh, produced_wh=claim.produced_wh,
        intervals_root="0x" + claim.intervals_root.hex(), sig=c.sig, message=c.message,
        status=status, detail=detail, received_at=received,
        checked_at=received if status == VERIFIED else None))
    (out.claims_verified if status == VERIFIED else out.claims_pending).append(claim)


def recheck_pending_claims(engine: Engine, step_s: int = DEFAULT_STEP_S) -> dict[str, int]:
    """Check again the claims that were waiting for readings; returns counts by outcome."""
    counts = {VERIFIED: 0, PENDING: 0, CLAIM_MISMATCH: 0}
    with engine.connect() as conn:
        pending = list(conn.execute(sa.select(claims).where(claims.c.status == PENDING)))
        conn.rollback()
    for row in pending:
        claim = PeriodClaim(
            community=row.community, gateway=row.gw, period_start=row.period_start,
            period_end=row.period_end, first_seq=row.first_seq, last_seq=row.last_seq,
            imported_wh=row.imported_wh, exported_wh=row.exported_wh, produced_wh=row.produced_wh,
            intervals_root=bytes.fromhex(row.intervals_root[2:]))
        with engine.begin() as conn:
            _lock_gateways(conn, [row.gw])
            status, detail = check_claim(conn, claim, step_s)
            key = (claims.c.gw == row.gw) & (claims.c.period_start == row.period_start)
            now = now_ms()
            if status == VERIFIED:
                conn.execute(claims.update().where(key).values(status=VERIFIED, detail="", checked_at=now))
            elif status == CLAIM_MISMATCH:
                conn.execute(claims.delete().where(key))
                conn.execute(quarantine.insert().values(_quarantine_row(
                    f"quartier/{row.community}/{row.gw}/claim", row.message.encode(),
                    pl.Rejected(CLAIM_MISMATCH, f"claim of {row.gw} for {row.period_start}: {detail}", row.gw), now)))
            else:
                conn.execute(claims.update().where(key).values(detail=detail))
        counts[status] += 1
    return counts


@dataclass(frozen=True, slots=True)
class StoredClaim:
    claim: PeriodClaim
    sig: bytes
    status: str
    message: str


def period_claims(conn: Connection, period_start: int, period_end: int,
                  status: str | None = VERIFIED) -> list[StoredClaim]:
    """Claims whose period lies within [period_start, period_end): what settlement reads."""
    q = sa.select(claims).where(claims.c.period_start >= period_start, claims.c.period_end <= period_end)
    if status is not None:
        q = q.where(claims.c.status == status)
    out = []
    for row in conn.execute(q.order_by(claims.c.period_start, claims.c.gw)):
        claim = PeriodClaim(
            community=row.community, gateway=row.gw, period_start=row.period_start,
            period_end=row.period_end, first_seq=row.first_seq, last_seq=row.last_seq,
            imported_wh=row.imported_wh, exported_wh=row.exported_wh, produced_wh=row.produced_wh,
            intervals_root=bytes.fromhex(row.intervals_root[2:]))
        out.append(StoredClaim(claim, bytes(row.sig), row.status, row.message))
    return out


# --- queries --------------------------------------------------------------------------


def gaps(conn: Connection, limit: int = 100) -> tuple[int, list[dict[str, object]]]:
    """(missing seqs in total, first `limit` ranges) between stored readings of each gateway."""
    lagged = sa.select(
        readings.c.gw, readings.c.seq,
        sa.func.lag(readings.c.seq).over(partition_by=readings.c.gw, order_by=readings.c.seq).label("before"),
    ).subquery()
    q = sa.select(lagged.c.gw, lagged.c.before, lagged.c.seq).where(lagged.c.seq - lagged.c.before > 1)
    total = 0
    ranges: list[dict[str, object]] = []
    for r in conn.execute(q.order_by(lagged.c.gw, lagged.c.seq)):
        missing = r.seq - r.before - 1
        total += missing
        if len(ranges) < limit:
            ranges.append({"gateway": r.gw, "from_seq": r.before + 1, "to_seq": r.seq - 1, "missing": missing})
    return total, ranges


def stats(conn: Connection) -> dict[str, object]:
    accepted = conn.execute(sa.select(sa.func.count()).select_from(readings)).scalar_one()
    dup = conn.execute(sa.select(ingest_counters.c.value).where(ingest_counters.c.name == "duplicates")).scalar()
    by_reason = {r.reason: r.n for r in conn.execute(
        sa.select(quarantine.c.reason, sa.func.count().label("n")).group_by(quarantine.c.reason)
        .order_by(quarantine.c.reason))}
    claim_counts = {r.status: r.n for r in conn.execute(
        sa.select(claims.c.status, sa.func.count().label("n")).group_by(claims.c.status))}
    missing, ranges = gaps(conn, limit=20)
    return {
        "accepted": accepted,
        "duplicates": int(dup or 0),
        "gaps": missing,
        "gap_ranges": ranges,
        "quarantined": sum(by_reason.values()),
        "quarantined_by_reason": by_reason,
        "claims": claim_counts,
        "gateways": conn.execute(sa.select(sa.func.count()).select_from(gateways)).scalar_one(),
    }


def quarantined(conn: Connection, reason: str | None = None, limit: int = 50) -> list[dict[str, object]]:
    q = sa.select(quarantine.c.id, quarantine.c.received_at, quarantine.c.topic, quarantine.c.reason,
                  quarantine.c.detail, quarantine.c.gw, quarantine.c.seq)
    if reason:
        q = q.where(quarantine.c.reason == reason)
    return [dict(r._mapping) for r in conn.execute(q.order_by(quarantine.c.id.desc()).limit(limit))]


# Readings further than this from the span are not fetched to interpolate its edges.
EDGE_WINDOW_MS = 24 * 3600 * 1000


def meter_point_intervals(conn: Connection, meter_point: str, start_s: int, end_s: int,
                          step_s: int = DEFAULT_STEP_S) -> list[IntervalEnergy]:
    """Energy per interval at a meter point, summed over its gateways and their devices."""
    gws = [r.address for r in conn.execute(
        sa.select(gateways.c.address).where(gateways.c.meter_point == meter_point))]
    per_device: list[list[IntervalEnergy]] = []
    for gw in gws:
        rows = conn.execute(sa.select(
            readings.c.gw, readings.c.seq, readings.c.dev, readings.c.ts, readings.c.prev,
            readings.c.e_imp_wh, readings.c.e_exp_wh, readings.c.e_prod_wh, readings.c.flags,
            readings.c.meter).where(
            readings.c.gw == gw,
            readings.c.ts.between(start_s * 1000 - EDGE_WINDOW_MS, end_s * 1000 + EDGE_WINDOW_MS)))
        for samples in samples_from_readings(_as_reading(r) for r in rows).values():
            per_device.append(interval_energy(samples, start_s, end_s, step_s))
    if not per_device:
        return interval_energy([], start_s, end_s, step_s)
    return sum_intervals(per_device)


def all_intervals(conn: Connection, start_s: int, end_s: int,
                  step_s: int = DEFAULT_STEP_S) -> dict[str, tuple[str, list[IntervalEnergy]]]:
    """Every meter point's intervals with its role: {meter_point: (role, intervals)}."""
    out = {}
    rows = conn.execute(sa.select(gateways.c.meter_point, gateways.c.role).distinct()
                        .order_by(gateways.c.meter_point))
    for r in rows:
        out[r.meter_point] = (r.role, meter_point_intervals(conn, r.meter_point, start_s, end_s, step_s))
    return out


def live_totals(conn: Connection, now: int, window_ms: int = 5 * 60 * 1000) -> dict[str, object]:
    """Neighbourhood power now: latest p_w of each device seen in the last `window_ms`."""
    latest = sa.select(readings.c.gw, readings.c.dev, sa.func.max(readings.c.seq).label("seq")).where(
        readings.c.ts >= now - window_ms, readings.c.p_w.is_not(None)
    ).group_by(readings.c.gw, readings.c.dev).subquery()
    q = (sa.select(gateways.c.role, sa.func.sum(readings.c.p_w).label("w"),
                   sa.func.count(sa.distinct(readings.c.gw)).label("n"))
         .select_from(latest.join(readings, (readings.c.gw == latest.c.gw) & (readings.c.seq == latest.c.seq))
                      .join(gateways, gateways.c.address == readings.c.gw))
         .group_by(gateways.c.role))
    by_role = {r.role: (int(r.w or 0), int(r.n)) for r in conn.execute(q)}
    prod_w, prod_n = by_role.get("production", (0, 0))
    grid_w, grid_n = by_role.get("grid", (0, 0))
    return {"ts": now, "production_w": prod_w, "grid_w": grid_w,
            "gateways_reporting": prod_n + grid_n}
