"""Energy bought in hours or goods as one trade on the Exchange contract: both legs or none.

The seller consents when publishing: their custody key signs an Exchange `Offer` for the
whole quantity, once per payment unit the exchange prices (hours, goods), all with the
same nonce, so whichever is taken first uses the nonce and the others can no longer be.
The buyer consents when taking: their key signs the `Take`, and the relayer submits
`take`, which moves the kWh to the buyer and the price to the seller at the exchange's
reference rate in one transaction. An Exchange offer has a fixed amount, so an energy
offer signed this way is sold as one lot (docs/app.md, "Energy on the exchange").

The app's rates (`app_rates`) and the exchange's must agree: `sync_rates` sets the
exchange's from the app's (a board action while the relayer's key holds the exchange's
governor role), and a take whose on-chain price differs from the app's is refused
before anything is signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from community.app import tables as t
from community.app.fmt import unit_scale
from community.app.services import ServiceError, Unit, price_in, units
from community.custody import CustodyError, SelfCustody

ENERGY = "KWH"
# An offer without an expiry date is signed for this long (the market's default listing).
DEFAULT_TTL_S = 30 * 86_400
# The buyer's `Take` only has to outlive its own transaction.
TAKE_TTL_S = 600


@dataclass(frozen=True)
class ExchangeTrade:
    tx_hash: str
    price: int


def exchange_of(relayer: Any) -> Any | None:
    """The relayer's exchange client (`community.chain.exchange.ExchangeClient`), if any."""
    return getattr(relayer, "exchange", None) if relayer is not None else None


def rate_from_app(us: dict[str, Unit], pay: str) -> tuple[int, int]:
    """(pay base units, KWH base units) of equal value at the app's reference rates:
    one display unit of `pay` against its worth in Wh."""
    kwh = us[ENERGY]
    wh = us[pay].wh_per_unit * unit_scale(ENERGY)
    if wh % kwh.wh_per_unit:
        raise ServiceError("err.exchange_rate_whole", "unit", unit=pay)
    return unit_scale(pay), wh // kwh.wh_per_unit


def sync_rates(conn: sa.Connection, exchange: Any, pay_units: tuple[str, ...] = ("HOUR", "KG")) -> list[str]:
    """Sets the exchange's rates between energy and each of `pay_units` from `app_rates`;
    returns the transactions (none when they already agree)."""
    us = units(conn)
    txs = []
    for pay in pay_units:
        if pay not in us:
            continue
        base, quote = rate_from_app(us, pay)
        current = exchange.rate(pay, ENERGY)
        if current[0] * quote != current[1] * base or current == (0, 0):
            txs.append(exchange.set_rate(pay, ENERGY, base, quote))
    return txs


def signed_offers(conn: sa.Connection, offer_id: int) -> dict[str, Any]:
    rows = conn.execute(sa.select(t.exchange_offers).where(t.exchange_offers.c.offer_id == offer_id))
    return {r.pay_unit: r for r in rows}


def sign_energy_offer(conn: sa.Connection, relayer: Any, offer_id: int, now: int) -> list[str]:
    """Signs, with the seller's custody key, Exchange offers for the whole quantity of
    energy offer `offer_id`, one per payment unit the exchange has a rate for; stores them.
    Returns the payment units signed (none without an exchange)."""
    exchange = exchange_of(relayer)
    offer = conn.execute(sa.select(t.offers).where(t.offers.c.id == offer_id)).first()
    if exchange is None or offer is None or offer.kind != "energy":
        return []
    from community.app.relay import ledger_address
    from community.chain.client import ChainError
    from community.chain.parts import random_nonce

    seller = offer.member_id
    maker = ledger_address(conn, seller)
    held = relayer.custody.get(conn, seller)
    if maker is None or held is None or held.address != maker:
        return []  # no ledger account, or a key the member keeps: sold in the journal only
    try:
        pay_units = [u for u in relayer.units if exchange.rate(ENERGY, u) != (0, 0)]
        if not pay_units:
            return []
        key = relayer.custody.unlock(conn, seller)
        ttl = (int(offer.expires_at) - now) if offer.expires_at is not None else DEFAULT_TTL_S
        deadline = exchange.deadline(max(ttl, 1))
        nonce = random_nonce()
        rows = []
        for pay in pay_units:
            ex = exchange.offer(maker, ENERGY, int(offer.quantity), pay, nonce=nonce, deadline=deadline)
            rows.append({"offer_id": offer_id, "pay_unit": pay, "maker": maker, "amount": int(offer.quantity),
                         "nonce": nonce, "deadline": deadline,
                         "signature": "0x" + exchange.sign_offer(key, ex).hex()})
        del key
    except SelfCustody:
        return []
    except (ChainError, CustodyError) as exc:
        raise ServiceError("err.chain", "quantity", amount=_shown(ENERGY, int(offer.quantity)), unit=ENERGY,
                           reason=str(exc)) from None
    conn.execute(t.exchange_offers.insert(), rows)
    return pay_units


