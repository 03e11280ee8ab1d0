"""What the pages and the API ask of the community's data, in one place.

Read side: members, meter points and gateways come from the registry; energy per member
and interval is computed from the stored readings with the shared interval code
(`quartier.intervals`) and allocated with the settlement's reference allocation, so the
app shows the same Wh that settlement credits. Write side: the app's own tables
(`community.app.tables`) for offers, trades, journal entries, standing orders, proposals,
votes and fund preferences. Every function takes a connection; none commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from community import db as cdb
from community.app import tables as t
from community.app.fmt import unit_scale
from community.settlement.allocation import DEFAULT_KEY, IntervalInput, allocate
from quartier.intervals import DEFAULT_STEP_S

if TYPE_CHECKING:
    from community.app.relay import Relayer
    from community.settlement.netting import StandingOrder

STEP_S = DEFAULT_STEP_S
DAY_S = 86_400
FUND = "fund"
KINDS = {"energy": "KWH", "hours": "HOUR", "goods": "KG"}
CHOICES = ("yes", "no", "abstain")
FUND_PURPOSES = ("solidarity", "panels", "roads", "pensions")
PROPOSAL_KINDS = ("rate", "floor", "demurrage", "cap", "other")
BASIS_POINTS = 10_000

# Reference rates until the community votes others (DESIGN.md: 1 HOUR = 100 KWH,
# 1 KG = 0.1 HOUR) and default floors (credit limits) per unit, the same as the ledger's
# defaults (community.chain.client.DEFAULT_UNITS).
DEFAULT_RATES = (("KWH", 1_000, -500_000), ("HOUR", 100_000, -2_000), ("KG", 10_000, -50_000))


class ServiceError(ValueError):
    """A request the data refuses; `code` picks the translated message, `params` fill it."""

    def __init__(self, code: str, field: str = "", **params: object) -> None:
        self.code = code
        self.field = field
        self.params = params
        super().__init__(f"{field}: {code} {params}" if field else f"{code} {params}")


def _new_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def init_app_tables(engine: sa.Engine) -> None:
    from community.app import account_tables  # noqa: F401  (requests, helpers, controls: same MetaData)
    from community.app.listings import add_missing_columns
    from community.custody import create_tables

    t.metadata.create_all(engine, checkfirst=True)
    add_missing_columns(engine)  # databases made before a column was added
    create_tables(engine)  # members' ledger keys (community.custody)
    with engine.begin() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(t.rates)).scalar_one() == 0:
            conn.execute(t.rates.insert(), [{"unit": u, "wh_per_unit": w, "floor": f}
                                            for u, w, f in DEFAULT_RATES])


# --- registry ---------------------------------------------------------------------------


def members(conn: sa.Connection) -> dict[str, str]:
    rows = conn.execute(sa.select(cdb.members.c.id, cdb.members.c.name).order_by(cdb.members.c.id))
    return {r.id: r.name for r in rows}


def member_name(conn: sa.Connection, member_id: str) -> str | None:
    return conn.execute(sa.select(cdb.members.c.name).where(cdb.members.c.id == member_id)).scalar()


def meter_points(conn: sa.Connection, member_id: str | None = None) -> list[dict[str, object]]:
    q = sa.select(cdb.meter_points).order_by(cdb.meter_points.c.id)
    if member_id is not None:
        q = q.where(cdb.meter_points.c.member_id == member_id)
    return [dict(r._mapping) for r in conn.execute(q)]


def gateways_with_status(conn: sa.Connection) -> list[dict[str, object]]:
    last = (sa.select(cdb.readings.c.gw, sa.func.max(cdb.readings.c.ts).label("last_ts"),
                      sa.func.count().label("n"))
            .group_by(cdb.readings.c.gw).subquery())
    q = (sa.select(cdb.gateways, last.c.last_ts, last.c.n)
         .select_from(cdb.gateways.outerjoin(last, last.c.gw == cdb.gateways.c.address))
         .order_by(cdb.gateways.c.member_id, cdb.gateways.c.address))
    out = []
    for r in conn.execute(q):
        row = dict(r._mapping)
        row["status"] = "revoked" if r.active_to is not None else ("active" if r.last_ts else "enrolled")
        row["readings"] = r.n or 0
        out.append(row)
    return out


# --- energy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberInterval:
    start: int
    produced: int
    imported: int
    exported: int
    bought_local: int  # received from neighbours
    sold_local: int  # given to neighbours

    @property
    def self_consumed(self) -> int:
        return max(self.produced - self.exported, 0)

    @property
    def consumed(self) -> int:
        return self.imported + self.self_consumed

    @property
    def from_grid(self) -> int:
        return self.imported - self.bought_local

    @property
    def to_grid(self) -> int:
        return self.exported - self.sold_local

    def as_dict(self) -> dict[str, int]:
        return {"start": self.start, "produced_wh": self.produced, "consumed_wh": self.consumed,
                "self_consumed_wh": self.self_consumed, "bought_local_wh": self.bought_local,
                "sold_local_wh": self.sold_local, "from_grid_wh": self.from_grid,
                "to_grid_wh": self.to_grid, "imported_wh": self.imported, "exported_wh": self.exported}


def latest_reading_s(conn: sa.Connection) -> int | None:
    ts = conn.execute(sa.select(sa.func.max(cdb.readings.c.ts))).scalar()
    return None if ts is None else int(ts) // 1000


def _meter_points_by_member(conn: sa.Connection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in conn.execute(sa.select(cdb.meter_points.c.id, cdb.meter_points.c.member_id)
                          .order_by(cdb.meter_points.c.id)):
        out.setdefault(r.member_id, []).append(r.id)
    return out


def energy_intervals(conn: sa.Connection, start_s: int, end_s: int,
                     key: str = DEFAULT_KEY) -> dict[str, list[MemberInterval]]:
    """Every member's energy per 15-minute interval of [start_s, end_s), aligned to the
    interval grid (ingest's interval energy of each meter point), with the local
    allocation of each interval (settlement's reference allocation)."""
    from community.ingest.store import meter_point_intervals

    start_s -= start_s % STEP_S
    end_s += -end_s % STEP_S
    if end_s <= start_s:
        end_s = start_s + STEP_S
    n = (end_s - start_s) // STEP_S
    totals: dict[str, list[list[int]]] = {}
    for member, points in _meter_points_by_member(conn).items():
        acc = totals.setdefault(member, [[0, 0, 0] for _ in range(n)])
        for mp in points:
            for k, iv in enumerate(meter_point_intervals(conn, mp, start_s, end_s, STEP_S)):
                acc[k][0] += iv.produced_wh
                acc[k][1] += iv.imported_wh
                acc[k][2] += iv.exported_wh
    out: dict[str, list[MemberInterval]] = {m: [] for m in totals}
    for k in range(n):
        start = start_s + k * STEP_S
        producers = {m: v[k][2] for m, v in totals.items() if v[k][2] > 0}
        consumers = {m: v[k][1] for m, v in totals.items() if v[k][1] > 0}
        alloc = allocate(IntervalInput(start, producers, consumers), key)
        for m, v in totals.items():
            out[m].append(MemberInterval(start, v[k][0], v[k][1], v[k][2],
                                         alloc.received.get(m, 0), alloc.given.get(m, 0)))
    return out


@dataclass(frozen=True)
class Totals:
    produced: int = 0
    consumed: int = 0
    self_consumed: int = 0
    bought_local: int = 0
    sold_local: int = 0
    from_grid: int = 0
    to_grid: int = 0

    @property
    def self_sufficiency(self) -> float | None:
        """Share of consumption met by local production (own roof and neighbours')."""
        if self.consumed <= 0:
            return None
        return (self.self_consumed + self.bought_local) / self.consumed

    def as_dict(self) -> dict[str, object]:
        return {"produced_wh": self.produced, "consumed_wh": self.consumed,
                "self_consumed_wh": self.self_consumed, "bought_local_wh": self.bought_local,
                "sold_local_wh": self.sold_local, "from_grid_wh": self.from_grid,
                "to_grid_wh": self.to_grid, "self_sufficiency": self.self_sufficiency}


def total(intervals: Iterable[MemberInterval]) -> Totals:
    p = c = s = b = so = fg = tg = 0
    for iv in intervals:
        p += iv.produced
        c += iv.consumed
        s += iv.self_consumed
        b += iv.bought_local
        so += iv.sold_local
        fg += iv.from_grid
        tg += iv.to_grid
    return Totals(p, c, s, b, so, fg, tg)


def neighbourhood_series(per_member: dict[str, list[MemberInterval]]) -> list[MemberInterval]:
    """The neighbourhood as one meter, interval by interval."""
    columns = list(zip(*per_member.values(), strict=True)) if per_member else []
    out = []
    for col in columns:
        out.append(MemberInterval(col[0].start, sum(i.produced for i in col),
                                  sum(i.imported for i in col), sum(i.exported for i in col),
                                  sum(i.bought_local for i in col), sum(i.sold_local for i in col)))
    return out


@dataclass(frozen=True)
class Neighbourhood:
    as_of: int | None  # end of the latest interval with data, Unix s
    production_w: int  # average power over the latest complete interval
    consumption_w: int
    today: Totals
    series: list[MemberInterval] = field(default_factory=list)  # the chart's 24 h
    members: int = 0


def neighbourhood(conn: sa.Connection, hours: int = 24) -> Neighbourhood:
    """Live figures from SQL. "Now" is the latest reading stored, so a replayed or
    simulated day reads as it would have live."""
    count = conn.execute(sa.select(sa.func.count()).select_from(cdb.members)).scalar_one()
    latest = latest_reading_s(conn)
    if latest is None:
        return Neighbourhood(None, 0, 0, Totals(), [], count)
    end = latest - latest % STEP_S  # the latest complete interval ends here
    if end <= latest - STEP_S or end == 0:
        end = latest
    start = end - hours * 3600
    per_member = energy_intervals(conn, start, end)
    series = neighbourhood_series(per_member)
    day_start = end - end % DAY_S if end % DAY_S else end - DAY_S
    today = total(iv for iv in series if iv.start >= day_start)
    last = series[-1] if series else None
    per_hour = 3600 // STEP_S
    return Neighbourhood(end, last.produced * per_hour if last else 0,
                         last.consumed * per_hour if last else 0, today, series, count)


def member_days(intervals: Sequence[MemberInterval]) -> list[tuple[int, Totals]]:
    days: dict[int, list[MemberInterval]] = {}
    for iv in intervals:
        days.setdefault(iv.start - iv.start % DAY_S, []).append(iv)
    return [(d, total(ivs)) for d, ivs in sorted(days.items())]


# --- units, balances, statements ----------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    code: str
    wh_per_unit: int  # Wh one display unit (1 kWh, 1 h, 1 kg) is worth
    floor: int  # base units


def units(conn: sa.Connection) -> dict[str, Unit]:
    rows = conn.execute(sa.select(t.rates))
    order = {code: i for i, (code, _, _) in enumerate(DEFAULT_RATES)}
    found = sorted(rows, key=lambda r: (order.get(r.unit, len(order)), r.unit))
    return {r.unit: Unit(r.unit, r.wh_per_unit, r.floor) for r in found}


def price_in(quantity: int, unit: Unit, pay: Unit) -> int:
    """Base units of `pay` worth `quantity` base units of `unit` at the reference rates,
    rounded up so a buyer never pays less than the value."""
    num = quantity * unit.wh_per_unit * unit_scale(pay.code)
    den = unit_scale(unit.code) * pay.wh_per_unit
    return -(-num // den)


@dataclass(frozen=True)
class Balance:
    unit: str
    balance: int
    floor: int

    @property
    def available(self) -> int:
        return self.balance - self.floor


def _settlement_tables() -> tuple[sa.Table, sa.Table] | None:
    try:
        from community.settlement import schema
    except ImportError:
        return None
    return schema.settle_movements, schema.settle_periods


def _sums(conn: sa.Connection, account: str, unit: str | None = None) -> dict[str, int]:
    """Balance per unit: movements of settled periods plus the app's journal."""
    out: dict[str, int] = {}
    q = (sa.select(t.entries.c.unit, sa.func.sum(t.entries.c.amount))
         .where(t.entries.c.account == account).group_by(t.entries.c.unit))
    if unit is not None:
        q = q.where(t.entries.c.unit == unit)
    queries = [q]
    st = _settlement_tables()
    if st is not None:
        mv, periods = st
        q2 = (sa.select(mv.c.unit, sa.func.sum(mv.c.amount))
              .join(periods, periods.c.period_start == mv.c.period_start)
              .where(mv.c.account == account, periods.c.status == "settled").group_by(mv.c.unit))
        if unit is not None:
            q2 = q2.where(mv.c.unit == unit)
        queries.append(q2)
    for query in queries:
        for u, amount in conn.execute(query):
            out[u] = out.get(u, 0) + int(amount or 0)
    return out


def balances(conn: sa.Connection, account: str) -> list[Balance]:
    sums = _sums(conn, account)
    return [Balance(u.code, sums.get(u.code, 0), u.floor) for u in units(conn).values()]


def balance_of(conn: sa.Connection, account: str, unit: str) -> int:
    return _sums(conn, account, unit).get(unit, 0)


def statement(conn: sa.Connection, account: str, limit: int = 500) -> list[dict[str, object]]:
    """Every movement of an account, newest first, with its reason and its transaction:
    settlement's (allocation, export, donation, demurrage: the period's batch) and the
    app's (trades)."""
    rows: list[dict[str, object]] = []
    q = (sa.select(t.entries).where(t.entries.c.account == account)
         .order_by(t.entries.c.ts.desc(), t.entries.c.id.desc()).limit(limit))
    for r in conn.execute(q):
        row = dict(r._mapping)
        row["source"] = "app"
        rows.append(row)
    st = _settlement_tables()
    if st is not None:
        mv, periods = st
        q2 = (sa.select(mv, periods.c.period_end, periods.c.tx_hash, periods.c.status)
              .join(periods, periods.c.period_start == mv.c.period_start)
              .where(mv.c.account == account, periods.c.status == "settled")
              .order_by(mv.c.period_start.desc(), mv.c.id.desc()).limit(limit))
        for r in conn.execute(q2):
            rows.append({"id": f"s{r.id}", "ts": int(r.period_end or r.period_start), "account": r.account,
                         "unit": r.unit, "amount": int(r.amount), "reason": r.reason,
                         "counterparty": r.counterparty or None, "ref": f"period:{r.period_start}",
                         "memo": None, "tx_hash": r.tx_hash, "acted_by": None,
                         "source": "settlement"})
    rows.sort(key=lambda x: (int(x["ts"]), str(x["id"])), reverse=True)  # type: ignore[call-overload]
    return rows[:limit]


def _check_floor(conn: sa.Connection, account: str, unit: Unit, debit: int) -> None:
    if account == FUND:
        return
    after = balance_of(conn, account, unit.code) - debit
    if after < unit.floor:
        raise ServiceError("err.floor", "amount", unit=unit.code, after=after, floor=unit.floor)


def _transfer(conn: sa.Connection, *, ts: int, payer: str, payee: str, unit: str, amount: int,
              reason: str, ref: str, memo: str | None = None, acted_by: str | None = None,
              relayer: Relayer | None = None) -> None:
    """Journals a payment, one row per leg. With a relayer for this unit the payment is
    first signed with the payer's custody key and relayed to the ledger (refusals raise
    before anything is written), and both rows carry its transaction."""
    from community.app.controls import guard_transfer

    relayed = relayer is not None and relayer.relays(unit)
    guard_transfer(conn, payer, payee, unit, amount, relayed=relayed)  # pause, freeze, ceilings
    tx_hash = relayer.pay(conn, payer, payee, unit, amount).tx_hash if relayer is not None and relayed else None
    rows = [
        {"ts": ts, "account": payer, "unit": unit, "amount": -amount, "reason": reason,
         "counterparty": payee, "ref": ref, "memo": memo, "acted_by": acted_by, "tx_hash": tx_hash},
        {"ts": ts, "account": payee, "unit": unit, "amount": amount, "reason": reason,
         "counterparty": payer, "ref": ref, "memo": memo, "acted_by": acted_by, "tx_hash": tx_hash},
    ]
    conn.execute(t.entries.insert(), rows)


def _journal(conn: sa.Connection, *, ts: int, payer: str, payee: str, unit: str, amount: int, ref: str,
             tx_hash: str) -> None:
    """Both rows of one leg of a trade already made on chain (an Exchange trade)."""
    conn.execute(t.entries.insert(), [
        {"ts": ts, "account": payer, "unit": unit, "amount": -amount, "reason": "trade",
         "counterparty": payee, "ref": ref, "tx_hash": tx_hash},
        {"ts": ts, "account": payee, "unit": unit, "amount": amount, "reason": "trade",
         "counterparty": payer, "ref": ref, "tx_hash": tx_hash},
    ])


# --- market -------------------------------------------------------------------------------


def offers(conn: sa.Connection, *, open_only: bool = True) -> list[dict[str, object]]:
    q = sa.select(t.offers).order_by(t.offers.c.created_at.desc(), t.offers.c.id.desc())
    if open_only:
        q = q.where(t.offers.c.status == "open", t.offers.c.quantity > 0)
    return [dict(r._mapping) for r in conn.execute(q)]


def create_offer(conn: sa.Connection, member_id: str, kind: str, description: str,
                 quantity: int, now: int, *, relayer: Relayer | None = None,
                 category: str | None = None, days: int | None = None) -> int:
    """An offer (checked and stored by `listings.publish`: category, expiry); with a
    relayer that has an exchange, an energy offer is also signed for the Exchange
    contract with the seller's key (`exchange_trades.sign_energy_offer`)."""
    from community.app import listings  # listings builds on this module

    offer_id = listings.publish(conn, member_id, want=False, kind=kind, description=description,
                                quantity=quantity, now=now, category=category, days=days)
    if relayer is not None:
        from community.app.exchange_trades import sign_energy_offer

        sign_energy_offer(conn, relayer, offer_id, now)
    return offer_id


def take_offer(conn: sa.Connection, buyer: str, offer_id: int, quantity: int, pay_unit: str,
               now: int, *, relayer: Relayer | None = None) -> dict[str, object]:
    """Energy settles at once as one two-leg trade (payment to the seller, kWh to the
    buyer); a service or goods waits for the buyer to confirm receipt, then pays. With a
    relayer, a payment in hours or goods is made on the ledger; when the relayer has an
    exchange and the seller signed the offer for it, both legs are one Exchange trade
    (`exchange_trades`), else the kWh leg stays in the journal."""
    offer = conn.execute(sa.select(t.offers).where(t.offers.c.id == offer_id)).first()
    if offer is None or offer.status != "open" or offer.kind == "want" or (
            offer.expires_at is not None and offer.expires_at <= now):  # expired: off the market
        raise ServiceError("err.offer", "offer")
    if offer.member_id == buyer:
        raise ServiceError("err.self", "offer")
    if quantity <= 0:
        raise ServiceError("err.positive", "quantity")
    if quantity > offer.quantity:
        raise ServiceError("err.offer", "quantity")
    all_units = units(conn)
    if pay_unit not in all_units:
        raise ServiceError("err.choice", "pay_unit", choices=", ".join(all_units))
    unit, pay = all_units[offer.unit], all_units[pay_unit]
    amount = price_in(quantity, unit, pay)
    energy = offer.kind == "energy"
    _check_floor(conn, buyer, pay, amount)
    if energy:
        _check_floor(conn, offer.member_id, unit, quantity)
    on_exchange = None
    if energy and relayer is not None and relayer.relays(pay_unit):
        from community.app import exchange_trades

        if exchange_trades.exchange_of(relayer) is not None and exchange_trades.signed_offers(conn, offer.id):
            from community.app.controls import guard_transfer

            guard_transfer(conn, buyer, offer.member_id, pay_unit, amount, relayed=True)
            guard_transfer(conn, offer.member_id, buyer, offer.unit, quantity, relayed=True)
            # On chain first: a refusal raises before anything is journalled.
            on_exchange = exchange_trades.take_on_exchange(conn, relayer, offer, buyer, quantity, pay_unit)
    trade_id = _new_id(conn.execute(t.trades.insert().values(
        offer_id=offer.id, buyer=buyer, seller=offer.member_id, unit=offer.unit,
        quantity=quantity, pay_unit=pay_unit, pay_amount=amount, description=offer.description,
        status="settled" if energy else "awaiting", created_at=now,
        confirmed_at=now if energy else None)))
    left = offer.quantity - quantity
    conn.execute(t.offers.update().where(t.offers.c.id == offer.id)
                 .values(quantity=left, status="open" if left > 0 else "closed"))
    if on_exchange is not None:
        ref = f"trade:{trade_id}"
        _journal(conn, ts=now, payer=buyer, payee=offer.member_id, unit=pay_unit, amount=amount, ref=ref,
                 tx_hash=on_exchange.tx_hash)
        _journal(conn, ts=now, payer=offer.member_id, payee=buyer, unit=offer.unit, amount=quantity, ref=ref,
                 tx_hash=on_exchange.tx_hash)
    elif energy:
        ref = f"trade:{trade_id}"
        _transfer(conn, ts=now, payer=buyer, payee=offer.member_id, unit=pay_unit, amount=amount,
                  reason="trade", ref=ref, relayer=relayer)
        _transfer(conn, ts=now, payer=offer.member_id, payee=buyer, unit=offer.unit,
                  amount=quantity, reason="trade", ref=ref)
    return trade(conn, trade_id)


def trade(conn: sa.Connection, trade_id: int) -> dict[str, object]:
    row = conn.execute(sa.select(t.trades).where(t.trades.c.id == trade_id)).first()
    if row is None:
        raise ServiceError("common.not_found", "trade")
    return dict(row._mapping)


def confirm_trade(conn: sa.Connection, buyer: str, trade_id: int, now: int, *,
                  relayer: Relayer | None = None) -> dict[str, object]:
    row = trade(conn, trade_id)
    if row["buyer"] != buyer or row["status"] != "awaiting":
        raise ServiceError("err.offer", "trade")
    pay = units(conn)[str(row["pay_unit"])]
    _check_floor(conn, buyer, pay, int(row["pay_amount"]))  # type: ignore[call-overload]
    _transfer(conn, ts=now, payer=buyer, payee=str(row["seller"]), unit=pay.code,
              amount=int(row["pay_amount"]), reason="trade", ref=f"trade:{trade_id}",  # type: ignore[call-overload]
              relayer=relayer)
    conn.execute(t.trades.update().where(t.trades.c.id == trade_id)
                 .values(status="settled", confirmed_at=now))
    return trade(conn, trade_id)


def trades_of(conn: sa.Connection, member_id: str) -> list[dict[str, object]]:
    q = (sa.select(t.trades).where(sa.or_(t.trades.c.buyer == member_id, t.trades.c.seller == member_id))
         .order_by(t.trades.c.created_at.desc(), t.trades.c.id.desc()))
    return [dict(r._mapping) for r in conn.execute(q)]


# --- donations ----------------------------------------------------------------------------


def donation_orders(conn: sa.Connection, member_id: str) -> dict[str, list[dict[str, object]]]:
    o = t.donation_orders
    given = conn.execute(sa.select(o).where(o.c.donor == member_id, o.c.active.is_(True))
                         .order_by(o.c.id)).all()
    received = conn.execute(sa.select(o).where(o.c.beneficiary == member_id, o.c.active.is_(True))
                            .order_by(o.c.id)).all()
    return {"given": [dict(r._mapping) for r in given],
            "received": [dict(r._mapping) for r in received]}


def _check_order(conn: sa.Connection, donor: str, beneficiary: str, wh_per_day: int,
                 share_bp: int) -> None:
    if beneficiary == donor:
        raise ServiceError("err.self", "beneficiary")
    if member_name(conn, beneficiary) is None:
        raise ServiceError("err.unknown_member", "beneficiary", value=beneficiary)
    if (wh_per_day > 0) == (share_bp > 0) or wh_per_day < 0:
        raise ServiceError("err.positive", "amount")
    if not 0 <= share_bp <= BASIS_POINTS:
        raise ServiceError("err.percent", "amount")


@dataclass(frozen=True)
class DonationEffect:
    beneficiary: str
    per_day_wh: int
    per_month_wh: int
    basis_days: int  # days of history the estimate used


def preview_donation(conn: sa.Connection, donor: str, beneficiary: str, *, wh_per_day: int = 0,
                     share_bp: int = 0, days: int = 7) -> DonationEffect:
    """What an order would give, from the donor's export over the last `days` days."""
    _check_order(conn, donor, beneficiary, wh_per_day, share_bp)
    if wh_per_day:
        return DonationEffect(beneficiary, wh_per_day, wh_per_day * 30, 0)
    latest = latest_reading_s(conn)
    if latest is None:
        return DonationEffect(beneficiary, 0, 0, 0)
    per_member = energy_intervals(conn, latest - days * DAY_S, latest)
    mine = per_member.get(donor, [])
    covered = {iv.start - iv.start % DAY_S for iv in mine if iv.produced or iv.imported}
    n_days = max(1, len(covered))
    exported = sum(iv.exported for iv in mine)
    per_day = exported * share_bp // BASIS_POINTS // n_days
    return DonationEffect(beneficiary, per_day, per_day * 30, len(covered))


def create_donation(conn: sa.Connection, donor: str, beneficiary: str, *, wh_per_day: int = 0,
                    share_bp: int = 0, now: int, relayer: Relayer | None = None) -> int:
    """Saves a standing order. With a relayer that has the standing orders contract, the
    donor's key signs it there first (settlement executes only orders on chain)."""
    _check_order(conn, donor, beneficiary, wh_per_day, share_bp)
    chain_order = None
    if relayer is not None and relayer.orders is not None:
        chain_order = relayer.set_order(conn, donor, beneficiary, wh_per_day, share_bp)
    return _new_id(conn.execute(t.donation_orders.insert().values(
        donor=donor, beneficiary=beneficiary, wh_per_day=wh_per_day, share_bp=share_bp,
        active=True, created_at=now, chain_order=chain_order)))


def cancel_donation(conn: sa.Connection, donor: str, order_id: int, now: int, *,
                    relayer: Relayer | None = None) -> None:
    o = t.donation_orders
    row = conn.execute(sa.select(o.c.chain_order).where(
        o.c.id == order_id, o.c.donor == donor, o.c.active.is_(True))).first()
    if row is None:
        raise ServiceError("common.not_found", "order")
    if row.chain_order is not None:
        if relayer is None or relayer.orders is None:
            raise ServiceError("err.order_chain", "order", reason="the ledger is not reachable from the app")
        relayer.cancel_order(conn, donor, int(row.chain_order))
    conn.execute(o.update().where(o.c.id == order_id).values(active=False, ended_at=now))


def standing_orders(conn: sa.Connection) -> list[StandingOrder]:
    """Active orders, for netting (with their id on chain, when they have one)."""
    from community.settlement.netting import StandingOrder

    o = t.donation_orders
    rows = conn.execute(sa.select(o).where(o.c.active.is_(True)).order_by(o.c.id))
    return [StandingOrder(r.donor, r.beneficiary, wh=0 if r.share_bp else r.wh_per_day,
                          share_bp=r.share_bp, order_id=r.chain_order or 0) for r in rows]


# --- votes --------------------------------------------------------------------------------


def proposals(conn: sa.Connection, member_id: str | None, now: int) -> list[dict[str, object]]:
    tallies: dict[int, dict[str, int]] = {}
    for r in conn.execute(sa.select(t.votes.c.proposal_id, t.votes.c.choice, sa.func.count())
                          .group_by(t.votes.c.proposal_id, t.votes.c.choice)):
        tallies.setdefault(r[0], dict.fromkeys(CHOICES, 0))[r[1]] = r[2]
    mine: dict[int, str] = {}
    if member_id:
        mine = dict(conn.execute(sa.select(t.votes.c.proposal_id, t.votes.c.choice)
                                 .where(t.votes.c.member_id == member_id)).all())
    out = []
    for r in conn.execute(sa.select(t.proposals).order_by(t.proposals.c.closes_at, t.proposals.c.id)):
        row = dict(r._mapping)
        tally = tallies.get(r.id, dict.fromkeys(CHOICES, 0))
        row["tally"] = tally
        row["open"] = r.closes_at > now
        row["my_vote"] = mine.get(r.id)
        cast = tally["yes"] + tally["no"]
        row["outcome"] = None if row["open"] else ("adopted" if cast and tally["yes"] > tally["no"] else "rejected")
        out.append(row)
    return out


def create_proposal(conn: sa.Connection, creator: str, title: str, kind: str, *, subject: str | None,
                    value: str | None, closes_at: int, now: int) -> int:
    title = title.strip()
    if not title:
        raise ServiceError("err.required", "title")
    if len(title) > 200:
        raise ServiceError("err.too_long", "title", max=200)
    if kind not in PROPOSAL_KINDS:
        raise ServiceError("err.choice", "kind", choices=", ".join(PROPOSAL_KINDS))
    if closes_at <= now:
        raise ServiceError("err.positive", "days")
    return _new_id(conn.execute(t.proposals.insert().values(
        title=title, kind=kind, subject=subject or None, value=value or None, created_by=creator,
        created_at=now, closes_at=closes_at)))


def cast_vote(conn: sa.Connection, member_id: str, proposal_id: int, choice: str, now: int) -> None:
    if choice not in CHOICES:
        raise ServiceError("err.choice", "choice", choices=", ".join(CHOICES))
    p = conn.execute(sa.select(t.proposals).where(t.proposals.c.id == proposal_id)).first()
    if p is None:
        raise ServiceError("common.not_found", "proposal")
    if p.closes_at <= now:
        raise ServiceError("err.offer", "proposal")
    existing = conn.execute(sa.select(t.votes.c.choice).where(
        t.votes.c.proposal_id == proposal_id, t.votes.c.member_id == member_id)).first()
    if existing:
        conn.execute(t.votes.update().where(t.votes.c.proposal_id == proposal_id,
                                            t.votes.c.member_id == member_id)
                     .values(choice=choice, ts=now))
    else:
        conn.execute(t.votes.insert().values(proposal_id=proposal_id, member_id=member_id,
                                             choice=choice, ts=now))


def parse_shares(raw: dict[str, float]) -> dict[str, int]:
    """Percentages per purpose -> basis points that sum to exactly 10000."""
    shares: dict[str, int] = {}
    for purpose in FUND_PURPOSES:
        value = raw.get(purpose, 0)
        if value < 0 or value > 100:
            raise ServiceError("err.percent", purpose)
        shares[purpose] = round(value * 100)
    total_bp = sum(shares.values())
    if total_bp != BASIS_POINTS:
        raise ServiceError("err.sum100", "shares", total=f"{total_bp / 100:g}")
    return shares


def set_fund_preference(conn: sa.Connection, member_id: str, shares_bp: dict[str, int], now: int) -> None:
    doc = json.dumps(shares_bp, sort_keys=True)
    updated = conn.execute(t.fund_preferences.update()
                           .where(t.fund_preferences.c.member_id == member_id).values(shares=doc, ts=now))
    if updated.rowcount == 0:
        conn.execute(t.fund_preferences.insert().values(member_id=member_id, shares=doc, ts=now))


def fund_preference(conn: sa.Connection, member_id: str) -> dict[str, int] | None:
    doc = conn.execute(sa.select(t.fund_preferences.c.shares)
                       .where(t.fund_preferences.c.member_id == member_id)).scalar()
    return json.loads(doc) if doc else None


def contributions(conn: sa.Connection) -> dict[str, int]:
    """What each member has paid into the fund, valued in Wh: demurrage (settlement) and
    any other movement from the member to the fund account."""
    us = units(conn)
    out: dict[str, int] = {}
    tables_: list[sa.Table] = [t.entries]
    st = _settlement_tables()
    if st is not None:
        tables_.append(st[0])
    for table in tables_:
        q = (sa.select(table.c.counterparty, table.c.unit, sa.func.sum(table.c.amount))
             .where(table.c.account == FUND, table.c.amount > 0)
             .group_by(table.c.counterparty, table.c.unit))
        for member, unit, amount in conn.execute(q):
            if member and unit in us:
                out[member] = out.get(member, 0) + int(amount) * us[unit].wh_per_unit // unit_scale(unit)
    return out


def fund_allocation(conn: sa.Connection) -> tuple[dict[str, float], int]:
    """The contribution-weighted average of members' preferences (percent per purpose)
    and how many members stated one. While nobody has contributed, every stated
    preference weighs the same."""
    prefs = {r.member_id: json.loads(r.shares) for r in conn.execute(sa.select(t.fund_preferences))}
    if not prefs:
        return dict.fromkeys(FUND_PURPOSES, 0.0), 0
    weights = contributions(conn)
    w = {m: weights.get(m, 0) for m in prefs}
    if sum(w.values()) == 0:
        w = dict.fromkeys(prefs, 1)
    total_w = sum(w.values())
    result = {p: sum(w[m] * prefs[m].get(p, 0) for m in prefs) / total_w / 100 for p in FUND_PURPOSES}
    return result, len(prefs)


# --- certificates -------------------------------------------------------------------------


def production_meter_points(conn: sa.Connection) -> list[dict[str, str]]:
    """Meter points, those with a production gateway first (only they earn certificates,
    but a consumer's meter point may start producing)."""
    g = cdb.gateways
    producing = {r.meter_point for r in conn.execute(sa.select(g.c.meter_point).where(g.c.role == "production"))}
    rows = conn.execute(sa.select(cdb.meter_points.c.id, cdb.meter_points.c.member_id)
                        .order_by(cdb.meter_points.c.id))
    points = [{"meter_point": r.id, "member_id": r.member_id} for r in rows]
    return sorted(points, key=lambda p: (p["meter_point"] not in producing, p["meter_point"]))


def settled_certificates(conn: sa.Connection, meter_point: str, start_s: int, end_s: int) -> list[dict[str, Any]]:
    """Hourly certificates of a meter point in settled periods (built by settlement)."""
    from community.settlement import run

    return run.certificates(conn, meter_point, start_s, end_s)


def chain_view(app: Any) -> Any:
    """The ledger to verify against: the one the app was given, or a read-only client
    made once from the node URL and ledger address."""
    settings = app.state.settings
    if settings.chain is not None:
        return settings.chain
    if not (settings.rpc_url and settings.ledger):
        return None
    cached = getattr(app.state, "chain", None)
    if cached is None:
        from coincurve import PrivateKey

        from community.chain.client import ChainClient

        # A throwaway key: verification only reads; the client wants one to exist.
        cached = ChainClient(settings.rpc_url, PrivateKey(), ledger=settings.ledger)
        app.state.chain = cached
    return cached
