"""Monthly statements in the app, billing settings, the digest's unsubscribe link, and the
market's categories, expiry and wants.

Chromium (Debian's, via Playwright) against the served neighbourhood whose day 1 is settled
on chain: a member's statement page shows exactly the figures of `quartier bills`' CSV for
that member, the PDF and CSV download, an expired offer is not on the market. The API over
a copy of the seeded neighbourhood: another member's statement refused (the board allowed),
settings checked in the member's language, the unsubscribe link working once, offers and
wants expiring and filtered by category, an old database gaining the new columns.
"""

from __future__ import annotations

import csv
import html
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from community.app import tables
from community.bills import ledger, render
from community.bills.schema import bills_members

from .appsim import ARTIFACTS, DAY1, PASSWORD, Served
from .test_browser import ARGS, CHROMIUM

MONTH = "2026-06"  # DAY1 is 2026-06-20


def api(app: Any, user: str, lang: str = "en") -> TestClient:
    c = TestClient(app, headers={"accept-language": lang})
    token = c.post("/api/login", json={"username": user, "password": PASSWORD}).json()["token"]
    c.headers["Authorization"] = f"Bearer {token}"
    return c


def csv_figures(text: str) -> dict[tuple[str, str], str]:
    return {(r["section"], r["key"]): r["value"] for r in csv.DictReader(io.StringIO(text))}


# --- in Chromium --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _login(browser: Any, served: Served, user: str) -> Any:
    context = browser.new_context(locale="en-GB", viewport={"width": 1000, "height": 900},
                                  accept_downloads=True, base_url=served.url)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    return page


