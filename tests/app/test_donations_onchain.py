"""Standing donation orders from the app, on the ledger: the donor's custody key signs the
order on the StandingOrders contract (the relayer pays the gas), cancelling signs its
cancellation, and without the ledger the app says why it cannot."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from community.app import AppSettings, create_app
from community.app import tables as t

from .accounts_world import PASSWORD, World, make_world


def test_an_order_saved_in_the_app_is_signed_on_chain_and_cancelled_there(tmp_path: Path) -> None:
    w: World = make_world(tmp_path, with_chain=True)
    assert w.suite is not None
    orders = w.suite.orders
    alice = w.client("alice")
    r = alice.post("/api/donations", json={"beneficiary": "bob", "share_bp": 1_000})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["chain_order"] is not None
    on_chain = orders.order(out["chain_order"])
    assert (on_chain.donor, on_chain.beneficiary) == (w.address("alice"), w.address("bob"))
    assert on_chain.share_bp == 1_000 and on_chain.active

    # Shares above 100 % of one's export: refused by the contract, nothing saved.
    r = alice.post("/api/donations", json={"beneficiary": "lea", "share_bp": 9_500})
    assert r.status_code == 400 and "SharesAbove100" in r.text
    with w.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.donation_orders)).scalar_one() == 1

    r = alice.delete(f"/api/donations/{out['id']}")
    assert r.status_code == 200, r.text
    assert not orders.order(out["chain_order"]).active and orders.active() == []
    assert alice.get("/api/donations").json()["given"] == []


def test_an_order_cancelled_on_chain_needs_the_ledger(tmp_path: Path) -> None:
    w = make_world(tmp_path, with_chain=True)
    alice = w.client("alice")
    out = alice.post("/api/donations", json={"beneficiary": "bob", "wh_per_day": 500}).json()
    # The same database served by an app without the ledger: the order stays as it is.
    offline = TestClient(create_app(AppSettings(database_url=w.url, community="accounts-test",
                                                default_lang="en")))
    token = offline.post("/api/login", json={"username": "alice", "password": PASSWORD}).json()["token"]
    offline.headers["Authorization"] = f"Bearer {token}"
    r = offline.delete(f"/api/donations/{out['id']}")
    assert r.status_code == 400 and "ledger is not reachable" in r.text
    assert [o["id"] for o in alice.get("/api/donations").json()["given"]] == [out["id"]]
    assert w.suite is not None and w.suite.orders.order(out["chain_order"]).active


def test_orders_signed_or_cancelled_outside_the_app_show_in_it(tmp_path: Path) -> None:
    w = make_world(tmp_path, with_chain=True)
    assert w.suite is not None and w.custody is not None
    orders = w.suite.orders
    with w.engine.connect() as conn:
        key = w.custody.unlock(conn, "lea")
    # Léa signs an order with her own wallet, not through the app.
    oid = orders.set(orders.sign_set(key, w.address("lea"), w.address("gran"), wh=700))
    lea, gran = w.client("lea"), w.client("gran")
    (given,) = lea.get("/api/donations").json()["given"]
    assert (given["beneficiary"], given["wh_per_day"], given["chain_order"]) == ("gran", 700, oid)
    assert [o["donor"] for o in gran.get("/api/donations").json()["received"]] == ["lea"]
    assert lea.get("/give").status_code == 200  # the page syncs too, and lists it once
    assert len(lea.get("/api/donations").json()["given"]) == 1
    # Cancelled on chain: the app ends it.
    orders.cancel(orders.sign_cancel(key, w.address("lea"), oid))
    assert lea.get("/api/donations").json()["given"] == []
