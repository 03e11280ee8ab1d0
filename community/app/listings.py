"""The market's listings: offers and wants, with a category and an expiry.

An offer is something a member gives (energy, hours of a service, goods); a want (`kind`
"want") is something a member asks for, in hours or goods, paid in the unit the member
chose once they confirm it was done. Both carry a category and expire: a listing is on
the market while it is open, has some quantity left and has not expired. Expired
listings stay in the table (trades reference them) but nobody sees or takes them.
"""

from __future__ import annotations

import sqlalchemy as sa

from community.app import tables as t
from community.app.services import KINDS, ServiceError, price_in, trade, units

CATEGORIES = ("tutoring", "repairs", "garden", "food", "energy", "care", "transport", "other")
WANT = "want"
WANT_KINDS = ("hours", "goods")  # energy is bought from the offers, at once
DEFAULT_DAYS = 30  # a month: long enough to find a neighbour, short enough to stay current
MAX_DAYS = 365
DAY_S = 86_400


def add_missing_columns(engine: sa.Engine) -> None:
    """Add the app's nullable columns that an older database lacks (`create_all` makes
    missing tables only). Idempotent; a column added meanwhile by another process is fine."""
    with engine.begin() as conn:
        inspector = sa.inspect(conn)
        for table in t.metadata.sorted_tables:
            if not inspector.has_table(table.name):
                continue
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present or not column.nullable:
                    continue
                quote = conn.dialect.identifier_preparer.quote
                conn.execute(sa.text(
                    f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} "
                    f"{column.type.compile(dialect=conn.dialect)}"))


def listed(now: int) -> sa.ColumnElement[bool]:
    """What is on the market at `now` (Unix seconds)."""
    o = t.offers.c
    return sa.and_(o.status == "open", o.quantity > 0,
                   sa.or_(o.expires_at.is_(None), o.expires_at > now))


def market(conn: sa.Connection, now: int, *, category: str | None = None,
           wants: bool | None = None) -> list[dict[str, object]]:
    """Listings on the market, newest first; `wants` True for wants only, False for
    offers only, None for both."""
    o = t.offers.c
    q = sa.select(t.offers).where(listed(now)).order_by(o.created_at.desc(), o.id.desc())
    if category:
        q = q.where(o.category == category)
    if wants is True:
        q = q.where(o.kind == WANT)
    elif wants is False:
        q = q.where(o.kind != WANT)
    return [dict(r._mapping) for r in conn.execute(q)]


def listing(conn: sa.Connection, listing_id: int, now: int) -> dict[str, object] | None:
    """One listing if it is on the market."""
    row = conn.execute(sa.select(t.offers).where(t.offers.c.id == listing_id, listed(now))).first()
    return None if row is None else dict(row._mapping)


def check_category(category: str | None) -> str | None:
    if category in (None, ""):
        return None
    if category not in CATEGORIES:
        raise ServiceError("err.category", "category")
    return category


def check_days(days: int | None) -> int:
    if days is None:
        return DEFAULT_DAYS
    if not 1 <= days <= MAX_DAYS:
        raise ServiceError("err.days", "days")
    return days


def publish(conn: sa.Connection, member_id: str, *, want: bool, kind: str, description: str,
            quantity: int, now: int, category: str | None = None, days: int | None = None,
            pay_unit: str | None = None) -> int:
    """Publish an offer (`kind` energy, hours or goods) or a want (hours or goods, paid in
    `pay_unit`, by default the unit asked for). Expires after `days` (default 30)."""
    allowed = WANT_KINDS if want else tuple(KINDS)
    if kind not in allowed:
        raise ServiceError("err.choice", "kind", choices=", ".join(allowed))
    description = description.strip()
    if not description:
        raise ServiceError("err.required", "description")
    if len(description) > 200:
        raise ServiceError("err.too_long", "description", max=200)
    if quantity <= 0:
        raise ServiceError("err.positive", "quantity")
    category = check_category(category) or ("energy" if kind == "energy" else None)
    expires_at = now + check_days(days) * DAY_S
    unit = KINDS[kind]
    if want:
        pay_unit = pay_unit or unit
        known = units(conn)
        if pay_unit not in known:
            raise ServiceError("err.choice", "pay_unit", choices=", ".join(known))
    result = conn.execute(t.offers.insert().values(
        member_id=member_id, kind=WANT if want else kind, description=description, unit=unit,
        quantity=quantity, status="open", created_at=now, expires_at=expires_at,
        category=category, pay_unit=pay_unit if want else None))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def answer_want(conn: sa.Connection, responder: str, want_id: int, quantity: int,
                now: int) -> dict[str, object]:
    """A neighbour does (part of) what a want asks: a trade awaiting the asker's
    confirmation, who then pays at the community's reference rate (`confirm_trade`)."""
    want = listing(conn, want_id, now)
    if want is None or want["kind"] != WANT:
        raise ServiceError("err.offer", "offer")
    asker = str(want["member_id"])
    if asker == responder:
        raise ServiceError("err.self", "offer")
    left = int(want["quantity"])  # type: ignore[call-overload]
    if quantity <= 0:
        raise ServiceError("err.positive", "quantity")
    if quantity > left:
        raise ServiceError("err.offer", "quantity")
    known = units(conn)
    unit, pay_unit = str(want["unit"]), str(want["pay_unit"] or want["unit"])
    amount = price_in(quantity, known[unit], known[pay_unit])
    result = conn.execute(t.trades.insert().values(
        offer_id=want_id, buyer=asker, seller=responder, unit=unit, quantity=quantity,
        pay_unit=pay_unit, pay_amount=amount, description=want["description"], status="awaiting",
        created_at=now, confirmed_at=None))
    conn.execute(t.offers.update().where(t.offers.c.id == want_id).values(
        quantity=left - quantity, status="open" if left > quantity else "closed"))
    return trade(conn, int(result.inserted_primary_key[0]))  # type: ignore[index]


def withdraw(conn: sa.Connection, member_id: str, listing_id: int) -> None:
    """The member takes their own offer or want off the market."""
    o = t.offers.c
    done = conn.execute(t.offers.update().where(o.id == listing_id, o.member_id == member_id,
                                                 o.status == "open").values(status="closed"))
    if done.rowcount != 1:
        raise ServiceError("err.offer", "offer")
