"""Payment requests: a member (or the board, for the fund) asks to be paid an amount in a
unit, with a memo and an expiry; the payer pays all or part, or refuses; the requester may
withdraw. Both see the history. A request is also a link (`/pay/{id}`) and a QR code.

On the ledger (HOUR and KG with custody and the suite) the request lives in the
`PaymentRequests` contract and every payment is the payer's signed intent; the memo stays
here. Otherwise the journal records the payment, with the same rules.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from community.app import account_tables as at
from community.app import controls, services
from community.app import tables as t
from community.app.services import FUND, ServiceError, _new_id

STATUSES = ("open", "paid", "refused", "withdrawn")
MAX_DAYS = 366


def get(conn: sa.Connection, request_id: int) -> dict[str, Any]:
    row = conn.execute(sa.select(at.requests).where(at.requests.c.id == request_id)).first()
    if row is None:
        raise ServiceError("common.not_found", "request")
    return dict(row._mapping)


def shown_status(req: dict[str, Any], now: int) -> str:
    return "expired" if req["status"] == "open" and now >= int(req["expires_at"]) else str(req["status"])


def of_member(conn: sa.Connection, member: str) -> dict[str, list[dict[str, Any]]]:
    """Requests a member made and requests addressed to them, newest first."""
    r = at.requests
    order = (r.c.created_at.desc(), r.c.id.desc())
    made = conn.execute(sa.select(r).where(r.c.requester == member).order_by(*order))
    to_pay = conn.execute(sa.select(r).where(r.c.payer == member).order_by(*order))
    return {"made": [dict(x._mapping) for x in made], "to_pay": [dict(x._mapping) for x in to_pay]}


def for_fund(conn: sa.Connection) -> list[dict[str, Any]]:
    r = at.requests
    rows = conn.execute(sa.select(r).where(r.c.requester == FUND).order_by(r.c.created_at.desc(), r.c.id.desc()))
    return [dict(x._mapping) for x in rows]


def history(conn: sa.Connection, request_id: int) -> list[dict[str, Any]]:
    e = at.request_events
    rows = conn.execute(sa.select(e).where(e.c.request_id == request_id).order_by(e.c.ts, e.c.id))
    return [dict(x._mapping) for x in rows]


def may_see(req: dict[str, Any], member: str | None, is_board: bool) -> bool:
    """The requester, the named payer, the board; a request for anyone is seen by any
    member who has the link."""
    if is_board:
        return True
    if member is None:
        return False
    return member in (req["requester"], req["payer"]) or req["payer"] is None


def _event(conn: sa.Connection, request_id: int, now: int, event: str, member: str | None,
           amount: int | None = None, tx_hash: str | None = None, acted_by: str | None = None) -> None:
    conn.execute(at.request_events.insert().values(request_id=request_id, ts=now, event=event, member=member,
                                                   amount=amount, tx_hash=tx_hash, acted_by=acted_by))


def create(conn: sa.Connection, *, requester: str, payer: str | None, unit: str, amount: int, memo: str,
           expires_at: int, now: int, created_by: str, ops: Any | None = None) -> dict[str, Any]:
    if unit not in services.units(conn):
        raise ServiceError("err.choice", "unit", choices=", ".join(services.units(conn)))
    if amount <= 0:
        raise ServiceError("err.positive", "amount")
    memo = memo.strip()
    if len(memo) > 200:
        raise ServiceError("err.too_long", "memo", max=200)
    if payer is not None:
        if services.member_name(conn, payer) is None:
            raise ServiceError("err.unknown_member", "payer", value=payer)
        if payer == requester:
            raise ServiceError("err.self", "payer")
    if requester == FUND and payer is None:
        raise ServiceError("err.required", "payer")
    if not now < expires_at <= now + MAX_DAYS * 86_400:
        raise ServiceError("err.expiry", "expires", max=MAX_DAYS)
    chain_id = tx = None
    if ops is not None and ops.relays(unit):
        chain_id, tx = ops.create_request(conn, requester, payer, unit, amount, expires_at)
    request_id = _new_id(conn.execute(at.requests.insert().values(
        requester=requester, payer=payer, unit=unit, amount=amount, paid=0, memo=memo, status="open",
        expires_at=expires_at, created_at=now, created_by=created_by, chain_id=chain_id, tx_hash=tx or None)))
    _event(conn, request_id, now, "requested", requester, amount, tx or None)
    return get(conn, request_id)


def _open_for(conn: sa.Connection, request_id: int, now: int) -> dict[str, Any]:
    req = get(conn, request_id)
    if shown_status(req, now) != "open":
        raise ServiceError("err.request_closed", "")
    return req


def pay(conn: sa.Connection, request_id: int, payer: str, amount: int, now: int, *,
        ops: Any | None = None) -> dict[str, Any]:
    """`payer` pays `amount`: all or part of what remains."""
    req = _open_for(conn, request_id, now)
    if req["payer"] is not None and req["payer"] != payer:
        raise ServiceError("err.not_the_payer", "")
    if payer == req["requester"]:
        raise ServiceError("err.self", "")
    remaining = int(req["amount"]) - int(req["paid"])
    unit = str(req["unit"])
    if amount <= 0:
        raise ServiceError("err.positive", "amount")
    if amount > remaining:
        from community.app.relay import _shown

        raise ServiceError("err.above_remaining", "amount", remaining=_shown(unit, remaining))
    relayed = ops is not None and ops.relays(unit) and req["chain_id"] is not None
    if not relayed:
        for crossing in controls.crossings(conn, payer, str(req["requester"]), unit, amount):
            raise crossing.error()
    controls.guard_transfer(conn, payer, str(req["requester"]), unit, amount, relayed=relayed)
    tx = None
    if relayed:
        assert ops is not None
        tx = ops.pay_request(conn, payer, int(req["chain_id"]), unit, amount)
    paid = int(req["paid"]) + amount
    ref = f"request:{request_id}"
    rows = [{"ts": now, "account": acc, "unit": unit, "amount": sign * amount, "reason": "request",
             "counterparty": other, "ref": ref, "memo": req["memo"] or None, "tx_hash": tx, "acted_by": None}
            for acc, other, sign in ((payer, req["requester"], -1), (req["requester"], payer, 1))]
    conn.execute(t.entries.insert(), rows)
    conn.execute(at.requests.update().where(at.requests.c.id == request_id)
                 .values(paid=paid, status="paid" if paid >= int(req["amount"]) else "open"))
    _event(conn, request_id, now, "paid", payer, amount, tx)
    return get(conn, request_id)


def refuse(conn: sa.Connection, request_id: int, payer: str, now: int, *, ops: Any | None = None) -> dict[str, Any]:
    req = _open_for(conn, request_id, now)
    if req["payer"] != payer:
        raise ServiceError("err.not_the_payer", "")
    tx = None
    if ops is not None and req["chain_id"] is not None:
        tx = ops.refuse_request(conn, payer, int(req["chain_id"]))
    conn.execute(at.requests.update().where(at.requests.c.id == request_id).values(status="refused"))
    _event(conn, request_id, now, "refused", payer, None, tx)
    return get(conn, request_id)


def withdraw(conn: sa.Connection, request_id: int, requester: str, now: int, *,
             ops: Any | None = None) -> dict[str, Any]:
    req = _open_for(conn, request_id, now)
    if req["requester"] != requester:
        raise ServiceError("err.not_the_requester", "")
    tx = None
    if ops is not None and req["chain_id"] is not None and requester != FUND:
        tx = ops.withdraw_request(conn, requester, int(req["chain_id"]))
    conn.execute(at.requests.update().where(at.requests.c.id == request_id).values(status="withdrawn"))
    _event(conn, request_id, now, "withdrawn", requester, None, tx)
    return get(conn, request_id)


def qr_text(base_url: str, req: dict[str, Any]) -> str:
    """What the QR code carries: the link that opens the request in the app, with the
    unit, the amount and the memo readable by any scanner."""
    from urllib.parse import urlencode

    query = urlencode({"unit": req["unit"], "amount": req["amount"], "memo": req["memo"]})
    return f"{base_url.rstrip('/')}/pay/{req['id']}?{query}"
