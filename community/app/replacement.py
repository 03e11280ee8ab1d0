"""Account replacement: after a lost phone or key, a member's ledger address A is replaced
by a new one B after a delay (48 h by default, the contract's), during which A's key can
cancel; then everything moves to B on the ledger and A is frozen.

The member asks from the app (their key is held by the server, so A still signs the
request: a phone is lost, not the account), or the board asks after checking the member's
identity. By default B is a new server-held key, sealed under a pending custody id until
the replacement is executed; a member may name an address they keep themselves. Asking
logs out every other session of the member (the lost phone); executing logs out all of
them. In the app the member keeps their id, so offers, standing orders, requests, helper
grants and fund preferences follow at once; on chain, grants to the old address and
requests it must pay follow too (the contracts record the succession), while energy offers
signed on the exchange by the old key are withdrawn, to be published again.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from community.app import account_tables as at
from community.app import tables as t
from community.app.services import ServiceError, _new_id
from community.app.tables import accounts as app_accounts

PENDING_SUFFIX = "#next"  # registry ids never contain '#'


def pending_key_id(member: str) -> str:
    return f"{member}{PENDING_SUFFIX}"


def current(conn: sa.Connection, member: str) -> dict[str, Any] | None:
    r = at.replacements
    row = conn.execute(sa.select(r).where(r.c.member == member, r.c.status == "pending")).first()
    return dict(row._mapping) if row else None


def of_member(conn: sa.Connection, member: str) -> list[dict[str, Any]]:
    r = at.replacements
    return [dict(x._mapping) for x in conn.execute(
        sa.select(r).where(r.c.member == member).order_by(r.c.requested_at.desc(), r.c.id.desc()))]


def all_pending(conn: sa.Connection) -> list[dict[str, Any]]:
    r = at.replacements
    return [dict(x._mapping) for x in conn.execute(sa.select(r).where(r.c.status == "pending").order_by(r.c.id))]


def _need(ops: Any | None) -> Any:
    if ops is None:
        raise ServiceError("err.needs_ledger", "")
    return ops


def _end_sessions(conn: sa.Connection, member: str, keep_token_hash: str | None) -> None:
    names = [r.username for r in conn.execute(sa.select(app_accounts.c.username)
                                              .where(app_accounts.c.member_id == member))]
    q = t.sessions.delete().where(t.sessions.c.username.in_(names))
    if keep_token_hash is not None:
        q = q.where(t.sessions.c.token_hash != keep_token_hash)
    conn.execute(q)


def request(conn: sa.Connection, member: str, now: int, *, by_board: bool, ops: Any | None,
            new_address: str | None = None, keep_session: str | None = None) -> dict[str, Any]:
    """Asks to replace the member's ledger address by `new_address` (an address they keep)
    or, without one, by a new server-held key."""
    from community.app.services import member_name
    from quartier.hashing import to_checksum_address

    ops = _need(ops)
    if member_name(conn, member) is None:
        raise ServiceError("err.unknown_member", "member", value=member)
    if current(conn, member) is not None:
        raise ServiceError("err.replacement_pending", "")
    old = ops.address(conn, member)
    if new_address:
        try:
            new = to_checksum_address(new_address.strip())
        except ValueError:
            raise ServiceError("err.address", "address") from None
    else:
        ct = _custody_table()
        conn.execute(ct.delete().where(ct.c.member_id == pending_key_id(member)))
        new = ops.custody.create(conn, pending_key_id(member), now)
    if new == old:
        raise ServiceError("err.self", "address")
    tx, ready_at = ops.request_replacement(conn, member, new, by_board=by_board)
    rid = _new_id(conn.execute(at.replacements.insert().values(
        member=member, old_address=old, new_address=new, requested_by="board" if by_board else "member",
        requested_at=now, ready_at=ready_at, status="pending", tx_hash=tx)))
    _end_sessions(conn, member, keep_session)
    return dict(conn.execute(sa.select(at.replacements).where(at.replacements.c.id == rid)).one()._mapping)


MAX_GUARDIANS = 8  # the contract's limit


def guardians_of(conn: sa.Connection, member: str) -> tuple[list[str], int]:
    rows = conn.execute(sa.select(at.guardians).where(at.guardians.c.member == member)
                        .order_by(at.guardians.c.guardian)).all()
    return [r.guardian for r in rows], (rows[0].threshold if rows else 0)


def guarded_by(conn: sa.Connection, guardian: str) -> list[str]:
    return [r.member for r in conn.execute(sa.select(at.guardians.c.member)
                                           .where(at.guardians.c.guardian == guardian))]


def set_guardians(conn: sa.Connection, member: str, guardians: list[str], threshold: int, now: int, *,
                  ops: Any | None) -> tuple[list[str], int]:
    """The member names up to 8 guardians, `threshold` of whom may approve a replacement
    instead of the board (e.g. 2 of 3); an empty list removes them."""
    from community.app.services import member_name

    ops = _need(ops)
    names = sorted(set(guardians))
    for g in names:
        if member_name(conn, g) is None:
            raise ServiceError("err.unknown_member", "guardians", value=g)
    if member in names:
        raise ServiceError("err.self", "guardians")
    if len(names) > MAX_GUARDIANS or (names and not 1 <= threshold <= len(names)):
        raise ServiceError("err.guardians", "guardians", max=MAX_GUARDIANS)
    tx = ops.set_guardians(conn, member, names, threshold if names else 0)
    conn.execute(at.guardians.delete().where(at.guardians.c.member == member))
    conn.execute(at.approvals.delete().where(at.approvals.c.member == member))  # a new round
    if names:
        conn.execute(at.guardians.insert(), [{"member": member, "guardian": g, "threshold": threshold,
                                              "set_at": now, "tx_hash": tx} for g in names])
    return names, threshold if names else 0


def approvals_of(conn: sa.Connection, member: str) -> list[dict[str, Any]]:
    a = at.approvals
    return [dict(r._mapping) for r in conn.execute(sa.select(a).where(a.c.member == member).order_by(a.c.id))]


def approve(conn: sa.Connection, guardian: str, member: str, now: int, *, ops: Any | None) -> dict[str, Any]:
    """A guardian approves moving `member` to a new server-held key (created by the first
    approval, the same for the following ones); the request opens once `threshold`
    guardians approved."""
    ops = _need(ops)
    names, _ = guardians_of(conn, member)
    if guardian not in names:
        raise ServiceError("err.not_a_guardian", "")
    if current(conn, member) is not None:
        raise ServiceError("err.replacement_pending", "")
    if any(a["guardian"] == guardian for a in approvals_of(conn, member)):
        raise ServiceError("err.control_noop", "")
    held = ops.custody.get(conn, pending_key_id(member))
    new = held.address if held is not None else ops.custody.create(conn, pending_key_id(member), now)
    tx, ready_at = ops.approve_replacement(conn, guardian, member, new)
    conn.execute(at.approvals.insert().values(member=member, guardian=guardian, new_address=new, ts=now,
                                              tx_hash=tx))
    if ready_at is None:
        return {"member": member, "new_address": new, "status": "approving",
                "approvals": len(approvals_of(conn, member))}
    conn.execute(at.approvals.delete().where(at.approvals.c.member == member))
    rid = _new_id(conn.execute(at.replacements.insert().values(
        member=member, old_address=ops.address(conn, member), new_address=new, requested_by="guardian",
        requested_at=now, ready_at=ready_at, status="pending", tx_hash=tx)))
    _end_sessions(conn, member, None)
    return dict(conn.execute(sa.select(at.replacements).where(at.replacements.c.id == rid)).one()._mapping)


def _carry_over(conn: sa.Connection, member: str, now: int, ops: Any) -> None:
    """The grants the member gave and the requests they made name the old address and stop
    working with it (those naming it as helper or payer follow on chain); the member's own (grants they gave, requests they made) are signed again with the
    new key, which the community holds, so helpers and payers carry on unaware."""
    from community.app import helping

    for g in helping.grants_of(conn, member, now):
        if g["tx_hash"]:
            tx = ops.grant(conn, member, g["helper"], g["kind"], g["unit"], int(g["monthly"]), int(g["expires_at"]))
            conn.execute(at.helpers.update().where(at.helpers.c.id == g["id"]).values(tx_hash=tx))
    r = at.requests
    for req in conn.execute(sa.select(r).where(r.c.requester == member, r.c.status == "open",
                                               r.c.chain_id.is_not(None), r.c.expires_at > ops.now())).all():
        chain_id, tx = ops.create_request(conn, member, req.payer, req.unit, int(req.amount) - int(req.paid),
                                          int(req.expires_at))
        # Paid parts stay in the app's row; the new request on chain asks for what remains.
        conn.execute(r.update().where(r.c.id == req.id).values(chain_id=chain_id, tx_hash=tx))


def _custody_table() -> sa.Table:
    from community.custody import custody_keys

    return custody_keys


def cancel(conn: sa.Connection, member: str, now: int, *, by: str, by_board: bool, ops: Any | None) -> dict[str, Any]:
    """The old key (the member, still holding it) or the board cancels during the delay."""
    ops = _need(ops)
    pending = current(conn, member)
    if pending is None:
        raise ServiceError("err.no_replacement", "")
    tx = ops.cancel_replacement(conn, member, pending["old_address"], by_board=by_board)
    ct = _custody_table()
    conn.execute(ct.delete().where(ct.c.member_id == pending_key_id(member)))
    conn.execute(at.approvals.delete().where(at.approvals.c.member == member))
    conn.execute(at.replacements.update().where(at.replacements.c.id == pending["id"])
                 .values(status="cancelled", closed_at=now, closed_by=by, tx_hash=tx))
    return pending | {"status": "cancelled"}


def execute(conn: sa.Connection, member: str, now: int, *, by: str, ops: Any | None) -> dict[str, Any]:
    """Once the delay has run (anyone may ask): the ledger moves everything to the new
    address and freezes the old; the app's key and ledger link follow."""
    from community.settlement.run import link_account

    ops = _need(ops)
    pending = current(conn, member)
    if pending is None:
        raise ServiceError("err.no_replacement", "")
    if ops.now() < int(pending["ready_at"]):
        raise ServiceError("err.not_ready", "")
    tx = ops.execute_replacement(pending["old_address"])
    held = ops.custody.get(conn, pending_key_id(member))
    if held is not None and held.address == pending["new_address"]:
        key = ops.custody.unlock(conn, pending_key_id(member))
        ct = _custody_table()  # the address is unique: the pending row goes first
        conn.execute(ct.delete().where(ct.c.member_id == pending_key_id(member)))
        ops.custody.adopt(conn, member, pending["new_address"], key, now)
        del key
    else:
        ops.custody.adopt(conn, member, pending["new_address"], None, now)
    link_account(conn, member, pending["new_address"])
    # Exchange offers the old key signed can no longer be taken (it is frozen): they are
    # withdrawn, and the member publishes them again.
    signed_by_old = t.exchange_offers.c.maker == pending["old_address"]
    conn.execute(t.offers.update().where(t.offers.c.id.in_(sa.select(t.exchange_offers.c.offer_id).where(
        signed_by_old)), t.offers.c.status == "open").values(status="closed"))
    conn.execute(t.exchange_offers.delete().where(signed_by_old))
    if held is not None:
        _carry_over(conn, member, now, ops)
    conn.execute(at.replacements.update().where(at.replacements.c.id == pending["id"])
                 .values(status="executed", closed_at=now, closed_by=by, tx_hash=tx))
    _end_sessions(conn, member, None)
    return pending | {"status": "executed", "tx_hash": tx}
