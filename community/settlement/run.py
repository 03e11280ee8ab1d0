"""The settlement run: SQL in, batch built (batch.py), SQL and chain out. Thin adapter.

`settle_period` is idempotent:
- a period already settled (in SQL, or on chain) is reported, never rebuilt;
- a period submitted but not confirmed (a crash between send and receipt) is resubmitted
  from the stored batch, not rebuilt, and the chain client rebroadcasts the very same
  signed transaction; the contract refuses a period settled twice in any case;
- a dry run builds and reports without writing anything.

After the receipt, the run reconciles: the `Settled` and `Donated` events of the period
on chain must carry exactly the batch's entries and donations.

Standing donation orders: settling on chain, the active orders of the ledger's standing
orders contract are the ones executed (each donor signed theirs); orders known only to
the app (no id on chain) are reported in `orders_not_on_chain`, never executed. A dry run
without a chain uses the orders it is given.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from community.db import gateways
from community.settlement import schema
from community.settlement.batch import Batch, GatewayPeriod, build_batch, chain_batch
from community.settlement.netting import FUND, StandingOrder
from quartier.claim import IntervalValues
from quartier.hashing import to_checksum_address
from quartier.intervals import DEFAULT_STEP_S, IntervalError, gateway_period


class SettlementError(RuntimeError):
    """A run that cannot proceed; the message says what to do."""


def period_bounds(day: str) -> tuple[int, int]:
    """A daily period YYYY-MM-DD as [start, end) Unix seconds, UTC."""
    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise SettlementError(f"--period {day!r}: expected YYYY-MM-DD") from None
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return int(start.timestamp()), int((start + timedelta(days=1)).timestamp())


def load_inputs(
    conn: Connection, start: int, end: int, step_s: int = DEFAULT_STEP_S
) -> tuple[dict[str, list[str]], list[GatewayPeriod], dict[str, str]]:
    """(member -> gateways expected to claim, checked claims with their intervals, claims
    refused here with the reason). A claim counts only if the stored readings it covers
    give exactly its interval root again."""
    from community.ingest.store import period_claims, stored_readings

    expected: dict[str, list[str]] = {}
    meta: dict[str, tuple[str, str]] = {}
    rows = conn.execute(
        sa.select(gateways).where(
            gateways.c.active_from < end * 1000,
            sa.or_(gateways.c.active_to.is_(None), gateways.c.active_to > start * 1000),
        )
    )
    for row in rows:
        expected.setdefault(row.member_id, []).append(row.address)
        meta[row.address] = (row.member_id, row.meter_point)
    out: list[GatewayPeriod] = []
    refused: dict[str, str] = {}
    for sc in period_claims(conn, start, end):
        c = sc.claim
        if (c.period_start, c.period_end) != (start, end) or c.gateway not in meta:
            continue
        readings = stored_readings(conn, c.gateway, c.first_seq, c.last_seq)
        try:
            totals = gateway_period(readings, start, end, step_s)
        except IntervalError as exc:
            refused[c.gateway] = str(exc)
            continue
        if totals.root != c.intervals_root:
            refused[c.gateway] = "claim does not match the stored readings"
            continue
        member, meter_point = meta[c.gateway]
        ivs = tuple(iv.values() for iv in totals.intervals)
        out.append(GatewayPeriod(c.gateway, member, meter_point, c, sc.sig, ivs))
    return expected, out, refused


def accounts_of(conn: Connection, members: Sequence[str]) -> dict[str, str]:
    """Ledger account per member: `settle_accounts`, else the member id if it is an address."""
    linked = {r.member_id: r.address for r in conn.execute(sa.select(schema.settle_accounts))}
    out = {}
    for m in members:
        if m in linked:
            out[m] = linked[m]
        elif m.startswith("0x") and len(m) == 42:
            out[m] = to_checksum_address(m)
    return out


def members_by_account(conn: Connection) -> dict[str, str]:
    """Member id per ledger account, the reverse of `accounts_of`: `settle_accounts`, and
    member ids (of the registry's gateways) that are addresses themselves."""
    members = {to_checksum_address(r.address): r.member_id
               for r in conn.execute(sa.select(schema.settle_accounts))}
    for (m,) in conn.execute(sa.select(gateways.c.member_id).distinct()):
        if m.startswith("0x") and len(m) == 42:
            members.setdefault(to_checksum_address(m), m)
    return members


def link_account(conn: Connection, member: str, address: str) -> None:
    address = to_checksum_address(address)
    t = schema.settle_accounts
    conn.execute(t.delete().where(t.c.member_id == member))
    conn.execute(t.insert().values(member_id=member, address=address))


@dataclass(frozen=True)
class SettleOptions:
    key: str = "prorata"
    step_s: int = DEFAULT_STEP_S
    static_bp: Mapping[str, int] | None = None
    priorities: Sequence[tuple[str, str]] = ()
    orders: Sequence[StandingOrder] = ()


def chain_orders(conn: Connection, client: Any) -> list[StandingOrder]:
    """The active standing orders on the ledger's orders contract, with member ids for
    addresses (orders of an address no member is linked to are left out); none when the
    ledger has no orders contract."""
    from community.chain.orders import StandingOrdersClient

    address = str(client.call("standingOrders"))
    if int(address, 16) == 0:
        return []
    members = members_by_account(conn)
    out = []
    for o in StandingOrdersClient(client, address).active():
        donor, beneficiary = members.get(o.donor), members.get(o.beneficiary)
        if donor is not None and beneficiary is not None and donor != beneficiary:
            out.append(StandingOrder(donor, beneficiary, wh=o.wh, share_bp=o.share_bp, order_id=o.id))
    return out


def _summary(batch: Batch, refused: Mapping[str, str]) -> dict[str, Any]:
    e = batch.energy()
    return {
        "period_start": batch.period_start,
        "period_end": batch.period_end,
        "key": batch.key,
        "root": "0x" + batch.root.hex(),
        "members_settled": len({g.member for g in batch.settled}),
        "gateways_settled": len(batch.settled),
        "carried": dict(sorted(batch.carried.items())),
        "claims_refused": dict(sorted(refused.items())),
        "allocated_wh": sum(x.given for x in e.values()),
        "exported_to_grid_wh": sum(x.to_grid for x in e.values()),
        "imported_from_grid_wh": sum(x.from_grid for x in e.values()),
        "entries": [
            {"account": x.account, "unit": x.unit, "amount": x.amount}
            for x in batch.netting.entries
        ],
        "donations": [
            {"order": d.order.order_id or None, "donor": d.order.donor,
             "beneficiary": d.order.beneficiary, "wh": d.wh}
            for d in batch.netting.donations
        ],
    }


def _chain_json(cb: Any) -> dict[str, Any]:
    def enc(v: Any) -> Any:
        return "0x" + v.hex() if isinstance(v, bytes) else v

    return {
        "period_id": cb.period_id,
        "period_end": cb.period_end,
        "intervals_root": enc(cb.intervals_root),
        "claims": [[enc(v) for v in c] for c in cb.claims],
        "entries": [list(e) for e in cb.entries],
        "donations": [list(d) for d in cb.donations],
    }


def _chain_from_json(d: Mapping[str, Any]) -> Any:
    from community.chain.intents import Batch as ChainBatch

    def dec(v: Any) -> Any:
        return bytes.fromhex(v[2:]) if isinstance(v, str) and len(v) == 66 else v

    return ChainBatch(
        d["period_id"],
        d["period_end"],
        bytes.fromhex(d["intervals_root"][2:]),
        tuple(tuple(dec(v) for v in c) for c in d["claims"]),
        tuple(tuple(e) for e in d["entries"]),
        tuple(tuple(x) for x in d.get("donations", ())),
    )


def _save(conn: Connection, batch: Batch, record: dict[str, Any], status: str) -> None:
    p = batch.period_start
    for t in (
        schema.settle_movements,
        schema.settle_entries,
        schema.settle_flows,
        schema.settle_carried,
    ):
        conn.execute(t.delete().where(t.c.period_start == p))
    conn.execute(schema.settle_periods.delete().where(schema.settle_periods.c.period_start == p))
    conn.execute(
        schema.settle_periods.insert().values(
            period_start=p,
            period_end=batch.period_end,
            key=batch.key,
            status=status,
            root="0x" + batch.root.hex(),
            record=json.dumps(record, sort_keys=True),
            created_at=int(time.time() * 1000),
        )
    )
    moves = [
        {
            "period_start": p,
            "account": m.account,
            "unit": m.unit,
            "amount": m.amount,
            "reason": m.reason,
            "counterparty": m.counterparty,
        }
        for m in batch.netting.movements
    ]
    if moves:
        conn.execute(schema.settle_movements.insert(), moves)
    entries = [
        {"period_start": p, "account": e.account, "unit": e.unit, "amount": e.amount}
        for e in batch.netting.entries
    ]
    if entries:
        conn.execute(schema.settle_entries.insert(), entries)
    flows = []
    for a in batch.allocations:
        at = int(a.interval or 0)
        flows += [
            {"period_start": p, "interval_start": at, "producer": f.producer,
             "consumer": f.consumer, "wh": f.wh}
            for f in a.flows
        ]  # fmt: skip
        flows += [
            {"period_start": p, "interval_start": at, "producer": m, "consumer": "grid", "wh": wh}
            for m, wh in a.to_grid.items()
            if wh
        ]
    if flows:
        conn.execute(schema.settle_flows.insert(), flows)
    carried = [{"period_start": p, "member_id": m, "reason": r} for m, r in batch.carried.items()]
    if carried:
        conn.execute(schema.settle_carried.insert(), carried)


def batch_record(batch: Batch) -> dict[str, Any]:
    """What certificates need later without rebuilding: settled claims, intervals, leaves."""
    return {
        "leaves": ["0x" + leaf.hex() for leaf in batch.leaves],
        "index": {"|".join(k): v for k, v in batch.leaf_index.items()},
        "gateways": [
            {
                "gateway": g.gateway,
                "member": g.member,
                "meter_point": g.meter_point,
                "claim": g.claim.as_dict(),
                "sig": "0x" + g.signature.hex(),
                "intervals": [
                    [iv.start, iv.imported_wh, iv.exported_wh, iv.produced_wh] for iv in g.intervals
                ],
            }
            for g in batch.settled
        ],
        "carried": batch.carried,
        "allocations": {
            f"allocation|{m}|{a.interval}": {
                "given": a.given[m],
                "to_grid": a.to_grid[m],
                "flows": [[f.consumer, f.wh] for f in a.flows if f.producer == m],
            }
            for a in batch.allocations
            for m in sorted(a.given)
            if ("allocation", m, str(a.interval)) in batch.leaf_index
        },
    }


def gateway_periods_from_record(record: Mapping[str, Any]) -> list[GatewayPeriod]:
    from quartier.claim import PeriodClaim

    return [
        GatewayPeriod(
            g["gateway"],
            g["member"],
            g["meter_point"],
            PeriodClaim.from_dict(g["claim"]),
            bytes.fromhex(g["sig"][2:]),
            tuple(IntervalValues(*iv) for iv in g["intervals"]),
        )
        for g in record["gateways"]
    ]


def settle_period(
    engine: Engine,
    start: int,
    end: int,
    *,
    client: Any = None,
    dry_run: bool = False,
    options: SettleOptions | None = None,
) -> dict[str, Any]:
    """Build, store, submit and reconcile one period; see the module doc."""
    opts = options or SettleOptions()
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(schema.settle_periods).where(schema.settle_periods.c.period_start == start)
        ).first()
        conn.rollback()
    if row is not None and row.status == "settled":
        return {"period_start": start, "status": "settled", "tx_hash": row.tx_hash,
                "root": row.root, "already": True}  # fmt: skip

    if row is not None and row.status == "submitted" and not dry_run:
        record = json.loads(row.record)
        stored = _chain_from_json(record["chain"])
        summary: dict[str, Any] = {"period_start": start, "resumed": True}
    else:
        orders = list(opts.orders)
        not_on_chain: list[StandingOrder] = []
        with engine.connect() as conn:
            expected, claims, refused = load_inputs(conn, start, end, opts.step_s)
            if client is not None:
                # On chain only the orders members signed there can be executed.
                not_on_chain = [o for o in orders if not o.order_id]
                orders = chain_orders(conn, client)
            conn.rollback()
        batch = build_batch(
            start,
            end,
            expected,
            claims,
            key=opts.key,
            static_bp=opts.static_bp,
            priorities=opts.priorities,
            orders=orders,
        )
        summary = _summary(batch, refused)
        if not_on_chain:
            summary["orders_not_on_chain"] = [
                {"donor": o.donor, "beneficiary": o.beneficiary} for o in not_on_chain]
        if dry_run:
            summary["status"] = "dry-run"
            return summary
        if not batch.settled:
            raise SettlementError(f"no member has a valid claim for the period starting {start}")
        if client is None:
            raise SettlementError("no chain: give --rpc-url and --ledger (or deploy one)")
        units = client.units()
        fund_address = str(client.call("FUND"))
        with engine.begin() as conn:
            members = sorted({g.member for g in batch.settled})
            accounts = accounts_of(conn, members)
            cb = chain_batch(batch, accounts, units, fund_address)
            record = batch_record(batch)
            record["chain"] = _chain_json(cb)
            record["accounts"] = {**accounts, FUND: fund_address}
            _save(conn, batch, record, "submitted")
        stored = cb

    tx_hash = client.settle_batch(stored)
    reconciled = reconcile(client, stored)
    with engine.begin() as conn:
        conn.execute(
            schema.settle_periods.update()
            .where(schema.settle_periods.c.period_start == start)
            .values(status="settled", tx_hash=tx_hash, ledger=client.ledger_address,
                    settled_at=int(time.time() * 1000), reconciled=reconciled)
        )  # fmt: skip
    summary.update(status="settled", tx_hash=tx_hash, reconciled=reconciled)
    return summary


