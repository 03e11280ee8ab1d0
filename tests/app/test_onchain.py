"""Members' payments on the ledger: signed with the custody key, relayed, journalled with
their transaction; refusals on chain come back with the amounts; the relayer can neither
forge nor replay. On the in-process EVM, and once on anvil."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from coincurve import PrivateKey
from fastapi.testclient import TestClient

from community import registry
from community.app import AppSettings, create_app, services
from community.app import tables as t
from community.app.i18n import translate
from community.app.relay import Relayer, provision_member, relayer_of
from community.chain.client import ChainClient, LedgerRevert
from community.chain.intents import Payment
from community.custody import Custody
from community.db import open_db

MEMBERS = ("alice", "bob", "carol")


@pytest.fixture(scope="module")
def chain() -> ChainClient:
    client = ChainClient()
    client.deploy("onchain-test")
    return client


@dataclass
class World:
    url: str
    engine: sa.Engine
    custody: Custody
    chain: ChainClient
    relayer: Relayer
    addresses: dict[str, str]


def make_world(tmp_path: Path, chain: ChainClient) -> World:
    url = f"sqlite:///{tmp_path}/q.sqlite"
    engine = open_db(url)
    services.init_app_tables(engine)
    custody = Custody.from_file(tmp_path / "kek")
    addresses = {}
    with engine.begin() as conn:
        for m in MEMBERS:
            registry.add_member(conn, m, m.title())
            addresses[m] = provision_member(conn, custody, m, chain)
    return World(url, engine, custody, chain, Relayer(chain, custody), addresses)


@pytest.fixture
def world(tmp_path: Path, chain: ChainClient) -> World:
    return make_world(tmp_path, chain)


def _entries(conn: sa.Connection, ref: str) -> list[Any]:
    return list(conn.execute(sa.select(t.entries).where(t.entries.c.ref == ref).order_by(t.entries.c.id)))


def _service_paid_by(w: World, buyer: str, seller: str, hours: int, relayer: Relayer | None) -> dict[str, Any]:
    with w.engine.begin() as conn:
        offer = services.create_offer(conn, seller, "hours", "Bike repair", hours, 0)
        trade = services.take_offer(conn, buyer, offer, hours, "HOUR", 0, relayer=relayer)
        assert trade["status"] == "awaiting"
        return services.confirm_trade(conn, buyer, int(trade["id"]), 1, relayer=relayer)  # type: ignore[call-overload]


def test_a_confirmed_service_is_paid_on_chain_and_journalled_with_its_tx(world: World) -> None:
    w = world
    trade = _service_paid_by(w, "alice", "bob", 150, w.relayer)
    assert trade["status"] == "settled"
    assert w.chain.balance("HOUR", w.addresses["alice"]) == -150
    assert w.chain.balance("HOUR", w.addresses["bob"]) == 150
    with w.engine.connect() as conn:
        rows = _entries(conn, f"trade:{trade['id']}")
        statement = services.statement(conn, "bob")
    assert [(r.account, r.amount) for r in rows] == [("alice", -150), ("bob", 150)]
    tx = rows[0].tx_hash
    assert tx and rows[1].tx_hash == tx and statement[0]["tx_hash"] == tx
    receipt = w.chain.w3.eth.get_transaction_receipt(tx)
    assert receipt["status"] == 1
    # The relayer paid the gas: the members hold no coin at all.
    assert w.chain.w3.eth.get_transaction(tx)["from"] == w.chain.address
    assert w.chain.w3.eth.get_balance(w.addresses["alice"]) == 0


def test_energy_bought_with_hours_pays_on_chain_and_keeps_the_kwh_leg_in_sql(world: World) -> None:
    w = world
    with w.engine.begin() as conn:
        offer = services.create_offer(conn, "carol", "energy", "Surplus", 20_000, 0)
        trade = services.take_offer(conn, "alice", offer, 5_000, "HOUR", 0, relayer=w.relayer)
        rows = _entries(conn, f"trade:{trade['id']}")
    assert trade["status"] == "settled" and trade["pay_amount"] == 5
    hour = [r for r in rows if r.unit == "HOUR"]
    kwh = [r for r in rows if r.unit == "KWH"]
    assert all(r.tx_hash for r in hour) and all(r.tx_hash is None for r in kwh)
    assert w.chain.balance("HOUR", w.addresses["carol"]) == 5
    assert w.chain.balance("KWH", w.addresses["alice"]) == 0  # energy reaches the ledger by settlement


def test_goods_are_paid_on_chain_in_kg(world: World) -> None:
    w = world
    with w.engine.begin() as conn:
        offer = services.create_offer(conn, "bob", "goods", "Tomatoes", 2_000, 0)
        trade = services.take_offer(conn, "carol", offer, 2_000, "KG", 0, relayer=w.relayer)
        services.confirm_trade(conn, "carol", int(trade["id"]), 1, relayer=w.relayer)  # type: ignore[call-overload]
    assert w.chain.balance("KG", w.addresses["bob"]) == 2_000
    assert w.chain.balance("KG", w.addresses["carol"]) == -2_000


def test_without_a_relayer_everything_stays_in_sql(world: World) -> None:
    w = world
    trade = _service_paid_by(w, "alice", "bob", 100, None)
    with w.engine.connect() as conn:
        rows = _entries(conn, f"trade:{trade['id']}")
        assert services.balance_of(conn, "bob", "HOUR") == 100
    assert all(r.tx_hash is None for r in rows)
    assert w.chain.balance("HOUR", w.addresses["bob"]) == 0
    # A ledger client alone (to verify certificates) relays nothing: custody signs.
    assert relayer_of(AppSettings(database_url=w.url, chain=w.chain)) is None
    assert relayer_of(AppSettings(database_url=w.url, chain=w.chain, custody=w.custody)) is not None


def _refused(w: World, buyer: str, seller: str, hours: int) -> tuple[services.ServiceError, int]:
    with w.engine.begin() as conn:
        offer = services.create_offer(conn, seller, "hours", "Gardening", hours, 0)
        trade = services.take_offer(conn, buyer, offer, hours, "HOUR", 0)
    with pytest.raises(services.ServiceError) as info, w.engine.begin() as conn:
        services.confirm_trade(conn, buyer, int(trade["id"]), 1, relayer=w.relayer)  # type: ignore[call-overload]
    with w.engine.connect() as conn:  # nothing was journalled; the trade still awaits
        assert _entries(conn, f"trade:{trade['id']}") == []
        assert services.trade(conn, int(trade["id"]))["status"] == "awaiting"  # type: ignore[call-overload]
    return info.value, int(trade["id"])  # type: ignore[call-overload]


def test_a_floor_on_chain_refuses_with_the_amounts(world: World) -> None:
    w = world
    w.chain.set_limits("HOUR", w.addresses["alice"], -50, 2**63 - 1)
    err, _ = _refused(w, "alice", "bob", 150)
    assert err.code == "err.chain_floor"
    text = translate("en", err.code, **err.params)
    assert text == ("The ledger refused your payment of 1.50 h: your balance would fall to -1.50 h, "
                    "1.00 h below your floor of -0.50 h.")
    assert translate("fr", err.code, **err.params) == (
        "Le registre a refusé votre paiement de 1.50 h : votre solde tomberait à -1.50 h, "
        "1.00 h sous votre plancher de -0.50 h.")


def test_a_ceiling_on_chain_refuses_with_the_amounts(world: World) -> None:
    w = world
    w.chain.set_limits("HOUR", w.addresses["bob"], -2_000, 100)
    err, _ = _refused(w, "alice", "bob", 150)
    assert err.code == "err.chain_ceiling"
    assert translate("en", err.code, **err.params) == (
        "The ledger refused the payment of 1.50 h: the payee's balance would reach 1.50 h, "
        "0.50 h above their ceiling of 1.00 h.")


def test_a_paused_ledger_and_a_frozen_account_refuse_clearly(world: World) -> None:
    w = world
    w.chain.pause("storm")
    try:
        err, _ = _refused(w, "alice", "bob", 25)
    finally:
        w.chain.resume("storm over")
    assert translate("en", err.code, **err.params) == (
        "The board has paused the ledger: your payment of 0.25 h was not made.")
    w.chain.freeze(w.addresses["alice"], "lost phone")
    try:
        err, _ = _refused(w, "alice", "bob", 25)
    finally:
        w.chain.unfreeze(w.addresses["alice"], "found")
    assert translate("en", err.code, **err.params) == (
        f"Account {w.addresses['alice']} is frozen: your payment of 0.25 h was not made.")


def test_the_relayer_can_neither_forge_nor_replay(world: World) -> None:
    """End to end: a payment the app relayed, then what a dishonest relayer would try with
    it. The contract refuses each; the balances move once."""
    w = world
    alice, bob = w.addresses["alice"], w.addresses["bob"]
    with w.engine.begin() as conn:
        relayed = w.relayer.pay(conn, "alice", "bob", "HOUR", 40)
    p, sig = relayed.payment, relayed.signature

    with pytest.raises(LedgerRevert) as replay:
        w.chain.relay_payment(p, sig)
    assert replay.value.name == "BadNonce"
    assert replay.value.args_by_name["expected"] == p.nonce + 1

    # Alice's genuine signature of her next payment, which the relayer alters.
    with w.engine.connect() as conn:
        key = w.custody.unlock(conn, "alice")
    fresh = w.chain.payment(alice, bob, "HOUR", 40)
    genuine = w.chain.sign_payment(key, fresh)
    for forged in (Payment(alice, bob, fresh.unit, 4_000, fresh.nonce, fresh.deadline),  # more
                   Payment(alice, w.chain.address, fresh.unit, 40, fresh.nonce, fresh.deadline)):  # to itself
        with pytest.raises(LedgerRevert) as bad:
            w.chain.relay_payment(forged, genuine)
        assert bad.value.name == "BadIntentSignature"
    # Signed with a key the relayer holds (its own), for alice's account.
    with pytest.raises(LedgerRevert) as own_key:
        w.chain.relay_payment(fresh, w.chain.sign_payment(PrivateKey(), fresh))
    assert own_key.value.name == "BadIntentSignature"
    # A genuine signature whose deadline has passed.
    now = int(w.chain.w3.eth.get_block("latest")["timestamp"])
    expired = Payment(alice, bob, fresh.unit, 40, fresh.nonce, now - 1)
    with pytest.raises(LedgerRevert) as late:
        w.chain.relay_payment(expired, w.chain.sign_payment(key, expired))
    assert late.value.name == "IntentExpired"

    assert w.chain.balance("HOUR", alice) == -40 and w.chain.balance("HOUR", bob) == 40


def test_self_custody_members_sign_with_their_wallet(world: World, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from community.wallet_cli import payment_from_json
    from quartier.cli import app as root_cli

    w = world
    runner = CliRunner()
    key_file = tmp_path / "dora.key"
    dora = runner.invoke(root_cli, ["wallet", "new", "--out", str(key_file)]).output.strip()
    with w.engine.begin() as conn:
        registry.add_member(conn, "dora", "Dora")
    assert runner.invoke(root_cli, ["wallet", "register", "--member", "dora", "--address", dora,
                                    "--database-url", w.url]).exit_code == 0
    w.chain.register_member(dora)
    with pytest.raises(services.ServiceError) as info, w.engine.begin() as conn:
        w.relayer.pay(conn, "dora", "bob", "HOUR", 30)
    assert translate("en", info.value.code, **info.value.params) == (
        "You keep your own key: sign this payment of 0.30 h with your wallet.")

    now = int(w.chain.w3.eth.get_block("latest")["timestamp"])
    signed = runner.invoke(root_cli, [
        "wallet", "sign-payment", "--key", str(key_file), "--to", w.addresses["bob"], "--unit", "HOUR",
        "--amount", "30", "--ledger", w.chain.ledger_address, "--chain-id", str(w.chain.chain_id),
        "--nonce", str(w.chain.nonce_of("HOUR", dora)), "--deadline", str(now + 600)])
    assert signed.exit_code == 0, signed.output
    payment, signature = payment_from_json(json.loads(signed.output))
    w.chain.relay_payment(payment, signature)  # type: ignore[arg-type]
    assert w.chain.balance("HOUR", dora) == -30


def test_keys_are_never_logged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    w = world
    caplog.set_level(logging.DEBUG)
    _service_paid_by(w, "carol", "alice", 10, w.relayer)
    with w.engine.connect() as conn:
        secret = w.custody.unlock(conn, "carol").secret
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert secret.hex() not in logged and str(int.from_bytes(secret, "big")) not in logged


# --- through the app's API -----------------------------------------------------------------


@pytest.fixture
def api(world: World) -> Iterator[tuple[TestClient, World]]:
    from community.app import sessions

    with world.engine.begin() as conn:
        sessions.ensure_member_accounts(conn, "pw-onchain-1", now=0, board=("carol",))
    app = create_app(AppSettings(database_url=world.url, community="onchain-test", chain=world.chain,
                                 custody=world.custody))
    with TestClient(app) as client:
        yield client, world


def _token(client: TestClient, user: str) -> dict[str, str]:
    r = client.post("/api/login", json={"username": user, "password": "pw-onchain-1"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_the_api_pays_on_chain_and_refusals_say_by_how_much(api: tuple[TestClient, World]) -> None:
    client, w = api
    alice, bob = _token(client, "alice"), _token(client, "bob")
    offer = client.post("/api/offers", json={"kind": "hours", "description": "Tutoring", "quantity": 200},
                        headers=bob)
    assert offer.status_code in (200, 201), offer.text
    taken = client.post(f"/api/offers/{offer.json()['id']}/take", json={"quantity": 100, "pay_unit": "HOUR"},
                        headers=alice)
    assert taken.status_code == 200, taken.text
    done = client.post(f"/api/trades/{taken.json()['id']}/confirm", headers=alice)
    assert done.status_code == 200, done.text
    statement = client.get("/api/me/statement", headers=alice).json()
    rows = statement if isinstance(statement, list) else statement.get("entries", statement.get("rows"))
    assert rows[0]["tx_hash"] and rows[0]["amount"] == -100
    assert w.chain.balance("HOUR", w.addresses["bob"]) == 100

    w.chain.set_limits("HOUR", w.addresses["alice"], -120, 2**63 - 1)
    second = client.post(f"/api/offers/{offer.json()['id']}/take", json={"quantity": 100, "pay_unit": "HOUR"},
                         headers=alice)
    refused = client.post(f"/api/trades/{second.json()['id']}/confirm",
                          headers={**alice, "Accept-Language": "en"})
    assert refused.status_code == 400
    assert refused.json()["detail"] == ("The ledger refused your payment of 1.00 h: your balance would fall "
                                        "to -2.00 h, 0.80 h below your floor of -1.20 h.")
    assert refused.json()["code"] == "err.chain_floor"


def test_a_member_added_by_the_board_gets_a_custody_key_linked_and_registered(
        api: tuple[TestClient, World]) -> None:
    from community.settlement.run import accounts_of

    client, w = api
    made = client.post("/api/board/members", json={"id": "eve", "name": "Eve"}, headers=_token(client, "carol"))
    assert made.status_code == 201, made.text
    with w.engine.connect() as conn:
        address = w.custody.address(conn, "eve")
        assert address is not None and accounts_of(conn, ["eve"]) == {"eve": address}
    assert w.chain.is_member(address)


# --- on a real node -------------------------------------------------------------------------


def test_payments_on_anvil(tmp_path: Path) -> None:
    from community.chain import devnet

    node = devnet.start()
    try:
        chain = ChainClient(node.url, devnet.DEV_KEY)
        chain.deploy("onchain-anvil")
        w = make_world(tmp_path, chain)
        trade = _service_paid_by(w, "alice", "bob", 125, w.relayer)
        with w.engine.connect() as conn:
            rows = _entries(conn, f"trade:{trade['id']}")
        assert chain.w3.eth.get_transaction_receipt(rows[0].tx_hash)["status"] == 1
        assert chain.balance("HOUR", w.addresses["bob"]) == 125
        with w.engine.begin() as conn:
            relayed = w.relayer.pay(conn, "bob", "alice", "HOUR", 25)
        with pytest.raises(LedgerRevert) as replay:
            chain.relay_payment(relayed.payment, relayed.signature)
        assert replay.value.name == "BadNonce"
        assert chain.balance("HOUR", w.addresses["alice"]) == -100
    finally:
        node.stop()
