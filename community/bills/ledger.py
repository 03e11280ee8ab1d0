"""Reading a billing period from SQL into `PeriodData`: the thin adapter of billing.

Only settled periods count (status `settled`), those starting in the billing period.
Metered energy comes from each period's stored record (the very interval values the
gateways signed, checked against their claims here); flows, movements and entries from
the settlement tables; hours, goods and trades from the web app's journal when the app's
tables exist.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from community.bills import schema
from community.bills.statement import (
    FUND,
    BillsError,
    Metered,
    Move,
    PeriodData,
    Statement,
    member_statement,
    parse_tariff,
)
from community.db import members as members_table
from community.settlement import schema as settle


def month_bounds(month: str) -> tuple[int, int]:
    """A month YYYY-MM as [start, end) Unix seconds, UTC."""
    try:
        d = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise BillsError(f"month {month!r}: expected YYYY-MM, e.g. 2024-06") from None
    nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return int(d.timestamp()), int(datetime(nxt.year, nxt.month, 1, tzinfo=UTC).timestamp())


def month_of(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


def last_settled_month(conn: Connection) -> str | None:
    p = settle.settle_periods
    last = conn.execute(sa.select(sa.func.max(p.c.period_start)).where(p.c.status == "settled")).scalar()
    return None if last is None else month_of(int(last))


def app_table(conn: Connection, name: str) -> sa.Table | None:
    """One of the web app's tables, if the app is installed and has created it."""
    try:
        from community.app import tables
    except ImportError:
        return None
    table = getattr(tables, name, None)
    if not isinstance(table, sa.Table) or not sa.inspect(conn).has_table(table.name):
        return None
    return table


def _metered(record: Mapping[str, Any], problems: list[str]) -> dict[str, Metered]:
    out: dict[str, Metered] = {}
    per_interval: dict[tuple[str, int], tuple[int, int]] = {}
    for g in record.get("gateways", []):
        member = g["member"]
        imp = exp = prod = 0
        for start, i, e, p in g["intervals"]:
            imp, exp, prod = imp + i, exp + e, prod + p
            a, b = per_interval.get((member, start), (0, 0))
            per_interval[member, start] = (a + i, b + e)
        claim = g.get("claim", {})
        signed = (claim.get("imported_wh"), claim.get("exported_wh"), claim.get("produced_wh"))
        if signed != (imp, exp, prod):
            problems.append(
                f"gateway {g['gateway']}: claim totals {signed} differ from its intervals "
                f"{(imp, exp, prod)}"
            )
        out[member] = out.get(member, Metered()) + Metered(imp, exp, prod, 0)
    for (member, _), (i, e) in per_interval.items():
        out[member] = out[member] + Metered(netted=min(i, e))
    return out


