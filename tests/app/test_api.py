"""The JSON API does what the pages do: services and deliveries confirmed then paid,
goods bought with kWh, donations, proposals and the fund, energy as JSON and CSV, the
board's registry, certificates without a ledger."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from community.app import tables

from .appsim import DAY2, NOON2, PASSWORD


def api(app: Any, user: str) -> TestClient:
    c = TestClient(app, headers={"accept-language": "en"})
    token = c.post("/api/login", json={"username": user, "password": PASSWORD}).json()["token"]
    c.headers["Authorization"] = f"Bearer {token}"
    return c


def entries(app: Any) -> list[tuple[str, str, int]]:
    with app.state.engine.connect() as conn:
        rows = conn.execute(sa.select(tables.entries.c.account, tables.entries.c.unit, tables.entries.c.amount))
        return sorted(map(tuple, rows))  # type: ignore[arg-type]


def test_a_service_is_paid_when_the_buyer_confirms(plain_app: Any) -> None:
    alice, bruno, chloe = api(plain_app, "alice"), api(plain_app, "bruno"), api(plain_app, "chloe")
    offer = alice.post("/api/offers", json={"kind": "hours", "description": "Maths tutoring", "quantity": 200})
    assert offer.status_code == 201 and offer.json()["unit"] == "HOUR"
    oid = offer.json()["id"]
    q = bruno.get(f"/api/offers/{oid}/quote", params={"quantity": 150, "pay_unit": "KWH"}).json()
    assert q["pay_amount"] == 150_000  # 1.5 h = 150 kWh at the reference rate
    trade = bruno.post(f"/api/offers/{oid}/take", json={"quantity": 150, "pay_unit": "HOUR"}).json()
    assert trade["status"] == "awaiting" and trade["pay_amount"] == 150
    assert entries(plain_app) == []
    assert [o["quantity"] for o in bruno.get("/api/offers").json()] == [50]
    # only the buyer confirms
    r = chloe.post(f"/api/trades/{trade['id']}/confirm")
    assert r.status_code == 400
    done = bruno.post(f"/api/trades/{trade['id']}/confirm").json()
    assert done["status"] == "settled" and done["confirmed_at"] is not None
    assert entries(plain_app) == [("alice", "HOUR", 150), ("bruno", "HOUR", -150)]
    assert bruno.post(f"/api/trades/{trade['id']}/confirm").status_code == 400  # not twice
    history = alice.get("/api/trades").json()
    assert [(t["buyer"], t["seller"], t["status"]) for t in history] == [("bruno", "alice", "settled")]
    balances = {b["unit"]: b["balance"] for b in alice.get("/api/me/balances").json()}
    assert balances["HOUR"] == 150


def test_goods_bought_with_energy_and_offers_that_run_out(plain_app: Any) -> None:
    chloe, david = api(plain_app, "chloe"), api(plain_app, "david")
    oid = chloe.post("/api/offers", json={"kind": "goods", "description": "Tomatoes", "quantity": 1000}).json()["id"]
    t = david.post(f"/api/offers/{oid}/take", json={"quantity": 1000, "pay_unit": "KWH"}).json()
    assert t["pay_amount"] == 10_000  # 1 kg = 0.1 h = 10 kWh
    assert david.get("/api/offers").json() == []  # sold out
    r = david.post(f"/api/offers/{oid}/take", json={"quantity": 1, "pay_unit": "KWH"})
    assert r.status_code == 400 and r.json()["detail"] == "This offer is no longer available."
    david.post(f"/api/trades/{t['id']}/confirm")
    assert entries(plain_app) == [("chloe", "KWH", 10_000), ("david", "KWH", -10_000)]
    r = chloe.post(f"/api/offers/{oid}/take", json={"quantity": 1, "pay_unit": "KWH"})
    assert r.status_code == 400


def test_donations_proposals_and_the_fund(plain_app: Any) -> None:
    alice, bruno, chloe = api(plain_app, "alice"), api(plain_app, "bruno"), api(plain_app, "chloe")
    preview = alice.post("/api/donations/preview", json={"beneficiary": "david", "share_bp": 1000}).json()
    assert preview["per_day_wh"] > 0 and preview["per_month_wh"] == 30 * preview["per_day_wh"]
    r = alice.post("/api/donations", json={"beneficiary": "david", "share_bp": 1000, "wh_per_day": 5})
    assert r.status_code == 422 and "exactly one" in r.json()["detail"]
    order = alice.post("/api/donations", json={"beneficiary": "david", "share_bp": 1000}).json()
    assert api(plain_app, "david").get("/api/donations").json()["received"][0]["id"] == order["id"]
    assert bruno.delete(f"/api/donations/{order['id']}").status_code == 404  # not bruno's
    assert alice.delete(f"/api/donations/{order['id']}").json() == {"ok": True}
    assert alice.get("/api/donations").json()["given"] == []

    assert bruno.post("/api/proposals", json={"title": "Demurrage 1 %"}).status_code == 403
    p = chloe.post("/api/proposals", json={"title": "Demurrage 1 %", "kind": "demurrage",
                                            "subject": "KWH", "value": "1%", "days": 3}).json()
    assert p["open"] and p["tally"] == {"yes": 0, "no": 0, "abstain": 0}
    bruno.post(f"/api/proposals/{p['id']}/votes", json={"choice": "no"})
    after = alice.post(f"/api/proposals/{p['id']}/votes", json={"choice": "yes"}).json()
    assert after["tally"] == {"yes": 1, "no": 1, "abstain": 0} and after["my_vote"] == "yes"
    after = bruno.post(f"/api/proposals/{p['id']}/votes", json={"choice": "yes"}).json()  # changed mind
    assert after["tally"]["yes"] == 2
    r = bruno.post(f"/api/proposals/{p['id']}/votes", json={"choice": "maybe"})
    assert r.status_code == 400 and r.json()["detail"] == "Vote must be one of: yes, no, abstain."

    bruno.put("/api/fund/votes/mine", json={"shares_percent": {"solidarity": 100}})
    fund = alice.put("/api/fund/votes/mine", json={"shares_percent": {"panels": 50, "roads": 50}}).json()
    # nobody has contributed yet: stated preferences weigh the same
    assert fund["voters"] == 2
    assert fund["allocation_percent"] == {"solidarity": 50.0, "panels": 25.0, "roads": 25.0, "pensions": 0.0}
    r = alice.put("/api/fund/votes/mine", json={"shares_percent": {"yachts": 100}})
    assert r.status_code == 400


def test_energy_as_json_and_csv_agree(plain_app: Any) -> None:
    alice = api(plain_app, "alice")
    doc = alice.get("/api/me/energy", params={"day": "2026-06-21"}).json()
    assert doc["day"] == "2026-06-21" and len(doc["intervals"]) == 96
    csv_lines = alice.get("/api/me/energy.csv", params={"day": "2026-06-21"}).text.splitlines()
    produced = sum(int(line.split(",")[1]) for line in csv_lines[1:])
    assert produced == doc["totals"]["produced_wh"] > 0
    assert sum(iv["produced_wh"] for iv in doc["intervals"] if DAY2 <= iv["start"] < NOON2) == produced
    r = alice.get("/api/me/energy", params={"day": "21/06/2026"})
    assert r.status_code == 400 and r.json()["detail"] == "Day must be a date like 2026-05-01."
    assert api(plain_app, "enedis").get("/api/me/energy").status_code == 403  # no member behind it


def test_board_registry_and_roles(plain_app: Any) -> None:
    board, bruno = api(plain_app, "chloe"), api(plain_app, "bruno")
    assert bruno.get("/api/board/gateways").status_code == 403
    gws = board.get("/api/board/gateways").json()
    assert len(gws) == 4 and {g["status"] for g in gws} == {"active"}
    assert all(g["last_reading_ms"] == NOON2 * 1000 for g in gws)
    assert board.post("/api/board/members", json={"id": "emma", "name": "Emma"}).status_code == 201
    r = board.post("/api/board/gateways", json={"address": "0x" + "ab" * 20, "member_id": "emma",
                                                "meter_point": "30000000009999"})
    assert r.status_code == 201
    r = board.post("/api/board/gateways", json={"address": "0x1234", "member_id": "emma",
                                                "meter_point": "30000000009999"})
    assert r.status_code == 400 and "is not an Ethereum address" in r.json()["detail"]
    statuses = {g["address"].lower(): g["status"] for g in board.get("/api/board/gateways").json()}
    assert statuses["0x" + "ab" * 20] == "enrolled"
    units = {u["unit"]: u for u in board.get("/api/board/units").json()}
    assert units["HOUR"]["wh_per_unit"] == 100_000


def test_certificates_without_a_ledger_say_so(plain_app: Any) -> None:
    op = api(plain_app, "enedis")
    assert op.get("/api/certificates", params={"meter_point": "30000000000000", "from": "2026-06-20"}).json() == []
    r = op.post("/api/certificates/verify", json={"id": "x"})
    assert r.status_code == 200 and r.json()["valid"] is False
