"""Payment requests, helpers, account replacement, board controls, limits and privacy:
through the JSON API on the ledger (in-process EVM, the suite's contracts) and in SQL
alone, then in Debian's Chromium: paying a request from its link, a helper paying for an
older member, and the replacement flow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from community.app import tables as t
from community.chain import devnet
from community.chain.client import LedgerRevert

from .accounts_world import PASSWORD, World, make_world
from .appsim import ARTIFACTS, _Server, free_port

H = 100  # base units of an hour


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("accounts"), with_chain=True)


@pytest.fixture
def sql_world(tmp_path: Path) -> World:
    return make_world(tmp_path, with_chain=False)


def _hours(w: World, member: str) -> int:
    assert w.chain is not None
    return int(w.chain.balance("HOUR", w.address(member)))


def _calldata(w: World, since_block: int) -> bytes:
    assert w.chain is not None
    out = b""
    for n in range(since_block, w.chain.w3.eth.block_number + 1):
        for tx in w.chain.w3.eth.get_block(n, full_transactions=True)["transactions"]:
            out += bytes(tx.get("input", tx.get("data", b"")))
    return out


# --- payment requests ---------------------------------------------------------------------


def test_a_request_is_paid_in_parts_on_chain_and_both_see_the_history(world: World) -> None:
    w = world
    a, b = w.client("alice"), w.client("bob")
    start = w.chain.w3.eth.block_number  # type: ignore[union-attr]
    before = _hours(w, "alice"), _hours(w, "bob")
    req = a.post("/api/requests", json={"payer": "bob", "unit": "HOUR", "amount": 2 * H,
                                        "memo": "Soupe aux potirons"}).json()
    assert req["chain_id"] and req["tx_hash"] and req["link"].endswith(
        f"/pay/{req['id']}?unit=HOUR&amount=200&memo=Soupe+aux+potirons")
    assert b.post(f"/api/requests/{req['id']}/pay", json={"amount": 50}).json()["status"] == "open"
    too_much = b.post(f"/api/requests/{req['id']}/pay", json={"amount": 151})
    assert too_much.status_code == 400 and "1.50 h remain" in too_much.json()["detail"]
    done = b.post(f"/api/requests/{req['id']}/pay", json={"amount": 150}).json()
    assert done["status"] == "paid" and done["paid"] == 200
    assert (_hours(w, "alice"), _hours(w, "bob")) == (before[0] + 200, before[1] - 200)
    assert w.suite.requests.get(req["chain_id"]).paid == 200  # type: ignore[union-attr]
    for who in (a, b):
        history = who.get(f"/api/requests/{req['id']}").json()["history"]
        assert [(e["event"], e["amount"]) for e in history] == [("requested", 200), ("paid", 50), ("paid", 150)]
        assert all(e["tx_hash"] for e in history)
    # The memo never reaches the chain: no transaction since carries its text.
    assert b"Soupe aux potirons" not in _calldata(w, start)
    # Another member sees nothing of it.
    assert w.client("gran").get(f"/api/requests/{req['id']}").status_code == 403


def test_refuse_withdraw_and_an_open_link(world: World) -> None:
    w = world
    a, b, g = w.client("alice"), w.client("bob"), w.client("gran")
    r1 = a.post("/api/requests", json={"payer": "bob", "unit": "HOUR", "amount": 30}).json()
    assert b.post(f"/api/requests/{r1['id']}/refuse").json()["status"] == "refused"
    assert w.suite.requests.get(r1["chain_id"]).status == 3  # type: ignore[union-attr]  # REFUSED
    assert b.post(f"/api/requests/{r1['id']}/pay", json={"amount": 30}).status_code == 400
    r2 = a.post("/api/requests", json={"unit": "HOUR", "amount": 40, "memo": "jam"}).json()  # anyone
    assert g.post(f"/api/requests/{r2['id']}/refuse").status_code == 400  # only a named payer refuses
    assert g.post(f"/api/requests/{r2['id']}/pay", json={"amount": 40}).json()["status"] == "paid"
    r3 = a.post("/api/requests", json={"payer": "gran", "unit": "KG", "amount": 500}).json()
    assert b.post(f"/api/requests/{r3['id']}/withdraw").status_code == 403
    assert a.post(f"/api/requests/{r3['id']}/withdraw").json()["status"] == "withdrawn"
    # The board asks a member to pay the fund.
    fund = w.client("board1").post("/api/requests", json={"payer": "lea", "unit": "HOUR", "amount": 10,
                                                          "for_fund": True}).json()
    assert fund["requester"] == "fund" and fund["chain_id"]
    assert w.client("lea").post(f"/api/requests/{fund['id']}/pay", json={"amount": 10}).json()["status"] == "paid"


def test_the_qr_code_is_inline_svg_of_the_link(world: World) -> None:
    a = world.client("alice")
    req = a.post("/api/requests", json={"unit": "HOUR", "amount": 25, "memo": "Bike"}).json()
    svg = a.get(f"/api/requests/{req['id']}/qr.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and svg.text.startswith("<svg")
    page = a.get(f"/pay/{req['id']}").text
    assert "<svg" in page and "<script" not in page and req["link"].replace("&", "&amp;") in page


# --- helpers ------------------------------------------------------------------------------


def test_a_helper_cannot_exceed_the_monthly_amount(world: World) -> None:
    w = world
    g, lea = w.client("gran"), w.client("lea")
    grant = g.post("/api/helpers/grants", json={"helper": "lea", "kind": "pay", "unit": "HOUR",
                                               "monthly": 3 * H, "expires_at": _now(w) + 30 * 86_400}).json()
    assert grant["tx_hash"]
    bob_before = _hours(w, "bob")
    paid = lea.post("/api/helpers/pay", json={"member": "gran", "to": "bob", "unit": "HOUR", "amount": 2 * H,
                                             "memo": "groceries"}).json()
    assert paid["tx_hash"] and paid["spent"] == 200 and _hours(w, "bob") == bob_before + 200
    over = lea.post("/api/helpers/pay", json={"member": "gran", "to": "bob", "unit": "HOUR", "amount": 150})
    assert over.status_code == 400
    assert over.json()["detail"] == ("This is above the monthly amount of 3.00 h you may pay for this member, "
                                     "by 0.50 h.")
    # The contract holds the same line if the app's check is bypassed.
    with w.engine.connect() as conn:
        key = w.custody.unlock(conn, "lea")  # type: ignore[union-attr]
    intent = w.suite.helpers.sign_pay_for(key, w.address("lea"), w.address("gran"), w.address("bob"),  # type: ignore[union-attr]
                                          "HOUR", 150)
    with pytest.raises(LedgerRevert) as exc:
        w.suite.helpers.relay(intent)  # type: ignore[union-attr]
    assert exc.value.name == "AboveAllowance"
    # Both statements say who acted for whom; the helper sees gran's account, bob does not.
    with w.engine.connect() as conn:
        rows = conn.execute(sa.select(t.entries).where(t.entries.c.reason == "helper")).all()
    assert {(r.account, r.amount, r.acted_by) for r in rows} >= {("gran", -200, "lea"), ("bob", 200, "lea")}
    assert lea.get("/api/members/gran/statement").status_code == 200
    assert w.client("bob").get("/api/members/gran/statement").status_code == 403
    # Revoked: no more paying, no more seeing.
    assert g.delete(f"/api/helpers/grants/{grant['id']}").status_code == 204
    assert lea.post("/api/helpers/pay", json={"member": "gran", "to": "bob", "unit": "HOUR",
                                             "amount": 1}).status_code == 400
    assert lea.get("/api/members/gran/statement").status_code == 403


def test_privacy_setting_shows_balances_never_statements(sql_world: World) -> None:
    w = sql_world
    bob, board = w.client("bob"), w.client("board1")
    assert bob.get("/api/members/alice/balances").status_code == 403  # off by default
    assert board.put("/api/board/settings/privacy", json={"members_see_balances": True}).status_code == 200
    assert bob.get("/api/members/alice/balances").status_code == 200
    assert bob.get("/api/members/alice/statement").status_code == 403
    assert bob.put("/api/board/settings/privacy", json={"members_see_balances": False}).status_code == 403


def test_a_view_grant_pays_nothing_and_forms_need_their_csrf_token(sql_world: World) -> None:
    import re
    import time

    from fastapi.testclient import TestClient

    w = sql_world
    g, lea = w.client("gran"), w.client("lea")
    too_far = g.post("/api/helpers/grants", json={"helper": "lea", "kind": "view", "expires_at": 2**40})
    assert too_far.status_code == 400 and g.get("/api/helpers").json()["given"] == []
    g.post("/api/helpers/grants", json={"helper": "lea", "kind": "view", "expires_at": int(time.time()) + 3600})
    assert lea.get("/api/members/gran/balances").status_code == 200
    refused = lea.post("/api/helpers/pay", json={"member": "gran", "to": "bob", "unit": "HOUR", "amount": 1})
    assert refused.status_code == 400 and "no grant to pay" in refused.json()["detail"]
    browser = TestClient(w.app)
    assert browser.get("/pay/1", follow_redirects=False).headers["location"].startswith("/login")
    def token(html: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        assert found
        return found.group(1)

    browser.post("/login", data={"username": "alice", "password": PASSWORD,
                                 "csrf": token(browser.get("/login").text)})
    form = {"unit": "HOUR", "amount": "1", "payer": "bob"}
    assert browser.post("/requests", data=form).status_code == 403
    made = browser.post("/requests", data=form | {"csrf": token(browser.get("/requests").text)},
                        follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"].startswith("/pay/")


# --- limits, pause and freeze -------------------------------------------------------------


def test_in_sql_a_ceiling_and_a_floor_refuse_with_the_amount_and_warn_before(sql_world: World) -> None:
    w = sql_world
    a, b, board = w.client("alice"), w.client("bob"), w.client("board1")
    assert board.put("/api/board/ceilings/HOUR", json={"ceiling": 5 * H}).status_code == 200
    req = a.post("/api/requests", json={"payer": "bob", "unit": "HOUR", "amount": 6 * H}).json()
    assert req["chain_id"] is None
    warnings = [x.replace("\u00a0", " ") for x in b.get(f"/api/requests/{req['id']}").json()["warnings"]]
    assert warnings == ["Careful: the payee's balance would reach 6.00 h, 1.00 h above their ceiling of 5.00 h; "
                        "it would be refused."]
    refused = b.post(f"/api/requests/{req['id']}/pay", json={"amount": 6 * H})
    assert refused.status_code == 400
    assert refused.json()["detail"] == ("Refused: the payee's balance would reach 6.00 h, 1.00 h above the "
                                        "ceiling of 5.00 h.")
    assert b.post(f"/api/requests/{req['id']}/pay", json={"amount": 5 * H}).json()["paid"] == 500
    check = b.get("/api/payments/check", params={"to": "alice", "unit": "HOUR", "amount": 1600}).json()
    # Bob at -5.00 h paying 16.00 h: 1.00 h below his floor; Alice at 5.00 h: 16.00 h above her ceiling.
    assert [(c["who"], c["limit"], c["by"]) for c in check] == [("payer", "floor", 100), ("payee", "ceiling", 1600)]
    big = a.post("/api/requests", json={"payer": "bob", "unit": "HOUR", "amount": 16 * H}).json()
    board.put("/api/board/ceilings/HOUR", json={"ceiling": None})
    floor = b.post(f"/api/requests/{big['id']}/pay", json={"amount": 16 * H})
    assert floor.json()["detail"] == "Refused: the balance would fall to -21.00 h, 1.00 h below the floor of -20.00 h."


def test_pause_and_freeze_with_reasons_listed_for_every_member(world: World) -> None:
    w = world
    board, a, b = w.client("board1"), w.client("alice"), w.client("bob")
    req = a.post("/api/requests", json={"payer": "bob", "unit": "HOUR", "amount": 10}).json()
    assert board.post("/api/board/controls", json={"action": "pause", "reason": "audit of the fund"}).status_code == 200
    assert w.chain.is_paused()  # type: ignore[union-attr]
    refused = b.post(f"/api/requests/{req['id']}/pay", json={"amount": 10})
    assert refused.status_code == 400 and "audit of the fund" in refused.json()["detail"]
    seen = a.get("/api/controls").json()
    assert seen["paused"] and seen["pause_reason"] == "audit of the fund" and seen["history"][0]["tx_hash"]
    assert a.post("/api/board/controls", json={"action": "resume", "reason": "x"}).status_code == 403
    board.post("/api/board/controls", json={"action": "resume", "reason": "audit done"})
    board.post("/api/board/controls", json={"action": "freeze", "member": "bob", "reason": "reported stolen phone"})
    assert w.chain.is_frozen(w.address("bob"))  # type: ignore[union-attr]
    assert "reported stolen phone" in b.post(f"/api/requests/{req['id']}/pay", json={"amount": 10}).json()["detail"]
    assert a.get("/api/controls").json()["frozen"] == {"bob": "reported stolen phone"}
    board.post("/api/board/controls", json={"action": "unfreeze", "member": "bob", "reason": "found it"})
    assert b.post(f"/api/requests/{req['id']}/pay", json={"amount": 10}).json()["status"] == "paid"


# --- account replacement ------------------------------------------------------------------


def _now(w: World) -> int:
    return int(w.chain.w3.eth.get_block("latest")["timestamp"])  # type: ignore[union-attr]


def test_a_cancelled_replacement_changes_nothing(world: World) -> None:
    w = world
    a = w.client("alice")
    old = w.address("alice")
    before = w.chain.account_state("HOUR", old)  # type: ignore[union-attr]
    asked = a.post("/api/account/replacement", json={}).json()
    assert asked["status"] == "pending" and asked["old_address"] == old
    assert w.suite.recovery.pending(old).to == asked["new_address"]  # type: ignore[union-attr]
    assert a.post("/api/account/replacement/execute", json={}).json()["detail"].startswith("The delay has not run")
    assert a.post("/api/account/replacement/cancel", json={}).json()["status"] == "cancelled"
    assert w.suite.recovery.pending(old) is None  # type: ignore[union-attr]
    assert w.address("alice") == old and not w.chain.is_frozen(old)  # type: ignore[union-attr]
    assert w.chain.account_state("HOUR", old) == before  # type: ignore[union-attr]
    with w.engine.connect() as conn:
        assert w.custody.get(conn, "alice").address == old  # type: ignore[union-attr]
    assert a.get("/api/me").status_code == 200  # this session was kept


def test_after_replacement_the_old_account_can_do_nothing(world: World) -> None:
    w = world
    lost_phone, board = w.client("bob"), w.client("board1")
    old = w.address("bob")
    with w.engine.connect() as conn:
        old_key = w.custody.unlock(conn, "bob")  # type: ignore[union-attr]
    # What names the old address on chain: a grant bob gave, a request he made (partly paid).
    grant = lost_phone.post("/api/helpers/grants", json={"helper": "alice", "kind": "pay", "unit": "HOUR",
                                                        "monthly": 50, "expires_at": _now(w) + 30 * 86_400}).json()
    asked_of_gran = lost_phone.post("/api/requests", json={"payer": "gran", "unit": "HOUR", "amount": 30}).json()
    gran = w.client("gran")
    gran.post(f"/api/requests/{asked_of_gran['id']}/pay", json={"amount": 10})
    balance = _hours(w, "bob")
    asked = board.post("/api/account/replacement", json={"member": "bob"}).json()
    assert asked["requested_by"] == "board"
    assert lost_phone.get("/api/me").status_code == 401  # the lost phone's session ended at once
    devnet.advance_time(w.chain.w3, 48 * 3600 + 1)  # type: ignore[union-attr]
    done = board.post("/api/account/replacement/execute", json={"member": "bob"}).json()
    assert done["status"] == "executed"
    new = w.address("bob")
    assert new == asked["new_address"] != old
    assert w.chain.is_frozen(old) and w.chain.is_member(new)  # type: ignore[union-attr]
    assert _hours(w, "bob") == balance
    # The old key: refused on chain, whatever it signs.
    p = w.chain.payment(old, w.address("alice"), "HOUR", 1)  # type: ignore[union-attr]
    with pytest.raises(LedgerRevert) as exc:
        w.chain.relay_payment(p, w.chain.sign_payment(old_key, p))  # type: ignore[union-attr]
    assert exc.value.name == "AccountFrozen"
    # The grant and the open request were signed again with the new key: they carry on.
    alice = w.client("alice")
    assert alice.post("/api/helpers/pay", json={"member": "bob", "to": "gran", "unit": "HOUR",
                                               "amount": 5}).json()["tx_hash"]
    assert gran.post(f"/api/requests/{asked_of_gran['id']}/pay", json={"amount": 20}).json()["status"] == "paid"
    assert _hours(w, "bob") == balance - 5 + 20
    assert grant["id"]
    # Bob logs in again and pays with the new key, kept by the community.
    req = w.client("alice").post("/api/requests", json={"payer": "bob", "unit": "HOUR", "amount": 5}).json()
    assert w.client("bob").post(f"/api/requests/{req['id']}/pay", json={"amount": 5}).json()["status"] == "paid"


def test_guardians_approve_instead_of_the_board(world: World) -> None:
    w = world
    g = w.client("gran")
    old = w.address("gran")
    named = g.put("/api/account/guardians", json={"guardians": ["alice", "lea"], "threshold": 2}).json()
    assert (named["guardians"], named["threshold"]) == (["alice", "lea"], 2)
    assert w.suite.recovery.guardians(old) == ([w.address("alice"), w.address("lea")], 2)  # type: ignore[union-attr]
    first = w.client("alice").post("/api/account/replacement/approve", json={"member": "gran"}).json()
    assert first["status"] == "approving" and first["approvals"] == 1
    assert w.client("bob").post("/api/account/replacement/approve", json={"member": "gran"}).status_code == 400
    second = w.client("lea").post("/api/account/replacement/approve", json={"member": "gran"}).json()
    assert second["status"] == "pending" and second["new_address"] == first["new_address"]
    assert w.suite.recovery.pending(old).to == first["new_address"]  # type: ignore[union-attr]
    devnet.advance_time(w.chain.w3, 48 * 3600 + 1)  # type: ignore[union-attr]
    done = w.client("lea").post("/api/account/replacement/execute", json={}).status_code
    assert done == 400  # lea executes her own account only; the board or gran completes gran's
    assert w.client("board1").post("/api/account/replacement/execute",
                                   json={"member": "gran"}).json()["status"] == "executed"
    assert w.address("gran") == first["new_address"] and w.chain.is_frozen(old)  # type: ignore[union-attr]
    assert w.client("gran").get("/api/account").json()["guardians"] == ["alice", "lea"]


def test_replacement_needs_the_ledger(sql_world: World) -> None:
    r = sql_world.client("alice").post("/api/account/replacement", json={})
    assert r.status_code == 400 and "ledger" in r.json()["detail"]


# --- in Chromium --------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[str]:
    port = free_port()
    with _Server(world.app, port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _login(browser: Any, url: str, user: str, next_path: str = "/", phone: bool = False) -> Any:
    viewport = {"width": 390, "height": 844} if phone else {"width": 1100, "height": 900}
    page = browser.new_context(locale="en-GB", viewport=viewport, base_url=url).new_page()
    page.goto(next_path)
    if "/login" not in page.url:
        page.goto("/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    return page


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_browser_paying_a_request_from_its_link(browser: Any, served: str, world: World) -> None:
    alice = _login(browser, served, "alice", "/requests")
    alice.goto("/requests")
    form = alice.get_by_test_id("new-request")
    form.get_by_label("Who pays").select_option("gran")
    form.get_by_label("Amount").fill("1.25")
    form.get_by_label("Memo").fill("Knitting lesson")
    form.get_by_role("button", name="Create the request").click()
    link = alice.get_by_test_id("link").input_value()
    assert alice.get_by_test_id("qr").locator("svg").count() == 1
    _shot(alice, "app-request")
    path = link.split("://", 1)[1].split("/", 1)[1]
    before = _hours(world, "gran")
    gran = _login(browser, served, "gran", "/" + path, phone=True)  # the QR code opens the login, then the request
    assert gran.get_by_test_id("memo").inner_text() == "Knitting lesson"
    assert gran.get_by_test_id("amount").inner_text() == "1.25\u00a0h"
    gran.get_by_label("Amount to pay (h)").fill("1.25")
    gran.get_by_role("button", name="Pay", exact=True).click()
    assert gran.get_by_test_id("status").inner_text() == "paid"
    assert gran.get_by_test_id("history").locator("tr[data-event=paid]").count() == 1
    _shot(gran, "app-request-paid-phone")
    assert _hours(world, "gran") == before - 125


def test_browser_a_helper_pays_for_an_older_member(browser: Any, served: str, world: World) -> None:
    gran = _login(browser, served, "gran", "/helpers")
    gran.goto("/helpers")
    form = gran.get_by_test_id("new-grant")
    form.get_by_label("Helper").select_option("lea")
    form.get_by_label("pay for me (and see my account)").check()
    form.get_by_label("Monthly amount").fill("4")
    form.get_by_role("button", name="Grant").click()
    assert gran.get_by_test_id("notice").inner_text() == "Grant saved."
    lea = _login(browser, served, "lea", "/helpers")
    lea.goto("/helpers")
    card = lea.get_by_test_id("held-grant").filter(has_text="Granny Rose")
    card.get_by_label("Pay to").select_option("alice")
    card.get_by_label("Amount (h)").fill("0.75")
    card.get_by_role("button", name="Pay for Granny Rose").click()
    assert lea.get_by_test_id("notice").inner_text() == "Payment made on behalf of the member."
    _shot(lea, "app-helpers")
    lea.get_by_role("link", name="See Granny Rose's account").click()
    row = lea.get_by_test_id("statement").locator("tr[data-reason=helper]").first
    assert "by Léa" in row.inner_text() and row.get_attribute("data-amount") == "-75"
    _shot(lea, "app-helper-sees-account")


def test_browser_replacement_flow(browser: Any, served: str, world: World) -> None:
    w = world
    old = w.address("lea")
    lea = _login(browser, served, "lea", "/account")
    lea.goto("/account")
    assert lea.get_by_test_id("address").inner_text() == old
    lea.get_by_role("button", name="Ask for the replacement").click()
    assert lea.get_by_test_id("pending").get_attribute("data-ready") == "no"
    _shot(lea, "app-replacement-pending")
    lea.get_by_role("button", name="Cancel the replacement").click()
    assert lea.get_by_test_id("notice").inner_text() == "Replacement cancelled: nothing changed."
    assert w.address("lea") == old
    lea.get_by_role("button", name="Ask for the replacement").click()
    everyone = _login(browser, served, "alice", "/controls")  # every member sees it waiting
    everyone.goto("/controls")
    assert everyone.get_by_test_id("replacements").locator("li[data-member=lea]").count() == 1
    _shot(everyone, "app-controls")
    devnet.advance_time(w.chain.w3, 48 * 3600 + 1)  # type: ignore[union-attr]
    lea.goto("/account")
    lea.get_by_role("button", name="Complete the replacement").click()
    assert "/login" in lea.url  # every session of the old account ended
    assert w.address("lea") != old and w.chain.is_frozen(old)  # type: ignore[union-attr]
    everyone.goto("/controls")
    assert everyone.get_by_test_id("running").is_visible()
    assert everyone.get_by_test_id("replacements").count() == 0