def reconcile(client: Any, cb: Any) -> bool:
    """True if the period's `Settled` events carry exactly the batch's entries."""
    logs = client.ledger.events.Settled().get_logs(
        from_block=0, argument_filters={"periodId": cb.period_id}
    )
    on_chain = sorted(
        (to_checksum_address(str(ev["args"]["account"])), int(ev["args"]["unit"]),
         int(ev["args"]["amount"]))
        for ev in logs
    )  # fmt: skip
    mine = sorted((to_checksum_address(a), int(u), int(v)) for a, u, v in cb.entries)
    if on_chain != mine:
        return False
    if not cb.donations:
        return True
    donated = client.ledger.events.Donated().get_logs(
        from_block=0, argument_filters={"periodId": cb.period_id}
    )
    given = sorted((int(ev["args"]["order"]), int(ev["args"]["unitAndAmount"]) & (2**96 - 1))
                   for ev in donated)  # fmt: skip
    return given == sorted((int(o), int(wh)) for o, _, wh in cb.donations)


# --- balances and statements (SQL) ---------------------------------------------------


def certificates(
    conn: Connection, meter_point: str, start: int, end: int, chain_id: int | None = None
) -> list[dict[str, Any]]:
    """Certificates of a meter point for the hours of [start, end) in settled periods."""
    from community.settlement.certificates import build_certificates

    p = schema.settle_periods
    rows = conn.execute(
        sa.select(p)
        .where(p.c.status == "settled", p.c.period_end > start, p.c.period_start < end)
        .order_by(p.c.period_start)
    )
    out: list[dict[str, Any]] = []
    for row in rows:
        out += build_certificates(
            json.loads(row.record),
            meter_point,
            start,
            end,
            period_start=row.period_start,
            ledger=row.ledger,
            tx_hash=row.tx_hash,
            chain_id=chain_id,
        )
    return out


