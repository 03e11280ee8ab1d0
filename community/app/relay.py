"""Members' payments on the ledger: signed with the member's custody key, relayed.

A payment in a unit the ledger moves for members (hours, goods) becomes an EIP-712
payment intent (`community.chain.intents.Payment`) signed with the payer's key, opened
from custody only for this signature, during the request of the member who just
authenticated; the community's relayer (`ChainClient.relay_payment`) submits it and pays
the gas. The contract checks the signature, the nonce and the deadline, so the relayer can
neither forge nor replay a payment. A refusal on chain comes back as a `ServiceError`
naming the rule and the amounts.

Members' ledger addresses are the ones settlement uses (`settle_accounts`); the custody
address is linked there when a member is provisioned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from community.app.services import ServiceError
from community.custody import Custody, CustodyError, SelfCustody
from quartier.hashing import to_checksum_address

# Units whose member-to-member payments are relayed. Energy is credited on chain only by
# settlement (its credits need gateway claims); between members it moves as the kWh leg
# of an Exchange trade when the app has the exchange (community.app.exchange_trades),
# else it is journalled in SQL (docs/app.md).
RELAYED_UNITS = ("HOUR", "KG")


@dataclass(frozen=True)
class Relayed:
    """A payment as relayed: the intent, its signature and the transaction."""

    payment: Any  # community.chain.intents.Payment
    signature: bytes
    tx_hash: str


def ledger_address(conn: sa.Connection, member_id: str) -> str | None:
    from community.settlement.run import accounts_of

    return accounts_of(conn, [member_id]).get(member_id)


def provision_member(conn: sa.Connection, custody: Custody, member_id: str, chain: Any | None = None,
                     now: int | None = None) -> str:
    """A new member's ledger account: a server-held key (unless they have one), linked in
    `settle_accounts` when no other address is, and registered on the ledger if given."""
    from community.settlement.run import link_account

    address = custody.ensure(conn, member_id, now)
    if ledger_address(conn, member_id) is None:
        link_account(conn, member_id, address)
    if chain is not None and not chain.is_member(address):
        chain.register_member(address)
    return address


class Relayer:
    """The app's side of relayed payments: custody signs, the chain client submits."""

    def __init__(self, chain: Any, custody: Custody, units: tuple[str, ...] = RELAYED_UNITS,
                 exchange: Any = None, orders: Any = None) -> None:
        self.chain = chain
        self.custody = custody
        self.units = units
        # The Exchange contract's client: energy bought in these units is one trade on it
        # (community.app.exchange_trades); without, the kWh leg is journalled in SQL.
        self.exchange = exchange
        # The StandingOrders contract's client: a standing donation is signed there by its
        # donor, and settlement executes it on chain; without, it lives in SQL only.
        self.orders = orders

    def relays(self, unit: str) -> bool:
        return unit in self.units

    def _address(self, conn: sa.Connection, member_id: str, amount: int, unit: str) -> str:
        address = ledger_address(conn, member_id)
        if address is None:
            raise ServiceError("err.no_ledger_account", "amount", member=member_id, amount=_shown(unit, amount),
                               unit=unit)
        return address

    def pay(self, conn: sa.Connection, payer: str, payee: str, unit: str, amount: int) -> Relayed:
        from community.chain.client import ChainError, LedgerRevert

        sender = self._address(conn, payer, amount, unit)
        to = self._address(conn, payee, amount, unit)
        held = self.custody.get(conn, payer)
        if held is None or held.address != sender:
            raise ServiceError("err.no_custody_key", "amount", member=payer, amount=_shown(unit, amount),
                               unit=unit)
        try:
            payment = self.chain.payment(sender, to, unit, amount)
            try:
                key = self.custody.unlock(conn, payer)
            except SelfCustody:
                raise ServiceError("err.self_custody", "amount", amount=_shown(unit, amount),
                                   unit=unit) from None
            signature = self.chain.sign_payment(key, payment)
            del key
            tx_hash = self.chain.relay_payment(payment, signature)
        except LedgerRevert as exc:
            raise refusal(exc, unit, amount) from None
        except (ChainError, CustodyError) as exc:
            raise ServiceError("err.chain", "amount", amount=_shown(unit, amount), unit=unit,
                               reason=str(exc)) from None
        return Relayed(payment, signature, tx_hash)


    def _order_key(self, conn: sa.Connection, member_id: str, field: str) -> tuple[str, Any]:
        address = ledger_address(conn, member_id)
        held = self.custody.get(conn, member_id)
        if address is None or held is None or held.address != address:
            raise ServiceError("err.order_no_key", field, member=member_id)
        try:
            return address, self.custody.unlock(conn, member_id)
        except SelfCustody:
            raise ServiceError("err.order_self_custody", field) from None

    def set_order(self, conn: sa.Connection, donor: str, beneficiary: str, wh: int, share_bp: int) -> int:
        """Signs the donor's standing order with their custody key and relays it; the id on chain."""
        from community.chain.client import ChainError, LedgerRevert

        to = ledger_address(conn, beneficiary)
        if to is None:
            raise ServiceError("err.unknown_member", "beneficiary", value=beneficiary)
        address, key = self._order_key(conn, donor, "amount")
        try:
            intent = self.orders.sign_set(key, address, to, wh=wh, share_bp=share_bp)
            del key
            return int(self.orders.set(intent))
        except (LedgerRevert, ChainError, CustodyError) as exc:
            raise ServiceError("err.order_chain", "amount", reason=str(exc)) from None

    def cancel_order(self, conn: sa.Connection, donor: str, order_id: int) -> str:
        from community.chain.client import ChainError, LedgerRevert

        address, key = self._order_key(conn, donor, "order")
        try:
            intent = self.orders.sign_cancel(key, address, order_id)
            del key
            return str(self.orders.cancel(intent))
        except (LedgerRevert, ChainError, CustodyError) as exc:
            raise ServiceError("err.order_chain", "order", reason=str(exc)) from None


    def sync_orders(self, conn: sa.Connection, member_id: str, now: int) -> None:
        """Brings the app's rows of `member_id`'s standing orders (given and received) in
        line with the ledger, which settlement follows: an order signed outside the app
        (`quartier wallet sign-order`, or one whose row a crash lost after the relay) is
        added, one cancelled on chain is ended."""
        from community.app import tables as t
        from community.settlement.run import members_by_account

        address = ledger_address(conn, member_id)
        if self.orders is None or address is None:
            return
        on_chain = {x.id: x for x in self.orders.active() if address in (x.donor, x.beneficiary)}
        o = t.donation_orders
        rows = conn.execute(sa.select(o.c.id, o.c.chain_order).where(
            o.c.active.is_(True), o.c.chain_order.is_not(None),
            sa.or_(o.c.donor == member_id, o.c.beneficiary == member_id))).all()
        for row in rows:
            if row.chain_order not in on_chain:
                conn.execute(o.update().where(o.c.id == row.id).values(active=False, ended_at=now))
        known = set(conn.execute(sa.select(o.c.chain_order).where(o.c.chain_order.is_not(None))).scalars())
        linked = members_by_account(conn)
        for oid, x in sorted(on_chain.items()):
            donor, beneficiary = linked.get(x.donor), linked.get(x.beneficiary)
            if oid in known or donor is None or beneficiary is None:
                continue
            conn.execute(o.insert().values(donor=donor, beneficiary=beneficiary, wh_per_day=x.wh,
                                           share_bp=x.share_bp, active=True, created_at=now,
                                           chain_order=oid))


