"""Energy bought in hours or goods as one Exchange trade: the seller's signed offer (at
publication), the buyer's signed take, both legs in one transaction at the reference rate;
refusals change nothing on chain or in SQL; a signed offer is taken once. On the
in-process EVM, through the JSON API, and once on anvil."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from community import registry
from community.app import exchange_trades, services
from community.app import tables as t
from community.app.i18n import translate
from community.app.relay import Relayer, provision_member
from community.chain.client import ChainClient, LedgerRevert
from community.chain.suite import Suite, deploy_suite
from community.custody import Custody
from community.db import open_db

MEMBERS = ("alice", "bob", "carol")
MAX = 2**64 - 1


@pytest.fixture(scope="module")
def ledger() -> Iterator[tuple[ChainClient, Suite]]:
    chain = ChainClient()
    chain.deploy("exchange-trades-test")
    suite = deploy_suite(chain)
    yield chain, suite


@dataclass
class World:
    engine: sa.Engine
    chain: ChainClient
    exchange: Any
    relayer: Relayer
    addresses: dict[str, str]

    def balances(self, member: str) -> dict[str, int]:
        return {u: self.chain.balance(u, self.addresses[member]) for u in ("KWH", "HOUR", "KG")}

    def sql_balances(self, member: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {u: services.balance_of(conn, member, u) for u in ("KWH", "HOUR", "KG")}


def make_world(tmp_path: Path, chain: ChainClient, suite: Suite) -> World:
    engine = open_db(f"sqlite:///{tmp_path}/q.sqlite")
    services.init_app_tables(engine)
    custody = Custody.from_file(tmp_path / "kek")
    addresses = {}
    with engine.begin() as conn:
        for m in MEMBERS:
            registry.add_member(conn, m, m.title())
            addresses[m] = provision_member(conn, custody, m, chain)
        exchange_trades.sync_rates(conn, suite.exchange)
    return World(engine, chain, suite.exchange, Relayer(chain, custody, exchange=suite.exchange), addresses)


@pytest.fixture
def world(tmp_path: Path, ledger: tuple[ChainClient, Suite]) -> World:
    return make_world(tmp_path, *ledger)


def _publish(w: World, seller: str, wh: int) -> int:
    with w.engine.begin() as conn:
        return services.create_offer(conn, seller, "energy", "Surplus from my roof", wh, 0, relayer=w.relayer)


def _take(w: World, buyer: str, offer: int, wh: int, pay: str) -> dict[str, Any]:
    with w.engine.begin() as conn:
        return services.take_offer(conn, buyer, offer, wh, pay, 0, relayer=w.relayer)


def _refused(w: World, buyer: str, offer: int, wh: int, pay: str, lang: str = "fr") -> str:
    with pytest.raises(services.ServiceError) as err:
        _take(w, buyer, offer, wh, pay)
    return translate(lang, err.value.code, **err.value.params)


def _snapshot(w: World) -> tuple[Any, ...]:
    with w.engine.connect() as conn:
        sql = (conn.execute(sa.select(sa.func.count()).select_from(t.entries)).scalar_one(),
               conn.execute(sa.select(sa.func.count()).select_from(t.trades)).scalar_one(),
               list(conn.execute(sa.select(t.offers.c.id, t.offers.c.quantity, t.offers.c.status))))
    return sql, {m: w.balances(m) for m in MEMBERS}


def test_the_app_rates_become_the_exchange_rates(world: World) -> None:
    # 1 h = 100 kWh, 1 kg = 10 kWh (app_rates): in base units 100 (0.01 h) = 100,000 Wh.
    assert world.exchange.rate("HOUR", "KWH") == (100, 100_000)
    assert world.exchange.rate("KG", "KWH") == (1_000, 10_000)
    with world.engine.begin() as conn:
        assert exchange_trades.sync_rates(conn, world.exchange) == []  # already agree


def test_a_purchase_moves_both_legs_in_one_transaction(world: World) -> None:
    w = world
    offer = _publish(w, "carol", 5_000)
    with w.engine.connect() as conn:
        signed = exchange_trades.signed_offers(conn, offer)
    assert set(signed) == {"HOUR", "KG"} and len({r.nonce for r in signed.values()}) == 1
    trade = _take(w, "alice", offer, 5_000, "HOUR")
    assert trade["status"] == "settled" and trade["pay_amount"] == 5  # 5 kWh for 0.05 h
    assert w.balances("alice") == {"KWH": 5_000, "HOUR": -5, "KG": 0}
    assert w.balances("carol") == {"KWH": -5_000, "HOUR": 5, "KG": 0}
    for m in ("alice", "carol"):
        assert w.sql_balances(m) == w.balances(m)
    with w.engine.connect() as conn:
        rows = list(conn.execute(sa.select(t.entries).where(t.entries.c.ref == f"trade:{trade['id']}")))
    assert len(rows) == 4 and {r.unit for r in rows} == {"KWH", "HOUR"}
    (tx,) = {r.tx_hash for r in rows}
    receipt = w.chain.w3.eth.get_transaction_receipt(tx)
    assert receipt["status"] == 1 and receipt["to"] == w.exchange.address
    (ev,) = w.exchange.events(receipt, "Traded")
    assert ev["args"]["price"] == 5 and ev["args"]["amount"] == 5_000


def test_paying_in_goods(world: World) -> None:
    offer = _publish(world, "bob", 2_000)
    trade = _take(world, "carol", offer, 2_000, "KG")
    assert trade["pay_amount"] == 200  # 2 kWh for 0.2 kg
    assert world.balances("carol") == {"KWH": 2_000, "HOUR": 0, "KG": -200}
    assert world.sql_balances("bob") == world.balances("bob")


def test_a_refusal_on_chain_changes_nothing(world: World) -> None:
    w = world
    offer = _publish(w, "carol", 5_000)
    before = _snapshot(w)
    # The buyer's HOUR floor on chain is tighter than the app's: the second leg breaches
    # it, and the first (kWh to the buyer) is undone with it.
    w.chain.set_limits("HOUR", w.addresses["alice"], -3, MAX)
    try:
        msg = _refused(w, "alice", offer, 5_000, "HOUR")
    finally:
        w.chain.clear_limits("HOUR", w.addresses["alice"])
    assert "Le registre a refusé votre paiement de 0.05 h" in msg and "plancher de -0.03 h" in msg
    assert _snapshot(w) == before
    w.chain.set_limits("KWH", w.addresses["carol"], -1_000, MAX)
    try:
        msg = _refused(w, "alice", offer, 5_000, "HOUR", lang="en")
    finally:
        w.chain.clear_limits("KWH", w.addresses["carol"])
    assert "seller's energy balance would fall to -5.000 kWh, 4.000 kWh below their floor of -1.000 kWh" in msg
    assert _snapshot(w) == before
    w.chain.pause("maintenance")
    try:
        assert "Le bureau a suspendu le registre" in _refused(w, "alice", offer, 5_000, "HOUR")
    finally:
        w.chain.resume("done")
    assert _snapshot(w) == before
    _take(w, "alice", offer, 5_000, "HOUR")  # once the ledger allows it, the same offer trades
    assert w.balances("alice")["KWH"] == 5_000


def test_a_signed_offer_is_taken_once(world: World) -> None:
    w = world
    offer = _publish(w, "carol", 3_000)
    _take(w, "alice", offer, 3_000, "HOUR")
    with pytest.raises(services.ServiceError) as closed:
        _take(w, "bob", offer, 3_000, "KG")
    assert closed.value.code == "err.offer"
    with w.engine.connect() as conn:
        signed = exchange_trades.signed_offers(conn, offer)
    # The same offer signed for goods shares the nonce: used too, on chain.
    kg = signed["KG"]
    ex = w.exchange.offer(kg.maker, "KWH", kg.amount, "KG", nonce=kg.nonce, deadline=kg.deadline)
    assert w.exchange.is_used(kg.maker, kg.nonce)
    with w.engine.begin() as conn:
        key = w.relayer.custody.unlock(conn, "bob")
    deadline = w.exchange.deadline(600)
    with pytest.raises(LedgerRevert) as used:
        w.exchange.take(ex, bytes.fromhex(kg.signature[2:]), w.addresses["bob"], deadline,
                        w.exchange.sign_take(key, w.addresses["bob"], ex, deadline))
    assert used.value.name == "OfferAlreadyUsed"
    # Were the app's offer reopened, the relayer still could not replay the signature.
    with w.engine.begin() as conn:
        conn.execute(t.offers.update().where(t.offers.c.id == offer).values(quantity=3_000, status="open"))
    before = _snapshot(w)
    msg = _refused(w, "bob", offer, 3_000, "HOUR", lang="en")
    assert msg == ("This offer of 3.000 kWh was already taken or withdrawn on the ledger: "
                   "your payment of 0.03 h was not made.")
    assert _snapshot(w) == before


def test_lots_units_and_rates_are_checked_before_signing(world: World) -> None:
    w = world
    offer = _publish(w, "carol", 5_000)
    before = _snapshot(w)
    assert _refused(w, "alice", offer, 1_000, "HOUR", lang="en") == (
        "This energy is sold on the ledger as one lot of 5.000 kWh: buy the whole lot.")
    # The exchange's rate moved without the app's: refused with both prices.
    w.exchange.set_rate("HOUR", "KWH", 100, 50_000)
    try:
        msg = _refused(w, "alice", offer, 5_000, "HOUR", lang="en")
    finally:
        with w.engine.begin() as conn:
            assert len(exchange_trades.sync_rates(conn, w.exchange)) == 1
    assert msg == ("The ledger prices 5.000 kWh at 0.10 h, the app at 0.05 h: the board must align the "
                   "community rates; nothing was paid.")
    odd = _publish(w, "carol", 500)  # 0.5 kWh is half a base unit of HOUR
    assert "nombre entier" in _refused(w, "alice", odd, 500, "HOUR")
    assert _snapshot(w)[1] == before[1]
    _take(w, "alice", odd, 500, "KG")  # 50 g: whole in goods
    assert w.balances("alice")["KG"] == -50


def test_without_an_exchange_the_kwh_leg_stays_in_sql(world: World) -> None:
    w = world
    plain = Relayer(w.chain, w.relayer.custody)
    with w.engine.begin() as conn:
        offer = services.create_offer(conn, "carol", "energy", "Surplus", 20_000, 0, relayer=plain)
        assert exchange_trades.signed_offers(conn, offer) == {}
        services.take_offer(conn, "alice", offer, 5_000, "HOUR", 0, relayer=plain)
    assert w.balances("alice") == {"KWH": 0, "HOUR": -5, "KG": 0}
    assert w.sql_balances("alice")["KWH"] == 5_000


def test_through_the_api(tmp_path: Path) -> None:
    from tests.app.accounts_world import make_world as accounts_world

    w = accounts_world(tmp_path, with_chain=True)
    with w.engine.begin() as conn:
        exchange_trades.sync_rates(conn, w.suite.exchange)  # type: ignore[union-attr]
    bob, alice = w.client("bob"), w.client("alice")
    r = bob.post("/api/offers", json={"kind": "energy", "description": "Roof surplus", "quantity": 10_000})
    assert r.status_code == 201, r.text
    offer = r.json()["id"]
    r = alice.post(f"/api/offers/{offer}/take", json={"quantity": 4_000, "pay_unit": "HOUR"})
    assert r.status_code == 400 and "one lot of 10.000 kWh" in r.text
    r = alice.post(f"/api/offers/{offer}/take", json={"quantity": 10_000, "pay_unit": "HOUR"})
    assert r.status_code == 200, r.text
    assert w.chain.balance("KWH", w.address("alice")) == 10_000  # type: ignore[union-attr]
    assert w.chain.balance("HOUR", w.address("bob")) == 10  # type: ignore[union-attr]


def test_a_purchase_on_anvil(tmp_path: Path) -> None:
    from community.chain import devnet

    node = devnet.start()
    try:
        chain = ChainClient(node.url, devnet.DEV_KEY)
        chain.deploy("exchange-anvil")
        w = make_world(tmp_path, chain, deploy_suite(chain))
        offer = _publish(w, "carol", 5_000)
        trade = _take(w, "alice", offer, 5_000, "HOUR")
        assert w.balances("alice") == {"KWH": 5_000, "HOUR": -5, "KG": 0} == w.sql_balances("alice")
        with w.engine.connect() as conn:
            (tx,) = {r.tx_hash for r in conn.execute(
                sa.select(t.entries).where(t.entries.c.ref == f"trade:{trade['id']}"))}
        assert chain.w3.eth.get_transaction_receipt(tx)["status"] == 1
        assert _refused(w, "bob", offer, 5_000, "HOUR", lang="en").startswith("This offer")
    finally:
        node.stop()
