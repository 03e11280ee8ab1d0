"""Security of the web app over HTTP (Starlette's TestClient on the real app): privacy of
statements, CSRF, session fixation, open redirects, login throttling, cookie flags, and
clear messages for invalid input."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from community.app import AppSettings, create_app, tables
from community.app.web import SESSION_COOKIE

from .appsim import PASSWORD


def client(app: Any, lang: str = "en") -> TestClient:
    return TestClient(app, headers={"accept-language": lang}, follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def login(c: TestClient, user: str, password: str = PASSWORD, next: str = "/") -> Any:
    token = csrf_of(c.get("/login").text)
    return c.post("/login", data={"username": user, "password": password, "csrf": token, "next": next})


def test_a_member_sees_only_their_own_statement(plain_app: Any) -> None:
    bruno = client(plain_app)
    assert login(bruno, "bruno").status_code == 303
    assert bruno.get("/api/members/bruno/statement").status_code == 200
    assert bruno.get("/api/members/bruno/balances").status_code == 200
    for path in ("/api/members/alice/statement", "/api/members/alice/balances", "/wallet?member=alice"):
        r = bruno.get(path)
        assert r.status_code == 403, path
    assert "You may not see this page." in bruno.get("/wallet?member=alice").text
    # aggregates of everyone remain visible
    assert bruno.get("/api/neighbourhood").json()["members"] == 4
    # the board sees any account
    board = client(plain_app)
    login(board, "chloe")
    assert board.get("/api/members/alice/statement").status_code == 200
    assert board.get("/wallet?member=alice").status_code == 200
    # anonymous: nothing
    anon = client(plain_app)
    assert anon.get("/api/members/alice/statement").status_code == 401
    assert anon.get("/wallet").headers["location"] == "/login?next=/wallet"


def test_missing_or_wrong_csrf_is_refused(plain_app: Any) -> None:
    c = client(plain_app)
    login(c, "alice")
    form = {"kind": "energy", "description": "Surplus", "quantity": "5"}
    r = c.post("/market/offers", data=form)
    assert r.status_code == 403
    assert "This form has expired" in r.text
    assert c.post("/market/offers", data={**form, "csrf": "forged"}).status_code == 403
    assert c.post("/logout").status_code == 403
    # the API with a cookie session needs the header too
    assert c.post("/api/offers", json={"kind": "energy", "description": "x", "quantity": 5}).status_code == 403
    with plain_app.state.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.offers)).scalar_one() == 0
    token = csrf_of(c.get("/market").text)
    assert c.post("/market/offers", data={**form, "csrf": token}).status_code == 303
    r = c.post("/api/offers", json={"kind": "hours", "description": "Tutoring", "quantity": 200},
               headers={"X-CSRF-Token": token})
    assert r.status_code == 201
    # a bearer token (no ambient credential) needs no CSRF token
    api = TestClient(plain_app)
    tok = api.post("/api/login", json={"username": "bruno", "password": PASSWORD}).json()["token"]
    r = api.post("/api/donations/preview", json={"beneficiary": "david", "wh_per_day": 1000},
                 headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200 and r.json()["per_month_wh"] == 30_000


def test_session_fixation_is_not_possible(plain_app: Any) -> None:
    attacker = client(plain_app)
    attacker.get("/login")
    planted = attacker.cookies[SESSION_COOKIE]
    victim = client(plain_app)
    victim.cookies.set(SESSION_COOKIE, planted)
    page = victim.get("/login")
    r = victim.post("/login", data={"username": "alice", "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert r.status_code == 303
    fresh = r.cookies[SESSION_COOKIE]
    assert fresh != planted
    # the planted token is dead, the attacker is not logged in as alice
    attacker.cookies.set(SESSION_COOKIE, planted)
    assert attacker.get("/api/me").status_code == 401
    victim.cookies.set(SESSION_COOKIE, fresh)
    assert victim.get("/api/me").json()["member_id"] == "alice"
    # a made-up token is not adopted either
    other = client(plain_app)
    other.cookies.set(SESSION_COOKIE, "chosen-by-attacker")
    page = other.get("/login")
    r = other.post("/login", data={"username": "bruno", "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert r.cookies[SESSION_COOKIE] != "chosen-by-attacker"
    # logging out ends the session on the server
    victim.post("/logout", data={"csrf": csrf_of(victim.get("/market").text)})
    victim.cookies.set(SESSION_COOKIE, fresh)
    assert victim.get("/api/me").status_code == 401


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "/\\evil.example", "\\\\evil.example",
    "javascript:alert(1)", "http:evil.example", "/\r\nLocation: https://evil.example", "",
])
def test_open_redirects_are_not_possible(plain_app: Any, target: str) -> None:
    c = client(plain_app)
    r = login(c, "bruno", next=target)
    assert r.status_code == 303 and r.headers["location"] == "/"
    r = c.get("/lang/fr", params={"next": target})
    assert r.headers["location"] == "/"
    r = c.get("/login", params={"next": target})  # already logged in: redirected
    assert r.headers["location"] == "/"


def test_local_redirects_still_work(plain_app: Any) -> None:
    c = client(plain_app)
    assert login(c, "bruno", next="/market?x=1").headers["location"] == "/market?x=1"
    # an encoded CR LF stays encoded: a path on this site, no header injection
    r = c.get("/lang/fr", params={"next": "/%0d%0aLocation:%20https://evil.example"})
    assert r.headers["location"] == "/%0d%0aLocation:%20https://evil.example"
    assert c.get("/lang/en", params={"next": "/vote"}).headers["location"] == "/vote"


def test_login_is_rate_limited(plain_app: Any) -> None:
    c = client(plain_app)
    for _ in range(5):
        r = login(c, "david", password="wrong password")
        assert r.status_code == 401
        assert "Wrong user name or password." in r.text
    r = login(c, "david")  # even the right password, for now
    assert r.status_code == 429
    assert "Too many failed attempts. Try again in 15 minutes." in r.text
    r = TestClient(plain_app).post("/api/login", json={"username": "david", "password": PASSWORD})
    assert r.status_code == 429
    # another account from another client is not affected
    assert login(client(plain_app), "alice").status_code == 303


def test_cookies_and_headers(plain_app: Any) -> None:
    c = client(plain_app)
    r = login(c, "bruno")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    page = c.get("/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    with plain_app.state.engine.connect() as conn:
        stored = conn.execute(sa.select(tables.accounts.c.password_hash)).scalars().all()
    assert all(h.startswith("$argon2id$") for h in stored)

    url = str(plain_app.state.settings.database_url)
    tls = TestClient(create_app(AppSettings(database_url=url, https=True)), base_url="https://testserver",
                     follow_redirects=False)
    r = login(tls, "bruno")
    assert "Secure" in r.headers["set-cookie"]
    assert "max-age" in tls.get("/login").headers["strict-transport-security"]


def test_invalid_inputs_give_clear_messages(plain_app: Any) -> None:
    c = client(plain_app)
    login(c, "bruno")
    token = csrf_of(c.get("/market").text)
    r = c.post("/market/offers", data={"csrf": token, "kind": "energy", "description": "x", "quantity": "abc"})
    assert r.status_code == 400
    assert "Quantity must be a number, like 12 or 12.5." in r.text
    r = c.post("/market/offers", data={"csrf": token, "kind": "energy", "description": "", "quantity": "3"})
    assert "Description is required." in r.text
    r = c.post("/give", data={"csrf": token, "beneficiary": "zoe", "kind": "fixed", "amount": "2"})
    assert r.status_code == 400 and "There is no member zoe." in r.text
    r = c.post("/give", data={"csrf": token, "beneficiary": "david", "kind": "share", "amount": "150"})
    assert "Amount must be between 0 and 100." in r.text
    r = c.post("/vote/fund", data={"csrf": token, "solidarity": "50", "panels": "40"})
    assert "The shares must add up to 100 %, they add up to 90 %." in r.text
    r = c.get("/energy", params={"day": "2026-13-01"})
    assert r.status_code == 400 and "Day must be a date like 2026-05-01." in r.text

    # a purchase beyond the floor names the unit and the numbers
    alice = client(plain_app)
    login(alice, "alice")
    t2 = csrf_of(alice.get("/market").text)
    alice.post("/market/offers", data={"csrf": t2, "kind": "energy", "description": "Big", "quantity": "5000"})
    with plain_app.state.engine.connect() as conn:
        offer_id = conn.execute(sa.select(tables.offers.c.id)).scalar_one()
    r = c.post(f"/market/offers/{offer_id}/take", data={"csrf": token, "quantity": "3000", "pay_unit": "HOUR"})
    assert r.status_code == 400
    assert "This would take your HOUR balance to -3000, below your floor of -2000." in r.text

    # in French too
    fr = client(plain_app, "fr-FR,fr;q=0.9")
    login(fr, "bruno")
    tf = csrf_of(fr.get("/market").text)
    r = fr.post("/market/offers", data={"csrf": tf, "kind": "energy", "description": "x", "quantity": "douze"})
    assert "Quantité doit être un nombre, comme 12 ou 12,5." in r.text
    r = fr.post("/market/offers", data={"csrf": tf, "kind": "goods", "description": "Tomates", "quantity": "2,5"})
    assert r.status_code == 303

    # the API answers with the field and a sentence, in the language asked for
    api = TestClient(plain_app, headers={"accept-language": "en"})
    tok = api.post("/api/login", json={"username": "bruno", "password": PASSWORD}).json()["token"]
    auth = {"Authorization": f"Bearer {tok}"}
    r = api.post("/api/offers", json={"kind": "energy", "description": "x", "quantity": -5}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"].startswith("quantity: ")
    r = api.post("/api/offers", json={"kind": "boats", "description": "x", "quantity": 5}, headers=auth)
    assert r.status_code == 400 and r.json() == {
        "detail": "Kind must be one of: energy, hours, goods.", "field": "kind", "code": "err.choice"}
    r = api.post("/api/donations", json={"beneficiary": "bruno", "wh_per_day": 100}, headers=auth)
    assert r.status_code == 400 and r.json()["detail"] == "You cannot do this with yourself."


def test_home_is_public_and_bilingual_and_the_api_is_documented(plain_app: Any) -> None:
    en = client(plain_app, "en-GB,en;q=0.9").get("/")
    fr = client(plain_app, "fr-FR,fr;q=0.9").get("/")
    assert en.status_code == fr.status_code == 200
    assert "The neighbourhood now" in en.text and "Le quartier en ce moment" in fr.text
    assert '<html lang="fr">' in fr.text
    paths = " ".join(client(plain_app).get("/openapi.json").json()["paths"])
    for need in ("balance", "statement", "offer", "donat", "vote", "certificate"):
        assert need in paths
