"""Log in, log out, language switch; the API's token login and `me`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from community.app import i18n, security
from community.app import sessions as sess
from community.app.web import (
    LANG_COOKIE,
    SESSION_COOKIE,
    Ctx,
    ensure_session,
    get_ctx,
    render,
    require_account,
    set_session_cookie,
)

router = APIRouter()
api = APIRouter(prefix="/api", tags=["account"])


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _throttle_keys(request: Request, username: str) -> list[str]:
    return [f"user:{username.lower()}", f"ip:{_client(request)}"]


@router.get("/login", include_in_schema=False)
def login_page(next: str = "/", ctx: Ctx = Depends(get_ctx)) -> Response:
    if ctx.account is not None:
        return RedirectResponse(security.safe_next(next), status_code=303)
    ensure_session(ctx)
    return render(ctx, "pages/login.html", "login", next=security.safe_next(next))


def _login(ctx: Ctx, username: str, password: str) -> tuple[sess.Session | None, str, int]:
    """A new session for good credentials, or the message and HTTP status to answer."""
    request, settings = ctx.request, ctx.settings
    throttle: security.LoginThrottle = request.app.state.throttle
    keys = _throttle_keys(request, username)
    now = time.monotonic()
    wait = throttle.retry_after(keys, now)
    if wait > 0:
        return None, ctx.t("login.throttled", minutes=max(1, round(wait / 60))), 429
    with ctx.engine().begin() as conn:
        account = sess.authenticate(conn, username, password)
        if account is None:
            throttle.failed(keys, now)
            return None, ctx.t("login.failed"), 401
        throttle.succeeded(keys)
        sess.purge_expired(conn, now=int(time.time()))  # anonymous sessions of the login form
        previous = ctx.session.token if ctx.session and not ctx.via_bearer else None
        return sess.start_session(conn, account, now=int(time.time()), ttl_s=settings.session_ttl_s,
                                  previous_token=previous), "", 200


@router.post("/login", include_in_schema=False)
def login_submit(username: str = Form(""), password: str = Form(""), next: str = Form("/"),
                 ctx: Ctx = Depends(get_ctx)) -> Response:
    session, message, status = _login(ctx, username.strip(), password)
    if session is None:
        return render(ctx, "pages/login.html", "login", status_code=status, error=message,
                      username=username, next=security.safe_next(next), needs_form=True)
    response = RedirectResponse(security.safe_next(next), status_code=303)
    set_session_cookie(response, ctx, session.token)
    return response


@router.post("/logout", include_in_schema=False)
def logout(ctx: Ctx = Depends(get_ctx)) -> Response:
    if ctx.session is not None:
        with ctx.engine().begin() as conn:
            sess.end_session(conn, ctx.session.token)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}", include_in_schema=False)
def switch_lang(code: str, next: str = "/", ctx: Ctx = Depends(get_ctx)) -> Response:
    response = RedirectResponse(security.safe_next(next), status_code=303)
    if code in i18n.LANGS:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax",
                            secure=ctx.settings.https, httponly=True, path="/")
    return response


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    token: str
    token_type: str = "bearer"
    username: str
    role: str
    member_id: str | None
    csrf: str


@api.post("/login", response_model=TokenOut, summary="Log in and get a bearer token")
def api_login(body: LoginBody, ctx: Ctx = Depends(get_ctx)) -> TokenOut | Response:
    from fastapi.responses import JSONResponse

    session, message, status = _login(ctx, body.username.strip(), body.password)
    if session is None or session.account is None:
        return JSONResponse({"detail": message}, status_code=status)
    account = session.account
    return TokenOut(token=session.token, username=account.username, role=account.role,
                    member_id=account.member_id, csrf=session.csrf)


@api.post("/logout", summary="End this session or token")
def api_logout(ctx: Ctx = Depends(get_ctx)) -> dict[str, bool]:
    if ctx.session is not None:
        with ctx.engine().begin() as conn:
            sess.end_session(conn, ctx.session.token)
    return {"ok": True}


class MeOut(BaseModel):
    username: str
    display_name: str
    role: str
    member_id: str | None
    lang: str


@api.get("/me", response_model=MeOut, summary="Who is logged in")
def api_me(account: sess.Account = Depends(require_account), ctx: Ctx = Depends(get_ctx)) -> MeOut:
    return MeOut(username=account.username, display_name=account.display_name, role=account.role,
                 member_id=account.member_id, lang=ctx.lang)