def test_a_member_sees_the_figures_of_the_bills_csv_and_downloads_them(browser: Any,
                                                                        neighbourhood: Served) -> None:
    with neighbourhood.engine.connect() as conn:
        expected_csv = render.to_csv(ledger.statement_for(conn, "bruno", MONTH), "en")
    expected = csv_figures(expected_csv)
    assert expected["consumption", "community_wh"] != "0"  # bruno has no panels: neighbours' energy

    page = _login(browser, neighbourhood, "bruno")
    page.get_by_role("link", name="Statements").click()
    page.wait_for_url("**/statements")
    statement = page.get_by_test_id("statement")
    assert statement.get_attribute("data-month") == MONTH  # the last settled month by default
    shown = {
        (row.evaluate("r => r.closest('[data-section]').dataset.section"), row.get_attribute("data-key")):
            row.get_attribute("data-value")
        for row in statement.locator("tr[data-key]").all()
    }
    assert shown == expected
    # what a reader sees, not only the attributes
    assert f"{expected['consumption', 'grid_wh']} Wh" in statement.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-statement.png"), full_page=True)

    with page.expect_download() as got:
        page.get_by_test_id("csv").click()
    assert Path(got.value.path()).read_text(encoding="utf-8") == expected_csv
    with page.expect_download() as got:
        page.get_by_test_id("pdf").click()
    pdf = Path(got.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF") and got.value.suggested_filename == f"statement-{MONTH}-bruno-en.pdf"
    # the print stylesheet leaves only the statement on paper
    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible()
    assert statement.is_visible()
    page.context.close()


def test_an_expired_offer_is_not_on_the_market(browser: Any, neighbourhood: Served) -> None:
    import time

    now = int(time.time())
    with neighbourhood.engine.begin() as conn:
        for description, expires, category in (("Old jam from last summer", now - 60, "food"),
                                               ("Fresh courgettes", now + 86_400, "garden")):
            conn.execute(tables.offers.insert().values(
                member_id="chloe", kind="goods", description=description, unit="KG", quantity=2000,
                status="open", created_at=now - 3600, expires_at=expires, category=category))
    page = _login(browser, neighbourhood, "bruno")
    page.goto("/market")
    offers = page.get_by_test_id("offer")
    assert offers.filter(has_text="Fresh courgettes").count() == 1
    assert offers.filter(has_text="Old jam from last summer").count() == 0
    page.get_by_label("Show").select_option("food")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/market?category=food")
    assert page.get_by_test_id("offer").count() == 0
    page.get_by_label("Show").select_option("garden")
    page.get_by_role("button", name="Filter").click()
    assert [o.get_attribute("data-category") for o in page.get_by_test_id("offer").all()] == ["garden"]
    page.context.close()


# --- the API ------------------------------------------------------------------------------


def test_another_members_statement_is_refused_the_boards_allowed(plain_app: Any) -> None:
    alice, chloe, enedis = api(plain_app, "alice"), api(plain_app, "chloe"), api(plain_app, "enedis")
    own = alice.get(f"/api/statements/{MONTH}")
    assert own.status_code == 200 and own.json()["member"] == "alice"
    assert {(r["section"], r["key"]) for r in own.json()["rows"]} >= {("consumption", "grid_wh")}
    assert alice.get(f"/api/statements/{MONTH}", params={"member": "bruno"}).status_code == 403
    assert alice.get(f"/api/statements/{MONTH}/pdf", params={"member": "bruno"}).status_code == 403
    assert alice.get("/statements?member=bruno").status_code == 403
    assert enedis.get(f"/api/statements/{MONTH}", params={"member": "alice"}).status_code == 403
    board = chloe.get(f"/api/statements/{MONTH}", params={"member": "bruno"})
    assert board.status_code == 200 and board.json()["member"] == "bruno"
    pdf = chloe.get(f"/api/statements/{MONTH}/pdf", params={"member": "bruno", "lang": "fr"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert chloe.get("/api/statements/runs").status_code == 200
    assert alice.get("/api/statements/runs").status_code == 403
    bad = alice.get("/api/statements/June")
    assert bad.status_code == 400 and bad.json()["detail"] == "The month must be written like 2026-06."


def test_billing_settings_are_checked_in_the_members_language(plain_app: Any) -> None:
    alice = api(plain_app, "alice", lang="fr")
    r = alice.put("/api/members/alice/billing", json={"tariff_ct_kwh": "beaucoup"})
    assert r.status_code == 400 and r.json()["detail"].startswith("Le prix du fournisseur")
    r = alice.put("/api/members/alice/billing",
                  json={"tariff_ct_kwh": "25,16", "email": "alice@example.org", "lang": "en",
                        "name_consent": True})
    assert r.status_code == 200
    assert r.json() == {"lang": "en", "email": "alice@example.org", "tariff_ct_kwh": "25.16",
                        "name_consent": True, "digest": True}
    assert alice.put("/api/members/bruno/billing", json={"digest": False}).status_code == 403
    assert api(plain_app, "chloe").put("/api/members/bruno/billing", json={"lang": "en"}).status_code == 200
    # the statement now prices the month at the member's tariff, in the member's language
    stmt = alice.get(f"/api/statements/{MONTH}").json()
    assert stmt["lang"] == "en" and stmt["statement"]["tariff_ct_kwh"] == "25.16"


def test_the_unsubscribe_link_works_once(plain_app: Any) -> None:
    with plain_app.state.engine.begin() as conn:
        ledger.set_member(conn, "bruno", email="bruno@example.org", lang="fr")
        token = ledger.settings(conn)["bruno"].unsubscribe_token
    assert token
    web = TestClient(plain_app, headers={"accept-language": "fr"})
    # opening the link only asks: mail scanners follow links
    ask = web.get(f"/unsubscribe/{token}")
    assert ask.status_code == 200 and "Ne plus envoyer le résumé hebdomadaire à Bruno" in ask.text
    with plain_app.state.engine.connect() as conn:
        assert ledger.settings(conn)["bruno"].digest is True
    # the mail client's one-click POST (RFC 8058): no session, no CSRF token
    first = web.post("/bills/unsubscribe", params={"token": token},
                     data={"List-Unsubscribe": "One-Click"})
    assert first.status_code == 200 and "C'est fait" in html.unescape(first.text)
    with plain_app.state.engine.connect() as conn:
        assert conn.execute(sa.select(bills_members.c.digest)
                            .where(bills_members.c.member_id == "bruno")).scalar() is False
    again = web.post("/bills/unsubscribe", params={"token": token})
    assert again.status_code == 200 and "déjà servi" in again.text
    assert "déjà servi" in web.get(f"/bills/unsubscribe?token={token}").text
    assert web.post("/bills/unsubscribe", params={"token": "not-a-token"}).status_code == 404
    # turned back on in the settings, the same link works again
    bruno = api(plain_app, "bruno")
    assert bruno.put("/api/members/bruno/billing", json={"digest": True}).json()["digest"] is True
    assert "Done" in TestClient(plain_app, headers={"accept-language": "en"}).post(
        "/bills/unsubscribe", params={"token": token}).text


def test_offers_and_wants_have_categories_and_expire(plain_app: Any) -> None:
    alice, bruno = api(plain_app, "alice"), api(plain_app, "bruno")
    jam = alice.post("/api/offers", json={"kind": "goods", "description": "Plum jam", "quantity": 500,
                                          "category": "food", "expires_in_days": 2}).json()
    fix = alice.post("/api/offers", json={"kind": "hours", "description": "Bike repairs", "quantity": 100,
                                          "category": "repairs"}).json()
    assert fix["expires_at"] - fix["created_at"] == 30 * 86_400  # the default month
    assert alice.post("/api/offers", json={"kind": "hours", "description": "x", "quantity": 1,
                                           "category": "astrology"}).status_code == 400
    assert [o["id"] for o in bruno.get("/api/offers", params={"category": "food"}).json()] == [jam["id"]]
    with plain_app.state.engine.begin() as conn:
        conn.execute(tables.offers.update().where(tables.offers.c.id == jam["id"]).values(expires_at=DAY1))
    assert [o["id"] for o in bruno.get("/api/offers").json()] == [fix["id"]]
    taken = bruno.post(f"/api/offers/{jam['id']}/take", json={"quantity": 100, "pay_unit": "KWH"})
    assert taken.status_code == 400 and taken.json()["detail"] == "This offer is no longer available."

    want = bruno.post("/api/wants", json={"kind": "hours", "description": "Help with maths homework",
                                          "quantity": 150, "category": "tutoring"}).json()
    assert want["kind"] == "want" and want["pay_unit"] == "HOUR"
    assert [w["id"] for w in alice.get("/api/wants", params={"category": "tutoring"}).json()] == [want["id"]]
    assert all(o["kind"] != "want" for o in alice.get("/api/offers").json())
    assert alice.post(f"/api/offers/{want['id']}/take", json={"quantity": 100, "pay_unit": "HOUR"}).status_code == 400
    trade = alice.post(f"/api/wants/{want['id']}/answer", json={"quantity": 150}).json()
    assert (trade["buyer"], trade["seller"], trade["status"], trade["pay_amount"]) == ("bruno", "alice", "awaiting", 150)
    assert alice.get("/api/wants").json() == []  # fully answered
    paid = bruno.post(f"/api/trades/{trade['id']}/confirm").json()
    assert paid["status"] == "settled"
    assert alice.get("/api/me/balances").json()[1]["balance"] == 150  # HOUR
    assert alice.delete(f"/api/offers/{fix['id']}").status_code == 204
    assert bruno.get("/api/offers").json() == []


def test_an_old_database_gains_the_new_columns(tmp_path: Path, seeded_file: Path) -> None:
    from community.app import services

    shutil.copy(seeded_file, tmp_path / "q.sqlite")
    engine = sa.create_engine(f"sqlite:///{tmp_path}/q.sqlite")
    with engine.begin() as conn:
        for column in ("category", "expires_at", "pay_unit"):
            conn.execute(sa.text(f"ALTER TABLE app_offers DROP COLUMN {column}"))
    services.init_app_tables(engine)
    services.init_app_tables(engine)  # twice: nothing left to add
    columns = {c["name"] for c in sa.inspect(engine).get_columns("app_offers")}
    assert {"category", "expires_at", "pay_unit"} <= columns
    engine.dispose()