def take_on_exchange(conn: sa.Connection, relayer: Any, offer: Any, buyer: str, quantity: int,
                     pay_unit: str) -> ExchangeTrade:
    """The buyer's signed take of the seller's signed offer, relayed: refusals raise a
    `ServiceError` with the amounts before anything is journalled."""
    from community.chain.client import ChainError, LedgerRevert

    exchange = exchange_of(relayer)
    assert exchange is not None
    signed = signed_offers(conn, int(offer.id)).get(pay_unit)
    lot = _shown(ENERGY, int(offer.quantity))
    if signed is None:
        raise ServiceError("err.exchange_unit", "pay_unit", unit=pay_unit,
                           units=", ".join(signed_offers(conn, int(offer.id))))
    if quantity != int(signed.amount):
        raise ServiceError("err.exchange_lot", "quantity", lot=_shown(ENERGY, int(signed.amount)))
    us = units(conn)
    app_price = price_in(quantity, us[ENERGY], us[pay_unit])
    taker = relayer._address(conn, buyer, app_price, pay_unit)
    held = relayer.custody.get(conn, buyer)
    if held is None or held.address != taker:
        raise ServiceError("err.no_custody_key", "amount", member=buyer, amount=_shown(pay_unit, app_price),
                           unit=pay_unit)
    amount = _shown(pay_unit, app_price)
    try:
        try:
            chain_price = exchange.quote(ENERGY, quantity, pay_unit)
        except LedgerRevert as exc:
            raise _exchange_refusal(exc, quantity, pay_unit, app_price) from None
        if chain_price != app_price:
            raise ServiceError("err.exchange_rate", "pay_unit", lot=lot, chain=_shown(pay_unit, chain_price),
                               app=amount)
        ex = exchange.offer(signed.maker, ENERGY, int(signed.amount), pay_unit, nonce=int(signed.nonce),
                            deadline=int(signed.deadline))
        try:
            key = relayer.custody.unlock(conn, buyer)
        except SelfCustody:
            raise ServiceError("err.self_custody", "amount", amount=amount, unit=pay_unit) from None
        deadline = exchange.deadline(TAKE_TTL_S)
        take_sig = exchange.sign_take(key, taker, ex, deadline)
        del key
        maker_sig = bytes.fromhex(str(signed.signature).removeprefix("0x"))
        traded = exchange.take(ex, maker_sig, taker, deadline, take_sig)
    except LedgerRevert as exc:
        raise _exchange_refusal(exc, quantity, pay_unit, app_price, seller=str(signed.maker),
                                exchange=exchange) from None
    except (ChainError, CustodyError) as exc:
        raise ServiceError("err.chain", "amount", amount=amount, unit=pay_unit, reason=str(exc)) from None
    return ExchangeTrade(traded.tx_hash, traded.price)


def _exchange_refusal(exc: Any, quantity: int, pay_unit: str, price: int, *, seller: str | None = None,
                      exchange: Any = None) -> ServiceError:
    """A member-facing error for an exchange refusal; ledger refusals (floor, ceiling,
    pause, freeze) reuse the payment messages (`relay.refusal`)."""
    from community.app.relay import refusal
    from quartier.hashing import to_checksum_address

    a = exc.args_by_name
    amount, lot = _shown(pay_unit, price), _shown(ENERGY, quantity)
    if exc.name == "OfferAlreadyUsed":
        return ServiceError("err.exchange_used", "offer", lot=lot, amount=amount)
    if exc.name == "IntentExpired":
        return ServiceError("err.exchange_expired", "offer", lot=lot, amount=amount)
    if exc.name == "InexactTrade":
        return ServiceError("err.exchange_inexact", "quantity", lot=lot, unit=pay_unit)
    if exc.name == "NoRate":
        return ServiceError("err.exchange_norate", "pay_unit", unit=pay_unit)
    if exc.name == "BelowFloor" and seller is not None and \
            to_checksum_address(str(a["account"])) == to_checksum_address(seller):
        after, floor = int(a["balanceAfter"]), int(a["floor"])
        return ServiceError("err.exchange_seller_floor", "quantity", lot=lot, after=_shown(ENERGY, after),
                            floor=_shown(ENERGY, floor), short=_shown(ENERGY, floor - after))
    if exc.name == "AboveCeiling" and exchange is not None and \
            int(a["unit"]) == exchange.client.unit_id(ENERGY):
        return refusal(exc, ENERGY, quantity)
    return refusal(exc, pay_unit, price)


def _shown(unit: str, base: int) -> str:
    from community.app.fmt import Formatter

    return Formatter("en").amount(unit, base).replace("\u00a0", " ")
