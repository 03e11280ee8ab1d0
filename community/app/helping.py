"""Helpers: a member lets another pay on their behalf up to a monthly amount in one unit,
or see their account read-only, until a date, revocable. Every payment a helper makes is
journalled with `acted_by`, so both statements show who acted for whom.

On the ledger the grant and each payment are the `Helpers` contract's intents (the
contract enforces the monthly amount too); the rows here are checked first so that a
refusal names the amounts in the member's language either way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from community.app import account_tables as at
from community.app import controls, services
from community.app import tables as t
from community.app.services import ServiceError, _new_id

KINDS = ("view", "pay")
MAX_DAYS = 366


def month_start(ts: int) -> int:
    """Start of the UTC calendar month holding `ts` (the contract's month too)."""
    d = datetime.fromtimestamp(ts, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


def _active(conn: sa.Connection, now: int) -> Any:
    h = at.helpers
    return sa.select(h).where(h.c.revoked_at.is_(None), h.c.expires_at > now)


def grants_of(conn: sa.Connection, member: str, now: int) -> list[dict[str, Any]]:
    """The member's active grants (who helps them)."""
    rows = conn.execute(_active(conn, now).where(at.helpers.c.member == member).order_by(at.helpers.c.id))
    return [dict(r._mapping) | {"spent": spent(conn, r.member, r.helper, r.unit, now) if r.kind == "pay" else 0}
            for r in rows]


def helping(conn: sa.Connection, helper: str, now: int) -> list[dict[str, Any]]:
    """The grants a member holds (whom they help)."""
    rows = conn.execute(_active(conn, now).where(at.helpers.c.helper == helper).order_by(at.helpers.c.id))
    return [dict(r._mapping) | {"spent": spent(conn, r.member, r.helper, r.unit, now) if r.kind == "pay" else 0}
            for r in rows]


def active_grant(conn: sa.Connection, member: str, helper: str, now: int) -> dict[str, Any] | None:
    row = conn.execute(_active(conn, now).where(at.helpers.c.member == member, at.helpers.c.helper == helper)
                       .order_by(at.helpers.c.id.desc())).first()
    return dict(row._mapping) if row else None


def may_view(conn: sa.Connection, member: str, viewer: str, now: int) -> bool:
    """A helper with any active grant (view, or pay which includes view)."""
    return active_grant(conn, member, viewer, now) is not None


def spent(conn: sa.Connection, member: str, helper: str, unit: str | None, now: int) -> int:
    """What `helper` paid for `member` in `unit` this UTC calendar month."""
    e = t.entries
    total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(-e.c.amount), 0)).where(
        e.c.account == member, e.c.acted_by == helper, e.c.unit == unit, e.c.amount < 0,
        e.c.ts >= month_start(now))).scalar_one()
    return int(total)


def grant(conn: sa.Connection, member: str, helper: str, kind: str, *, unit: str | None, monthly: int,
          expires_at: int, now: int, ops: Any | None = None) -> dict[str, Any]:
    if kind not in KINDS:
        raise ServiceError("err.choice", "kind", choices=", ".join(KINDS))
    if services.member_name(conn, helper) is None:
        raise ServiceError("err.unknown_member", "helper", value=helper)
    if helper == member:
        raise ServiceError("err.self", "helper")
    if kind == "pay":
        if unit not in services.units(conn):
            raise ServiceError("err.choice", "unit", choices=", ".join(services.units(conn)))
        if monthly <= 0:
            raise ServiceError("err.positive", "monthly")
    else:
        unit, monthly = None, 0
    if not now < expires_at <= now + MAX_DAYS * 86_400:
        raise ServiceError("err.expiry", "expires", max=MAX_DAYS)
    tx = None
    if ops is not None and (kind == "view" or ops.relays(str(unit))):
        tx = ops.grant(conn, member, helper, kind, unit, monthly, expires_at)
    # One grant per pair, as on chain: a new grant replaces the previous one.
    conn.execute(at.helpers.update().where(at.helpers.c.member == member, at.helpers.c.helper == helper,
                                           at.helpers.c.revoked_at.is_(None)).values(revoked_at=now))
    grant_id = _new_id(conn.execute(at.helpers.insert().values(
        member=member, helper=helper, kind=kind, unit=unit, monthly=monthly, expires_at=expires_at,
        created_at=now, tx_hash=tx)))
    return dict(conn.execute(sa.select(at.helpers).where(at.helpers.c.id == grant_id)).one()._mapping)


def revoke(conn: sa.Connection, member: str, grant_id: int, now: int, *, ops: Any | None = None) -> None:
    row = conn.execute(sa.select(at.helpers).where(at.helpers.c.id == grant_id)).first()
    if row is None or row.member != member or row.revoked_at is not None:
        raise ServiceError("common.not_found", "grant")
    if ops is not None and row.tx_hash:
        ops.revoke(conn, member, row.helper)
    conn.execute(at.helpers.update().where(at.helpers.c.id == grant_id).values(revoked_at=now))


def pay_for(conn: sa.Connection, helper: str, member: str, to: str, unit: str, amount: int, now: int, *,
            memo: str = "", ops: Any | None = None) -> dict[str, Any]:
    """The helper pays `to` from `member`'s account, within this month's amount."""
    g = active_grant(conn, member, helper, now)
    if g is None or g["kind"] != "pay" or g["unit"] != unit:
        raise ServiceError("err.no_grant", "")
    if services.member_name(conn, to) is None and to != services.FUND:
        raise ServiceError("err.unknown_member", "to", value=to)
    if to == member:
        raise ServiceError("err.self", "to")
    if amount <= 0:
        raise ServiceError("err.positive", "amount")
    if len(memo.strip()) > 200:
        raise ServiceError("err.too_long", "memo", max=200)
    from community.app.relay import _shown

    after = spent(conn, member, helper, unit, now) + amount
    if after > int(g["monthly"]):
        raise ServiceError("err.allowance", "amount", monthly=_shown(unit, int(g["monthly"])),
                           over=_shown(unit, after - int(g["monthly"])))
    relayed = ops is not None and ops.relays(unit) and g["tx_hash"] is not None
    if not relayed:
        for crossing in controls.crossings(conn, member, to, unit, amount):
            raise crossing.error()
    controls.guard_transfer(conn, member, to, unit, amount, relayed=relayed)
    tx = ops.pay_for(conn, helper, member, to, unit, amount) if ops is not None and relayed else None
    ref = f"helper:{g['id']}"
    rows = [{"ts": now, "account": acc, "unit": unit, "amount": sign * amount, "reason": "helper",
             "counterparty": other, "ref": ref, "memo": memo.strip() or None, "tx_hash": tx, "acted_by": helper}
            for acc, other, sign in ((member, to, -1), (to, member, 1))]
    conn.execute(t.entries.insert(), rows)
    return {"member": member, "helper": helper, "to": to, "unit": unit, "amount": amount, "tx_hash": tx,
            "spent": after, "monthly": int(g["monthly"])}
