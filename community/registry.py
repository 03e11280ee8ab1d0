"""Who belongs to the community: members, their meter points, and the gateways that sign.

A gateway is enrolled for one meter point with a role: `production` (an inverter's own
meter) or `grid` (the utility meter at the point of connection). Revoking a gateway ends
its activity (`active_to`) and makes ingest refuse everything it sends afterwards; the
row stays, so that past readings, claims and certificates still name it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from community.db import gateways, members, meter_points
from quartier.hashing import to_checksum_address

ROLES = ("production", "grid")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class RegistryError(ValueError):
    """A registry change that cannot be made; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Gateway:
    address: str
    member_id: str
    meter_point: str
    role: str
    active_from: int
    active_to: int | None
    revoked_reason: str | None

    @property
    def revoked(self) -> bool:
        return self.active_to is not None

    def as_dict(self) -> dict[str, object]:
        return {
            "address": self.address, "member": self.member_id, "meter_point": self.meter_point,
            "role": self.role, "active_from": self.active_from, "active_to": self.active_to,
            "revoked": self.revoked, "revoked_reason": self.revoked_reason,
        }


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_id(kind: str, value: str) -> str:
    if not _ID.match(value):
        raise RegistryError(
            f"{kind} id {value!r} must be 1-64 characters: letters, digits, '_', '.', ':', '-'"
        )
    return value


def add_member(conn: Connection, member_id: str, name: str, now_ms: int | None = None) -> Member:
    _check_id("member", member_id)
    if not name.strip():
        raise RegistryError("member name must not be empty")
    if conn.execute(sa.select(members.c.id).where(members.c.id == member_id)).first():
        raise RegistryError(f"member {member_id!r} already exists")
    m = Member(member_id, name.strip(), now_ms if now_ms is not None else _now_ms())
    conn.execute(members.insert().values(id=m.id, name=m.name, created_at=m.created_at))
    return m


def list_members(conn: Connection) -> list[Member]:
    rows = conn.execute(sa.select(members).order_by(members.c.id)).all()
    return [Member(r.id, r.name, r.created_at) for r in rows]


def normalise_address(address: str) -> str:
    try:
        return to_checksum_address(address)
    except (ValueError, TypeError):
        raise RegistryError(f"{address!r} is not an Ethereum address (0x + 40 hex)") from None


def enrol_gateway(
    conn: Connection,
    address: str,
    member_id: str,
    meter_point: str,
    role: str,
    active_from_ms: int | None = None,
) -> Gateway:
    """Enrol a gateway; its meter point is created for the member if new."""
    address = normalise_address(address)
    _check_id("meter point", meter_point)
    if role not in ROLES:
        raise RegistryError(f"role {role!r} must be one of: {', '.join(ROLES)}")
    if not conn.execute(sa.select(members.c.id).where(members.c.id == member_id)).first():
        raise RegistryError(f"no member {member_id!r}: add it first with `quartier members add`")
    existing = conn.execute(sa.select(gateways).where(gateways.c.address == address)).first()
    if existing:
        state = "revoked" if existing.active_to is not None else "enrolled"
        raise RegistryError(f"gateway {address} is already {state} (meter point {existing.meter_point})")
    now = active_from_ms if active_from_ms is not None else _now_ms()
    mp = conn.execute(sa.select(meter_points).where(meter_points.c.id == meter_point)).first()
    if mp is None:
        conn.execute(meter_points.insert().values(id=meter_point, member_id=member_id, created_at=now))
    elif mp.member_id != member_id:
        raise RegistryError(f"meter point {meter_point!r} belongs to member {mp.member_id!r}")
    gw = Gateway(address, member_id, meter_point, role, now, None, None)
    conn.execute(gateways.insert().values(
        address=address, member_id=member_id, meter_point=meter_point, role=role,
        active_from=now, active_to=None, revoked_reason=None))
    return gw


def revoke_gateway(conn: Connection, address: str, reason: str = "", now_ms: int | None = None) -> Gateway:
    address = normalise_address(address)
    gw = get_gateway(conn, address)
    if gw is None:
        raise RegistryError(f"no gateway {address} is enrolled")
    if gw.revoked:
        raise RegistryError(f"gateway {address} was already revoked at {gw.active_to}")
    now = now_ms if now_ms is not None else _now_ms()
    conn.execute(gateways.update().where(gateways.c.address == address)
                 .values(active_to=now, revoked_reason=reason or "revoked"))
    return get_gateway(conn, address)  # type: ignore[return-value]


def _gateway(row: sa.Row) -> Gateway:
    return Gateway(row.address, row.member_id, row.meter_point, row.role, row.active_from,
                   row.active_to, row.revoked_reason)


def get_gateway(conn: Connection, address: str) -> Gateway | None:
    row = conn.execute(sa.select(gateways).where(gateways.c.address == address)).first()
    return _gateway(row) if row else None


def list_gateways(conn: Connection) -> list[Gateway]:
    return [_gateway(r) for r in conn.execute(sa.select(gateways).order_by(gateways.c.address))]


def gateways_at(conn: Connection, meter_point: str) -> list[Gateway]:
    rows = conn.execute(sa.select(gateways).where(gateways.c.meter_point == meter_point)
                        .order_by(gateways.c.active_from))
    return [_gateway(r) for r in rows]
