"""What every page and API route shares: the request context (who, which language, which
CSRF token), the CSRF guard, rendering, and the errors the pages show."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from community.app import i18n, security
from community.app import sessions as sess
from community.app.settings import AppSettings

SESSION_COOKIE = "quartier_session"
LANG_COOKIE = "quartier_lang"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# JSON login hands back a bearer token and sets no cookie: nothing ambient to forge.
# The digest's one-click unsubscribe (RFC 8058) is authorised by the token in its URL.
CSRF_EXEMPT = frozenset({"/api/login", "/bills/unsubscribe"})

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))


class FormError(ValueError):
    """Input a person must correct: `field` names the form field, the message says how."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class Forbidden(Exception):
    pass


@dataclass
class Ctx:
    request: Request
    settings: AppSettings
    lang: str
    session: sess.Session | None
    via_bearer: bool = False
    new_cookie: str | None = None  # a session started during this request
    flashes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def account(self) -> sess.Account | None:
        return self.session.account if self.session else None

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""

    def t(self, key: str, **params: object) -> str:
        return i18n.translate(self.lang, key, **params)

    def engine(self) -> sa.Engine:
        return self.request.app.state.engine  # type: ignore[no-any-return]

    def now(self) -> int:
        return int(time.time())


def _now() -> int:
    return int(time.time())


