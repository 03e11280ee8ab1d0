"""Board reports, the accountant's ZIP (CSV and XLSX) and the DSO allocation-coefficient CSV.

The board report of a month: the community totals (the sum of the statements), trades and
hours exchanged by category (from the web app's market, when installed), active and
inactive members, and the fund: what came in and went out per unit and reason, and how
the members want it spent (each member's stated shares weighted by what the member paid
into the fund this month; equal weights if nobody paid anything).

The DSO file: see `dso_coefficients` and docs/bills.md.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from community.bills.ledger import app_table, load_period, month_bounds, settings
from community.bills.runs import summarise
from community.bills.statement import (
    ENERGY_FIELDS,
    FUND,
    GRID,
    MONEY_FIELDS,
    PeriodData,
    Statement,
    statements,
)
from community.db import gateways
from community.settlement import schema as settle


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fund_allocation(
    preferences: Mapping[str, Mapping[str, int]], weights: Mapping[str, int]
) -> dict[str, int]:
    """The members' weighted allocation of the fund, basis points per purpose (pure).

    `preferences`: member -> {purpose: basis points}; `weights`: member -> contribution.
    Members without a positive contribution count only if nobody has one."""
    voters = {m: p for m, p in preferences.items() if sum(p.values()) > 0}
    w = {m: weights.get(m, 0) for m in voters if weights.get(m, 0) > 0}
    if not w:
        w = dict.fromkeys(voters, 1)
    total = sum(w.values())
    if not total:
        return {}
    acc: dict[str, Decimal] = {}
    for m, weight in w.items():
        prefs = voters[m]
        s = sum(prefs.values())
        for purpose, bp in prefs.items():
            acc[purpose] = acc.get(purpose, Decimal(0)) + Decimal(weight) * bp / s
    return {p: int((v * 10_000 / total).to_integral_value(ROUND_DOWN)) for p, v in sorted(acc.items())}


def _trades(conn: Connection, start: int, end: int) -> list[dict[str, Any]]:
    trades = app_table(conn, "trades")
    if trades is None:
        return []
    offers = app_table(conn, "offers")
    cols = [trades]
    q = sa.select(*cols)
    if offers is not None and "category" in offers.c:
        q = sa.select(trades, offers.c.category, offers.c.kind).outerjoin(
            offers, offers.c.id == trades.c.offer_id)
    q = q.where(trades.c.created_at >= start, trades.c.created_at < end).order_by(trades.c.id)
    out = []
    for r in conn.execute(q):
        d = dict(r._mapping)
        d["category"] = d.get("category") or d.get("kind") or "other"
        out.append(d)
    return out


def board_report(conn: Connection, month: str) -> dict[str, Any]:
    start, end = month_bounds(month)
    data = load_period(conn, start, end)
    cfg = settings(conn)
    stmts = statements(data, {m: c.tariff_ct_kwh for m, c in cfg.items()})
    trades = _trades(conn, start, end)
    by_category: dict[str, dict[str, Any]] = {}
    for tr in trades:
        c = by_category.setdefault(tr["category"], {"trades": 0, "quantity": {}, "paid": {}})
        c["trades"] += 1
        c["quantity"][tr["unit"]] = c["quantity"].get(tr["unit"], 0) + int(tr["quantity"])
        c["paid"][tr["pay_unit"]] = c["paid"].get(tr["pay_unit"], 0) + int(tr["pay_amount"])
    hours = {cat: v["quantity"].get("HOUR", 0) + v["paid"].get("HOUR", 0)
             for cat, v in by_category.items()}

    traded = {tr["buyer"] for tr in trades} | {tr["seller"] for tr in trades}
    moved = {m.account for m in data.moves if m.reason != "demurrage"}
    active = sorted(
        s.member for s in stmts
        if s.consumed_wh or s.produced_wh or s.member in traded or s.member in moved
    )
    inactive = sorted(set(data.members) - set(active))

    fund_in: dict[str, dict[str, int]] = {}
    fund_out: dict[str, dict[str, int]] = {}
    paid_in: dict[str, int] = {}
    for m in data.moves:
        if m.account != FUND:
            continue
        side = fund_in if m.amount > 0 else fund_out
        per_unit = side.setdefault(m.unit, {})
        per_unit[m.reason] = per_unit.get(m.reason, 0) + abs(m.amount)
        if m.amount > 0 and m.counterparty:
            paid_in[m.counterparty] = paid_in.get(m.counterparty, 0) + m.amount
    prefs_table = app_table(conn, "fund_preferences")
    prefs: dict[str, dict[str, int]] = {}
    if prefs_table is not None:
        for r in conn.execute(sa.select(prefs_table)):
            try:
                prefs[r.member_id] = {str(k): int(v) for k, v in json.loads(r.shares).items()}
            except (ValueError, TypeError, AttributeError):
                continue
    fund_units = sorted({u for (a, u) in data.opening if a == FUND} | set(fund_in) | set(fund_out))
    fund_balance = {
        u: {"opening": data.opening.get((FUND, u), 0),
            "closing": data.opening.get((FUND, u), 0)
            + sum(m.amount for m in data.moves if m.account == FUND and m.unit == u)}
        for u in fund_units
    }
    return {
        "month": month,
        "periods": len(data.periods),
        "totals": summarise(stmts, []),
        "trades_by_category": by_category,
        "hours_by_category": hours,
        "members_active": active,
        "members_inactive": inactive,
        "fund": {
            "in": fund_in,
            "out": fund_out,
            "balance": fund_balance,
            "allocation_bp": fund_allocation(prefs, paid_in),
            "preferences": len(prefs),
        },
    }


# --- DSO: allocation coefficients per meter point and interval --------------------------

DSO_HEADER = ("Horodate", "Identifiant_PRM", "Coefficient", "Energie_allouee_Wh",
              "Production_partagee_Wh")
COEFFICIENT_PLACES = 6


def dso_rows(
    flows: Sequence[tuple[int, str, str, int]], meter_points: Mapping[str, str]
) -> list[tuple[str, str, str, int, int]]:
    """Rows of the DSO file (pure): for every interval with local production offered, every
    consumer meter point's share of it. `flows`: (interval start, producer, consumer or
    "grid", Wh); `meter_points`: member -> its grid meter point (consumers listed).

    Coefficient = Wh allocated to the meter point / Wh offered by the producers in the
    interval (shared + exported beyond), rounded down to 6 decimals, so the coefficients of
    an interval never sum above 1."""
    offered: dict[int, int] = {}
    received: dict[tuple[int, str], int] = {}
    for start, producer, consumer, wh in flows:
        offered[start] = offered.get(start, 0) + wh
        if consumer != GRID and consumer != producer:
            received[start, consumer] = received.get((start, consumer), 0) + wh
    q = Decimal(1).scaleb(-COEFFICIENT_PLACES)
    out = []
    for start in sorted(offered):
        pool = offered[start]
        if pool <= 0:
            continue
        for member, mp in sorted(meter_points.items(), key=lambda kv: kv[1]):
            wh = received.get((start, member), 0)
            coef = (Decimal(wh) / pool).quantize(q, rounding=ROUND_DOWN)
            out.append((_iso(start), mp, f"{coef:.{COEFFICIENT_PLACES}f}", wh, pool))
    return out


def dso_csv(conn: Connection, start: int, end: int) -> str:
    p, f = settle.settle_periods, settle.settle_flows
    flows = [
        (int(r.interval_start), r.producer, r.consumer, int(r.wh))
        for r in conn.execute(
            sa.select(f).join(p, p.c.period_start == f.c.period_start)
            .where(p.c.status == "settled", p.c.period_start >= start, p.c.period_start < end)
        )
    ]
    mps: dict[str, str] = {}
    for r in conn.execute(sa.select(gateways).order_by(gateways.c.active_from)):
        if r.role == "grid" or r.member_id not in mps:
            mps[r.member_id] = r.meter_point
    settled = {m for _, prod, cons, _ in flows for m in (prod, cons)} - {GRID}
    rows_ = dso_rows(flows, {m: mp for m, mp in mps.items() if m in settled})
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\n")
    w.writerow(DSO_HEADER)
    w.writerows(rows_)
    return buf.getvalue()


# --- the accountant's files -------------------------------------------------------------


def _csv(header: Sequence[str], rows_: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows_)
    return buf.getvalue()


STATEMENT_COLUMNS = ("member", "name", "periods", *ENERGY_FIELDS, "self_sufficiency_bp",
                     "tariff_ct_kwh", *MONEY_FIELDS, "kwh_opening", "kwh_closing")


def _statement_row(s: Statement) -> list[Any]:
    kwh = next(((o, c) for u, o, c in s.balances if u == "KWH"), (0, 0))
    return [s.member, s.name, s.periods, *(getattr(s, f) for f in ENERGY_FIELDS),
            s.self_sufficiency_bp, s.tariff_ct_kwh or "", *(getattr(s, f) for f in MONEY_FIELDS),
            *kwh]


def accountant_tables(conn: Connection, month: str) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Name -> (header, rows) of every table handed to the accountant."""
    start, end = month_bounds(month)
    data: PeriodData = load_period(conn, start, end)
    cfg = settings(conn)
    stmts = statements(data, {m: c.tariff_ct_kwh for m, c in cfg.items()})
    moves = [[_iso(m.ts), m.source, m.account, m.unit, m.amount, m.reason, m.counterparty, m.memo]
             for m in data.moves]
    report = board_report(conn, month)
    fund = [[side, unit, reason, amount]
            for side in ("in", "out")
            for unit, reasons in sorted(report["fund"][side].items())
            for reason, amount in sorted(reasons.items())]
    trades = [[tr["id"], _iso(int(tr["created_at"])), tr["category"], tr["buyer"], tr["seller"],
               tr["unit"], tr["quantity"], tr["pay_unit"], tr["pay_amount"], tr["status"]]
              for tr in _trades(conn, start, end)]
    return {
        "statements": (list(STATEMENT_COLUMNS), [_statement_row(s) for s in stmts]),
        "movements": (["time", "source", "account", "unit", "amount", "reason", "counterparty", "memo"], moves),
        "fund": (["side", "unit", "reason", "amount"], fund),
        "trades": (["id", "time", "category", "buyer", "seller", "unit", "quantity", "pay_unit",
                    "pay_amount", "status"], trades),
    }


def accountant_zip(conn: Connection, month: str) -> bytes:
    """A ZIP of CSV files, one XLSX workbook with the same tables, the board report (JSON)
    and the DSO coefficients."""
    from openpyxl import Workbook

    tables = accountant_tables(conn, month)
    wb = Workbook()
    wb.remove(wb.active)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, (header, rows_) in tables.items():
            z.writestr(f"{month}-{name}.csv", _csv(header, rows_))
            ws = wb.create_sheet(name)
            ws.append(header)
            for r in rows_:
                ws.append(list(r))
        xbuf = io.BytesIO()
        wb.save(xbuf)
        z.writestr(f"{month}-accounts.xlsx", xbuf.getvalue())
        z.writestr(f"{month}-board-report.json", json.dumps(board_report(conn, month), indent=2, sort_keys=True))
        start, end = month_bounds(month)
        z.writestr(f"{month}-dso-coefficients.csv", dso_csv(conn, start, end))
    return buf.getvalue()