def balances(conn: Connection, member: str | None = None) -> list[dict[str, Any]]:
    """Settled balance per account and unit: the sum of its entries of settled periods."""
    e, p = schema.settle_entries, schema.settle_periods
    q = (
        sa.select(e.c.account, e.c.unit, sa.func.sum(e.c.amount).label("balance"))
        .join(p, p.c.period_start == e.c.period_start)
        .where(p.c.status == "settled")
        .group_by(e.c.account, e.c.unit)
        .order_by(e.c.account, e.c.unit)
    )
    if member is not None:
        q = q.where(e.c.account == member)
    return [
        {"account": r.account, "unit": r.unit, "balance": int(r.balance)} for r in conn.execute(q)
    ]


def statement(conn: Connection, member: str, start: int, end: int) -> list[dict[str, Any]]:
    """Every movement of `member` in settled periods starting in [start, end)."""
    m, p = schema.settle_movements, schema.settle_periods
    q = (
        sa.select(m, p.c.period_end, p.c.tx_hash)
        .join(p, p.c.period_start == m.c.period_start)
        .where(
            m.c.account == member,
            p.c.status == "settled",
            m.c.period_start >= start,
            m.c.period_start < end,
        )
        .order_by(m.c.period_start, m.c.id)
    )
    return [
        {
            "period_start": r.period_start,
            "period_end": r.period_end,
            "unit": r.unit,
            "amount": int(r.amount),
            "reason": r.reason,
            "counterparty": r.counterparty,
            "tx_hash": r.tx_hash,
        }
        for r in conn.execute(q)
    ]