def lang_for(request: Request, settings: AppSettings) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in i18n.LANGS:
        return chosen  # type: ignore[return-value]
    return i18n.negotiate(request.headers.get("accept-language"), settings.default_lang)


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def get_ctx(request: Request) -> Ctx:
    settings: AppSettings = request.app.state.settings
    cached = getattr(request.state, "ctx", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    bearer = _bearer(request)
    token = bearer or request.cookies.get(SESSION_COOKIE)
    session = None
    if token:
        with request.app.state.engine.connect() as conn:
            session = sess.load_session(conn, token, now=_now())
    ctx = Ctx(request, settings, lang_for(request, settings), session, via_bearer=bearer is not None)
    if ctx.account and ctx.account.lang and LANG_COOKIE not in request.cookies:
        ctx.lang = ctx.account.lang
    request.state.ctx = ctx
    return ctx


def ensure_session(ctx: Ctx) -> sess.Session:
    """An (anonymous) session so that a form can carry a CSRF token."""
    if ctx.session is None:
        with ctx.engine().begin() as conn:
            ctx.session = sess.start_session(conn, None, now=_now(), ttl_s=ctx.settings.session_ttl_s)
        ctx.new_cookie = ctx.session.token
    return ctx.session


async def csrf_guard(request: Request, ctx: Ctx = Depends(get_ctx)) -> None:
    """On every state-changing request: the session's CSRF token must come back, in the
    form field `csrf` or the `X-CSRF-Token` header. Bearer-token API calls carry no
    ambient credential and need none."""
    if request.method not in UNSAFE_METHODS or request.url.path in CSRF_EXEMPT or ctx.via_bearer:
        return
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if ctx.session is None or not security.tokens_equal(sent, ctx.session.csrf):
        raise HTTPException(status_code=403, detail=ctx.t("common.csrf"))


def require_account(ctx: Ctx = Depends(get_ctx)) -> sess.Account:
    if ctx.account is None:
        raise HTTPException(status_code=401, detail="log in first")
    return ctx.account


def require_member(account: sess.Account = Depends(require_account)) -> sess.Account:
    if not account.member_id:
        raise HTTPException(status_code=403, detail="this needs a member account")
    return account


def require_board(account: sess.Account = Depends(require_account)) -> sess.Account:
    if not account.is_board:
        raise HTTPException(status_code=403, detail="this needs a board account")
    return account


def db(request: Request) -> Iterator[sa.Connection]:
    """One transaction per request: committed when the route returns, rolled back on error."""
    with request.app.state.engine.begin() as conn:
        yield conn


NAV = (
    ("home", "/", "nav.home", None),
    ("energy", "/energy", "nav.energy", "member"),
    ("wallet", "/wallet", "nav.wallet", "member"),
    ("market", "/market", "nav.market", "member"),
    ("give", "/give", "nav.give", "member"),
    ("vote", "/vote", "nav.vote", "member"),
    ("statements", "/statements", "nav.statements", "member_or_board"),
    ("certificates", "/certificates", "nav.certificates", "any"),
    ("requests", "/requests", "nav.requests", "member"),
    ("helpers", "/helpers", "nav.helpers", "member"),
    ("account", "/account", "nav.account", "member"),
    ("controls", "/controls", "nav.controls", "any"),
    ("board", "/board", "nav.board", "board"),
)


def nav_for(account: sess.Account | None) -> list[tuple[str, str, str]]:
    out = []
    for name, href, label, need in NAV:
        if need is None:
            out.append((name, href, label))
        elif account is None:
            continue
        elif need == "any" or (need == "member" and account.member_id) or (
                need == "board" and account.is_board) or (
                need == "member_or_board" and (account.member_id or account.is_board)):
            out.append((name, href, label))
    return out


def set_session_cookie(response: Any, ctx: Ctx, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=ctx.settings.session_ttl_s, httponly=True,
                        samesite="lax", secure=ctx.settings.https, path="/")


def render(ctx: Ctx, template: str, page: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    from community.app import fmt

    needs_form = values.pop("needs_form", False)
    if ctx.account is not None or needs_form:
        ensure_session(ctx)
    response = TEMPLATES.TemplateResponse(
        ctx.request, template,
        {"ctx": ctx, "t": ctx.t, "lang": ctx.lang, "page": page, "account": ctx.account,
         "csrf": ctx.csrf, "nav": nav_for(ctx.account), "fmt": fmt.Formatter(ctx.lang),
         "Markup": Markup, **values},
        status_code=status_code)
    if ctx.new_cookie:
        set_session_cookie(response, ctx, ctx.new_cookie)
    return response


# Form field -> the label the message names, so errors read "Quantity must be ..." in
# the page's language.
FIELD_LABELS = {
    "quantity": "market.quantity", "kwh": "market.kwh", "description": "market.description",
    "kind": "market.kind", "pay_unit": "market.pay_with", "offer": "market.offers",
    "amount": "give.amount", "beneficiary": "give.to", "choice": "vote.cast",
    "title": "vote.proposal_title", "day": "energy.day", "from": "cert.from", "to": "cert.to",
    "meter_point": "cert.meter_point", "trade": "market.history", "order": "give.orders",
    "proposal": "vote.proposals", "days": "vote.closes", "shares": "vote.fund.mine",
}
FIELD_LABELS.update(i18n.ACCOUNT_FIELD_LABELS)  # requests, helpers, replacement, controls


def error_text(ctx: Ctx, code: str, field: str, params: dict[str, object]) -> str:
    label = ctx.t(FIELD_LABELS[field]) if field in FIELD_LABELS else ctx.t(f"fund.{field}") if field else ""
    values = {"field": label, **params}
    if "unit" in values:
        values["unit"] = str(values["unit"])
    text = ctx.t(code, **values)
    return text[:1].upper() + text[1:]


def parse_number(raw: str | None, field: str) -> float:
    """A number as people type it: "12", "12.5" or "12,5" (French decimal comma)."""
    from community.app.services import ServiceError

    text = (raw or "").strip().replace("\u202f", "").replace(" ", "").replace(",", ".")
    if not text:
        raise ServiceError("err.required", field)
    try:
        value = float(text)
    except ValueError:
        raise ServiceError("err.number", field) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ServiceError("err.number", field)
    return value


def may_view_account(viewer: sess.Account, member_id: str, conn: sa.Connection | None = None,
                     what: str = "statement") -> bool:
    """A member's balances and statement: the member, the board and their helpers (any
    active grant). With the community's "members see each other's balances" setting, any
    member sees the balances (`what="balances"`), never the statement. Everyone else sees
    aggregates only."""
    if viewer.member_id == member_id or viewer.is_board:
        return True
    if conn is None or not viewer.member_id:
        return False
    from community.app import controls, helping

    if helping.may_view(conn, member_id, viewer.member_id, _now()):
        return True
    return what == "balances" and controls.members_see_balances(conn)