def _shown(unit: str, base: int) -> str:
    from community.app.fmt import Formatter

    return Formatter("en").amount(unit, base).replace("\u00a0", " ")


def refusal(exc: Any, unit: str, amount: int) -> ServiceError:
    """The member-facing error for a ledger refusal (`LedgerRevert`), with the amounts
    (shown in display units: 1.00 h, not 100 base units)."""
    a = exc.args_by_name
    paid = _shown(unit, amount)
    if exc.name == "BelowFloor":
        after, floor = int(a["balanceAfter"]), int(a["floor"])
        return ServiceError("err.chain_floor", "amount", unit=unit, amount=paid, after=_shown(unit, after),
                            floor=_shown(unit, floor), short=_shown(unit, floor - after))
    if exc.name == "AboveCeiling":
        after, ceiling = int(a["balanceAfter"]), int(a["ceiling"])
        return ServiceError("err.chain_ceiling", "amount", unit=unit, amount=paid, after=_shown(unit, after),
                            ceiling=_shown(unit, ceiling), over=_shown(unit, after - ceiling))
    if exc.name == "LedgerPaused":
        return ServiceError("err.chain_paused", "amount", unit=unit, amount=paid)
    if exc.name == "AccountFrozen":
        return ServiceError("err.chain_frozen", "amount", unit=unit, amount=paid, account=to_checksum_address(str(a["account"])))
    return ServiceError("err.chain", "amount", unit=unit, amount=paid, reason=str(exc))


def relayer_of(settings: Any) -> Relayer | None:
    """The app's relayer when it has both a ledger client and custody, else None (SQL only)."""
    chain = getattr(settings, "chain", None)
    custody = getattr(settings, "custody", None)
    if chain is None or custody is None:
        return None
    suite = getattr(settings, "suite", None)
    return Relayer(chain, custody, exchange=suite.exchange if suite is not None else None,
                   orders=getattr(suite, "orders", None) if suite is not None else None)


def provision_new_member(conn: sa.Connection, settings: Any, member_id: str) -> str | None:
    """At a member's creation in the app: their ledger key and account, when the app keeps
    members' keys (`settings.custody`); registered on the ledger when it has one."""
    custody = getattr(settings, "custody", None)
    if custody is None:
        return None
    from community.chain.client import ChainError
    from community.registry import RegistryError

    try:
        return provision_member(conn, custody, member_id, getattr(settings, "chain", None))
    except (ChainError, CustodyError) as exc:
        raise RegistryError(f"member {member_id!r}: ledger account not created: {exc}") from None
