"""The app in a real headless Chromium (Debian's), driven by Playwright, against the
seeded neighbourhood served on localhost: log in, dashboard numbers against SQL, buy
100 kWh paying 1 hour, give, vote, download a certificate that verifies. Screenshots of
every page go to test-artifacts/app/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from community.app import tables
from community.db import gateways, readings

from .appsim import ARTIFACTS, DAY1, DAY2, NOON2, PASSWORD, STEP, Served

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _page(browser: Any, served: Served, lang: str = "en-GB", phone: bool = False) -> Any:
    viewport = {"width": 390, "height": 844} if phone else {"width": 1100, "height": 900}
    context = browser.new_context(locale=lang, viewport=viewport, accept_downloads=True,
                                  base_url=served.url)
    return context.new_page()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _login(page: Any, user: str) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    assert page.get_by_test_id("who").inner_text().startswith(
        {"alice": "Alice", "bruno": "Bruno", "chloe": "Chloé", "david": "David", "enedis": "enedis"}[user])


# --- what SQL says, computed here independently of the app ------------------------------


def _registers(conn: sa.Connection) -> dict[tuple[str, int], dict[str, int]]:
    """(member, ts s) -> summed registers of that member's devices at that boundary."""
    out: dict[tuple[str, int], dict[str, int]] = {}
    q = sa.select(gateways.c.member_id, readings.c.ts, readings.c.e_imp_wh, readings.c.e_exp_wh,
                  readings.c.e_prod_wh).join(gateways, gateways.c.address == readings.c.gw)
    for member, ts, imp, exp, prod in conn.execute(q):
        d = out.setdefault((member, ts // 1000), {"imp": 0, "exp": 0, "prod": 0})
        d["imp"] += imp or 0
        d["exp"] += exp or 0
        d["prod"] += prod or 0
    return out


def _sql_today(served: Served) -> dict[str, float]:
    with served.engine.connect() as conn:
        regs = _registers(conn)
    members = sorted({m for m, _ in regs})
    produced = consumed = self_consumed = shared = 0
    last_prod = last_cons = 0
    for k in range((NOON2 - DAY2) // STEP):
        a, b = DAY2 + k * STEP, DAY2 + (k + 1) * STEP
        d = {m: {r: regs[(m, b)][r] - regs[(m, a)][r] for r in ("imp", "exp", "prod")} for m in members}
        p = sum(x["prod"] for x in d.values())
        sc = sum(max(x["prod"] - x["exp"], 0) for x in d.values())
        c = sum(x["imp"] for x in d.values()) + sc
        produced, consumed, self_consumed = produced + p, consumed + c, self_consumed + sc
        # Every home either imports or exports in an interval here: the local pool is
        # simply min(exports, imports).
        shared += min(sum(x["exp"] for x in d.values()), sum(x["imp"] for x in d.values()))
        last_prod, last_cons = p, c
    return {"produced": produced, "consumed": consumed, "shared": shared,
            "ratio": (self_consumed + shared) / consumed, "production_w": last_prod * 4,
            "consumption_w": last_cons * 4}


# --- the journey ------------------------------------------------------------------------


def test_home_public_in_both_languages(browser: Any, neighbourhood: Served) -> None:
    fr = _page(browser, neighbourhood, "fr-FR")
    fr.goto("/")
    assert fr.locator("h1").inner_text() == "Le quartier en ce moment"
    assert fr.locator("html").get_attribute("lang") == "fr"
    _shot(fr, "home-fr")
    en = _page(browser, neighbourhood, "en-GB", phone=True)
    en.goto("/")
    assert en.locator("h1").inner_text() == "The neighbourhood now"
    _shot(en, "home-phone-en")
    # the switch: French chosen on an English browser sticks
    en.get_by_role("link", name="FR").click()
    assert en.locator("h1").inner_text() == "Le quartier en ce moment"
    # no member's own figures for anonymous visitors
    en.goto("/wallet")
    assert "/login" in en.url


def test_dashboard_numbers_match_sql(browser: Any, neighbourhood: Served) -> None:
    page = _page(browser, neighbourhood)
    _login(page, "bruno")
    expect = _sql_today(neighbourhood)
    assert int(page.get_by_test_id("today-produced").get_attribute("data-wh")) == expect["produced"]
    assert int(page.get_by_test_id("today-consumed").get_attribute("data-wh")) == expect["consumed"]
    assert int(page.get_by_test_id("today-shared").get_attribute("data-wh")) == expect["shared"]
    assert int(page.get_by_test_id("production-w").get_attribute("data-w")) == expect["production_w"]
    assert int(page.get_by_test_id("consumption-w").get_attribute("data-w")) == expect["consumption_w"]
    ratio = float(page.get_by_test_id("self-sufficiency").get_attribute("data-ratio"))
    assert abs(ratio - expect["ratio"]) < 1e-9
    assert page.get_by_test_id("self-sufficiency").inner_text() == f"{round(100 * expect['ratio'])}\u00a0%"
    assert page.locator("svg.chart polyline").count() == 2
    _shot(page, "home")

    page.goto("/energy")
    with neighbourhood.engine.connect() as conn:
        regs = _registers(conn)
    bought = page.get_by_test_id("my-consumed").get_attribute("data-wh")
    assert int(bought) == regs[("bruno", NOON2)]["imp"] - regs[("bruno", DAY2)]["imp"]
    assert page.get_by_test_id("intervals").locator("tbody tr").count() == 96
    _shot(page, "energy")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    lines = Path(info.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("start,produced_wh,consumed_wh")
    assert len(lines) == 97


def test_buy_100_kwh_paying_1_hour(browser: Any, neighbourhood: Served) -> None:
    seller = _page(browser, neighbourhood)
    _login(seller, "alice")
    seller.goto("/market")
    seller.get_by_label("Kind").select_option("energy")
    seller.get_by_label("Description").fill("Midday surplus from my roof")
    seller.get_by_label("Quantity", exact=True).fill("200")
    seller.get_by_role("button", name="Publish").click()
    assert seller.get_by_test_id("notice").inner_text() == "Offer published."

    buyer = _page(browser, neighbourhood)
    _login(buyer, "bruno")
    buyer.goto("/market")
    offer = buyer.locator('[data-testid="offer"][data-seller="alice"][data-kind="energy"]')
    offer.get_by_label("Quantity (kWh)").fill("100")
    offer.get_by_label("Pay with").select_option("HOUR")
    _shot(buyer, "market")
    offer.get_by_role("button", name="Buy").click()
    assert buyer.get_by_test_id("notice").inner_text() == "Bought 100.000 kWh for 1.00 h."

    with neighbourhood.engine.connect() as conn:
        rows = conn.execute(sa.select(tables.entries.c.account, tables.entries.c.unit,
                                      tables.entries.c.amount, tables.entries.c.reason)
                            .order_by(tables.entries.c.id)).all()
    assert sorted(map(tuple, rows)) == sorted([
        ("bruno", "HOUR", -100, "trade"), ("alice", "HOUR", 100, "trade"),
        ("alice", "KWH", -100_000, "trade"), ("bruno", "KWH", 100_000, "trade")])

    buyer.goto("/wallet")
    balances = buyer.get_by_test_id("balances")
    assert balances.locator('tr[data-unit="HOUR"]').get_attribute("data-balance") == "-100"
    with neighbourhood.engine.connect() as conn:
        from community.settlement.run import balances as settled

        kwh = next(b["balance"] for b in settled(conn, "bruno") if b["unit"] == "KWH")
    assert balances.locator('tr[data-unit="KWH"]').get_attribute("data-balance") == str(kwh + 100_000)
    reasons = {r.get_attribute("data-reason") for r in buyer.get_by_test_id("statement").locator("tbody tr").all()}
    assert {"trade", "allocation"} <= reasons
    assert buyer.get_by_test_id("statement").locator("span.mono").count() > 0  # settled entries name their tx
    _shot(buyer, "wallet")


def test_give_energy_with_effect_before_saving(browser: Any, neighbourhood: Served) -> None:
    page = _page(browser, neighbourhood)
    _login(page, "alice")
    page.goto("/give")
    page.get_by_label("To").select_option("david")
    page.get_by_label("A share of my export (%)").check()
    page.get_by_label("Amount", exact=True).fill("20")
    page.get_by_role("button", name="Show the effect").click()
    effect = page.get_by_test_id("effect")
    with neighbourhood.engine.connect() as conn:
        regs = _registers(conn)
    exported = regs[("alice", NOON2)]["exp"] - regs[("alice", DAY1)]["exp"]
    assert int(effect.get_attribute("data-per-day-wh")) == exported * 2000 // 10_000 // 2
    assert "David" in effect.inner_text()
    _shot(page, "give")
    page.get_by_role("button", name="Save the order").click()
    assert page.get_by_test_id("notice").inner_text() == "Standing order saved."
    with neighbourhood.engine.connect() as conn:
        order = conn.execute(sa.select(tables.donation_orders)).one()
    assert (order.donor, order.beneficiary, order.share_bp, order.active) == ("alice", "david", 2000, True)


def test_vote_on_a_proposal_and_the_fund(browser: Any, neighbourhood: Served) -> None:
    board = _page(browser, neighbourhood)
    _login(board, "chloe")
    board.goto("/vote")
    board.get_by_label("Title").fill("1 hour is worth 120 kWh")
    board.get_by_role("button", name="Create").click()
    board.goto("/board")
    assert board.get_by_test_id("gateways").locator('tr[data-status="active"]').count() == 4
    _shot(board, "board")

    page = _page(browser, neighbourhood)
    _login(page, "bruno")
    page.goto("/vote")
    proposal = page.get_by_test_id("proposal").filter(has_text="1 hour is worth 120 kWh")
    proposal.get_by_label("Yes").check()
    proposal.get_by_role("button", name="Vote").click()
    assert page.get_by_test_id("notice").inner_text() == "Your vote is recorded."
    proposal = page.get_by_test_id("proposal").filter(has_text="1 hour is worth 120 kWh")
    assert proposal.get_by_test_id("tally").get_attribute("data-yes") == "1"
    for purpose, value in (("Energy for neighbours in need", "50"), ("More solar panels", "30"),
                           ("Roads and paths", "20"), ("Pensions top-up", "0")):
        page.get_by_label(f"{purpose} (%)").fill(value)
    page.get_by_role("button", name="Save my preference").click()
    assert page.get_by_test_id("notice").inner_text() == "Preference saved."
    result = page.get_by_test_id("fund-result")
    assert float(result.locator('tr[data-purpose="solidarity"]').get_attribute("data-percent")) == 50.0
    _shot(page, "vote")
    with neighbourhood.engine.connect() as conn:
        assert conn.execute(sa.select(tables.votes.c.member_id, tables.votes.c.choice)).all() == [("bruno", "yes")]


def test_certificate_downloads_and_verifies(browser: Any, neighbourhood: Served) -> None:
    from community.settlement.certificates import verify_certificate

    page = _page(browser, neighbourhood)
    _login(page, "enedis")
    page.goto("/certificates")
    page.get_by_label("Meter point").select_option(neighbourhood.homes["alice"].meter_point)
    page.get_by_label("From").fill("2026-06-20")
    page.get_by_label("To").fill("2026-06-20")
    page.get_by_role("button", name="Search").click()
    rows = page.get_by_test_id("certificates").locator("tbody tr")
    assert rows.count() > 5
    _shot(page, "certificates")
    with page.expect_download() as info:
        rows.nth(4).get_by_test_id("download").click()
    cert = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
    assert cert["meter_point"] == neighbourhood.homes["alice"].meter_point
    assert DAY1 <= cert["hour_start"] < DAY2
    verdict = verify_certificate(cert, neighbourhood.chain)
    assert verdict["valid"], verdict["reasons"]
    rows.nth(4).get_by_role("link", name="Verify").click()
    assert page.get_by_test_id("verdict").get_attribute("data-valid") == "true"
    _shot(page, "certificate-verdict")
