"""Board controls (pause, freeze), limits both ways, and the community's privacy setting.

Pause and freeze are decided on the ledger when the app has one (the contract refuses
every transfer) and always recorded here with their reason, for every member to see.
Without a ledger the journal enforces them (`guard_transfer`, called for every payment the
app journals) together with the units' floors and ceilings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from community.app import account_tables as at
from community.app import services
from community.app.services import ServiceError

ACTIONS = ("pause", "resume", "freeze", "unfreeze")
MEMBERS_SEE_BALANCES = "members_see_balances"


# --- privacy ------------------------------------------------------------------------------


def setting(conn: sa.Connection, name: str, default: str = "") -> str:
    value = conn.execute(sa.select(at.community_settings.c.value)
                         .where(at.community_settings.c.name == name)).scalar()
    return default if value is None else str(value)


def set_setting(conn: sa.Connection, name: str, value: str) -> None:
    if conn.execute(at.community_settings.update().where(at.community_settings.c.name == name)
                    .values(value=value)).rowcount == 0:
        conn.execute(at.community_settings.insert().values(name=name, value=value))


def members_see_balances(conn: sa.Connection) -> bool:
    """Whether members see each other's balances (never statements): off by default."""
    return setting(conn, MEMBERS_SEE_BALANCES, "no") == "yes"


# --- pause and freeze ---------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    paused: bool
    pause_reason: str | None
    frozen: dict[str, str]  # member -> reason


def history(conn: sa.Connection) -> list[dict[str, object]]:
    q = sa.select(at.controls).order_by(at.controls.c.ts.desc(), at.controls.c.id.desc())
    return [dict(r._mapping) for r in conn.execute(q)]


def state(conn: sa.Connection) -> State:
    paused, reason = False, None
    frozen: dict[str, str] = {}
    for row in reversed(history(conn)):
        if row["action"] == "pause":
            paused, reason = True, str(row["reason"])
        elif row["action"] == "resume":
            paused, reason = False, None
        elif row["action"] == "freeze":
            frozen[str(row["member"])] = str(row["reason"])
        elif row["action"] == "unfreeze":
            frozen.pop(str(row["member"]), None)
    return State(paused, reason, frozen)


def act(conn: sa.Connection, action: str, reason: str, by: str, now: int, *, member: str | None = None,
        ops: Any | None = None) -> dict[str, object]:
    """The board pauses or resumes every transfer, or freezes or unfreezes one account, with
    a reason; on the ledger first when the app has one."""
    if action not in ACTIONS:
        raise ServiceError("err.choice", "action", choices=", ".join(ACTIONS))
    reason = reason.strip()
    if not reason:
        raise ServiceError("err.required", "reason")
    if len(reason) > 300:
        raise ServiceError("err.too_long", "reason", max=300)
    current = state(conn)
    if action in ("freeze", "unfreeze"):
        if not member or services.member_name(conn, member) is None:
            raise ServiceError("common.not_found", "member")
        if (action == "freeze") == (member in current.frozen):
            raise ServiceError("err.control_noop", "action")
    else:
        member = None
        if (action == "pause") == current.paused:
            raise ServiceError("err.control_noop", "action")
    tx = None
    if ops is not None:
        tx = ops.control(action, ops.address(conn, member) if member else None, reason)
    row = {"ts": now, "action": action, "member": member, "reason": reason, "by": by, "tx_hash": tx}
    conn.execute(at.controls.insert().values(**row))
    return row


# --- limits -------------------------------------------------------------------------------


def ceiling(conn: sa.Connection, unit: str) -> int | None:
    value = conn.execute(sa.select(at.ceilings.c.ceiling).where(at.ceilings.c.unit == unit)).scalar()
    return None if value is None else int(value)


def set_ceiling(conn: sa.Connection, unit: str, value: int | None) -> None:
    conn.execute(at.ceilings.delete().where(at.ceilings.c.unit == unit))
    if value is not None:
        conn.execute(at.ceilings.insert().values(unit=unit, ceiling=value))


@dataclass(frozen=True)
class Crossing:
    """A payment that would take an account past one of its limits."""

    who: str  # payer | payee
    limit: str  # floor | ceiling
    unit: str
    after: int
    bound: int

    @property
    def by(self) -> int:
        return self.bound - self.after if self.limit == "floor" else self.after - self.bound

    def error(self) -> ServiceError:
        from community.app.relay import _shown

        return ServiceError(f"err.{self.limit}_by", "amount", unit=self.unit, after=_shown(self.unit, self.after),
                            bound=_shown(self.unit, self.bound), by=_shown(self.unit, self.by))


def _sql_limits(conn: sa.Connection, member: str, unit: str) -> tuple[int, int, int | None]:
    u = services.units(conn).get(unit)
    return services.balance_of(conn, member, unit), (u.floor if u else 0), ceiling(conn, unit)


def crossings(conn: sa.Connection, payer: str, payee: str, unit: str, amount: int,
              ops: Any | None = None) -> list[Crossing]:
    """What a payment would do to both accounts' limits: on the ledger's limits when the
    payment would be relayed, else on the app's. The fund has no limits."""
    out = []
    on_chain = ops is not None and ops.relays(unit)
    for who, member, delta in (("payer", payer, -amount), ("payee", payee, amount)):
        if member == services.FUND:
            continue
        balance, floor, top = (ops.limits(conn, member, unit) if ops is not None and on_chain
                               else _sql_limits(conn, member, unit))
        after = balance + delta
        if delta < 0 and after < floor:
            out.append(Crossing(who, "floor", unit, after, floor))
        if delta > 0 and top is not None and after > top:
            out.append(Crossing(who, "ceiling", unit, after, top))
    return out


def guard_transfer(conn: sa.Connection, payer: str, payee: str, unit: str, amount: int, *,
                   relayed: bool) -> None:
    """Checked before the app journals any payment: a pause or a freeze recorded here, and
    (when the ledger does not decide) the payee's ceiling."""
    current = state(conn)
    if current.paused:
        raise ServiceError("err.paused", "amount", reason=current.pause_reason or "")
    for member in (payer, payee):
        if member in current.frozen:
            raise ServiceError("err.frozen", "amount", member=member, reason=current.frozen[member])
    if not relayed and payee != services.FUND:
        top = ceiling(conn, unit)
        if top is not None:
            after = services.balance_of(conn, payee, unit) + amount
            if after > top:
                raise Crossing("payee", "ceiling", unit, after, top).error()