def load_period(conn: Connection, start: int, end: int) -> PeriodData:
    """Everything needed to bill [start, end) (Unix seconds)."""
    p = settle.settle_periods
    rows = conn.execute(
        sa.select(p)
        .where(p.c.status == "settled", p.c.period_start >= start, p.c.period_start < end)
        .order_by(p.c.period_start)
    ).all()
    periods = tuple(int(r.period_start) for r in rows)
    problems: list[str] = []
    metered: dict[str, Metered] = {}
    for r in rows:
        for member, m in _metered(json.loads(r.record), problems).items():
            metered[member] = metered.get(member, Metered()) + m
    in_periods = sa.and_(
        p.c.status == "settled", p.c.period_start >= start, p.c.period_start < end
    )

    f = settle.settle_flows
    flows: dict[tuple[str, str], int] = {}
    q = (
        sa.select(f.c.producer, f.c.consumer, sa.func.sum(f.c.wh))
        .join(p, p.c.period_start == f.c.period_start)
        .where(in_periods)
        .group_by(f.c.producer, f.c.consumer)
    )
    for producer, consumer, wh in conn.execute(q):
        flows[producer, consumer] = int(wh)

    mv = settle.settle_movements
    moves = [
        Move(int(r.period_start), r.account, r.unit, int(r.amount), r.reason, r.counterparty or "")
        for r in conn.execute(
            sa.select(mv).join(p, p.c.period_start == mv.c.period_start).where(in_periods)
            .order_by(mv.c.period_start, mv.c.id)
        )
    ]
    e = settle.settle_entries
    entries = {
        (int(r.period_start), r.account, r.unit): int(r.amount)
        for r in conn.execute(
            sa.select(e).join(p, p.c.period_start == e.c.period_start).where(in_periods)
        )
    }
    opening: dict[tuple[str, str], int] = {}
    q = (
        sa.select(e.c.account, e.c.unit, sa.func.sum(e.c.amount))
        .join(p, p.c.period_start == e.c.period_start)
        .where(p.c.status == "settled", p.c.period_start < start)
        .group_by(e.c.account, e.c.unit)
    )
    for account, unit, amount in conn.execute(q):
        opening[account, unit] = int(amount)

    journal = app_table(conn, "entries")
    if journal is not None:
        j = journal.c
        for r in conn.execute(
            sa.select(journal).where(j.ts >= start, j.ts < end).order_by(j.ts, j.id)
        ):
            moves.append(
                Move(int(r.ts), r.account, r.unit, int(r.amount), r.reason,
                     r.counterparty or "", "app", r.memo or "")
            )
        q = (
            sa.select(j.account, j.unit, sa.func.sum(j.amount))
            .where(j.ts < start)
            .group_by(j.account, j.unit)
        )
        for account, unit, amount in conn.execute(q):
            opening[account, unit] = opening.get((account, unit), 0) + int(amount)

    c = settle.settle_carried
    carried: dict[str, int] = {}
    for member, n in conn.execute(
        sa.select(c.c.member_id, sa.func.count())
        .join(p, p.c.period_start == c.c.period_start)
        .where(in_periods)
        .group_by(c.c.member_id)
    ):
        carried[member] = int(n)

    names: dict[str, str] = {}
    registered: set[str] = set()
    for r in conn.execute(sa.select(members_table)):
        names[r.id] = r.name
        if r.created_at < end * 1000:
            registered.add(r.id)
    bm = schema.bills_members
    consent = frozenset(
        r.member_id for r in conn.execute(sa.select(bm.c.member_id).where(bm.c.name_consent))
    )
    billed = registered | set(metered) | {m.account for m in moves} | set(carried)
    billed.discard(FUND)
    return PeriodData(
        start=start,
        end=end,
        periods=periods,
        metered=metered,
        flows=flows,
        moves=tuple(moves),
        entries=entries,
        opening=opening,
        names=names,
        consent=consent,
        carried=carried,
        members=tuple(sorted(billed)),
        chain_reconciled=all(r.reconciled is True for r in rows),
        problems=tuple(problems),
    )


def statement_for(conn: Connection, member: str, month: str) -> Statement:
    """A member's statement of a month as it stands now (for the web app's page)."""
    start, end = month_bounds(month)
    cfg = settings(conn).get(member)
    return member_statement(load_period(conn, start, end), member, cfg.tariff_ct_kwh if cfg else None)


# --- member settings --------------------------------------------------------------------


@dataclass(frozen=True)
class MemberSettings:
    member: str
    lang: str = "fr"
    email: str | None = None
    name_consent: bool = False
    tariff_ct_kwh: str | None = None
    digest: bool = True
    unsubscribe_token: str | None = None


LANGS = ("fr", "en")


def settings(conn: Connection) -> dict[str, MemberSettings]:
    return {
        r.member_id: MemberSettings(
            r.member_id, r.lang, r.email, bool(r.name_consent), r.tariff_ct_kwh, bool(r.digest),
            r.unsubscribe_token,
        )
        for r in conn.execute(sa.select(schema.bills_members))
    }


def set_member(conn: Connection, member: str, **values: Any) -> MemberSettings:
    """Create or update a member's billing settings (only the keys given change)."""
    allowed = {"lang", "email", "name_consent", "tariff_ct_kwh", "digest"}
    unknown = set(values) - allowed
    if unknown:
        raise BillsError(f"unknown member setting(s): {', '.join(sorted(unknown))}")
    if "lang" in values and values["lang"] not in LANGS:
        raise BillsError(f"lang {values['lang']!r}: expected one of {', '.join(LANGS)}")
    if "tariff_ct_kwh" in values:
        t = parse_tariff(values["tariff_ct_kwh"])
        values["tariff_ct_kwh"] = None if t is None else str(t)
    if values.get("email") and "@" not in str(values["email"]):
        raise BillsError(f"email {values['email']!r}: not an e-mail address")
    bm = schema.bills_members
    exists = conn.execute(sa.select(bm.c.member_id).where(bm.c.member_id == member)).first()
    if exists is None:
        conn.execute(bm.insert().values(member_id=member, unsubscribe_token=secrets.token_urlsafe(24),
                                        **values))
    elif values:
        conn.execute(bm.update().where(bm.c.member_id == member).values(**values))
    return settings(conn)[member]


def unsubscribe(conn: Connection, token: str) -> str | None:
    """Stop the digest for the member holding `token`; returns the member, or None."""
    bm = schema.bills_members
    row = conn.execute(sa.select(bm.c.member_id).where(bm.c.unsubscribe_token == token)).first()
    if row is None or not token:
        return None
    conn.execute(bm.update().where(bm.c.member_id == row.member_id).values(digest=False))
    return str(row.member_id)
