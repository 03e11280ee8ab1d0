"""Payment requests: ask a member (or anyone with the link) to pay; pay all or part, refuse,
withdraw; the link `/pay/{id}` and its QR code open the request on the payer's phone."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from pydantic import BaseModel, Field

from community.app import controls, payreqs, qr, services
from community.app.fmt import Formatter, to_base
from community.app.ledger_ops import ops_of
from community.app.sessions import Account
from community.app.web import Ctx, error_text, get_ctx, parse_number, render, require_account

router = APIRouter()
api = APIRouter(prefix="/api", tags=["requests"])

DAY_S = 86_400


def _requester(account: Account, for_fund: bool) -> str:
    if for_fund:
        if not account.is_board:
            raise HTTPException(status_code=403, detail="only the board asks on behalf of the fund")
        return services.FUND
    if not account.member_id:
        raise HTTPException(status_code=403, detail="this needs a member account")
    return account.member_id


def _visible(ctx: Ctx, account: Account, request_id: int) -> dict[str, Any]:
    with ctx.engine().connect() as conn:
        req = payreqs.get(conn, request_id)
    if not payreqs.may_see(req, account.member_id, account.is_board):
        raise HTTPException(status_code=403, detail="this request is between other members")
    return req


def _link(ctx: Ctx, req: dict[str, Any]) -> str:
    return payreqs.qr_text(str(ctx.request.base_url), req)


def _warnings(ctx: Ctx, conn: Any, payer: str, req: dict[str, Any], amount: int) -> list[str]:
    """What paying `amount` would do to both accounts' limits, said before paying."""
    if amount <= 0:
        return []
    out = []
    for c in controls.crossings(conn, payer, str(req["requester"]), str(req["unit"]), amount, ops_of(ctx.settings)):
        f = Formatter(ctx.lang)
        out.append(ctx.t(f"warn.{c.who}_{c.limit}", after=f.amount(c.unit, c.after), bound=f.amount(c.unit, c.bound),
                         by=f.amount(c.unit, c.by)))
    return out


# --- pages --------------------------------------------------------------------------------


def _list_page(ctx: Ctx, account: Account, status_code: int = 200, **extra: object) -> HTMLResponse:
    with ctx.engine().connect() as conn:
        mine = payreqs.of_member(conn, account.member_id) if account.member_id else {"made": [], "to_pay": []}
        return render(ctx, "pages/requests.html", "requests", status_code=status_code, mine=mine,
                      fund=payreqs.for_fund(conn) if account.is_board else [], units=services.units(conn),
                      names=services.members(conn), now=ctx.now(), needs_form=True, **extra)


@router.get("/requests", response_class=HTMLResponse, include_in_schema=False)
def requests_page(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> HTMLResponse:
    return _list_page(ctx, account)


@router.post("/requests", include_in_schema=False)
def request_submit(payer: str = Form(""), unit: str = Form(""), amount: str = Form(""), memo: str = Form(""),
                   days: str = Form("7"), for_fund: str = Form(""), ctx: Ctx = Depends(get_ctx),
                   account: Account = Depends(require_account)) -> Response:
    requester = _requester(account, bool(for_fund))
    try:
        base = to_base(unit, parse_number(amount, "amount"))
        valid = parse_number(days, "valid_days")
        with ctx.engine().begin() as conn:
            req = payreqs.create(conn, requester=requester, payer=payer or None, unit=unit, amount=base, memo=memo,
                                 expires_at=ctx.now() + int(valid * DAY_S), now=ctx.now(),
                                 created_by=account.username, ops=ops_of(ctx.settings))
    except services.ServiceError as exc:
        return _list_page(ctx, account, 400, error=error_text(ctx, exc.code, exc.field, exc.params),
                          form={"payer": payer, "unit": unit, "amount": amount, "memo": memo, "days": days})
    return RedirectResponse(f"/pay/{req['id']}?done=created", status_code=303)


def _pay_page(ctx: Ctx, account: Account, request_id: int, status_code: int = 200, **extra: object) -> HTMLResponse:
    req = _visible(ctx, account, request_id)
    link = _link(ctx, req)
    f = Formatter(ctx.lang)
    title = ctx.t("requests.qr_title", amount=f.amount(str(req["unit"]), int(req["amount"])))
    with ctx.engine().connect() as conn:
        me = account.member_id
        remaining = int(req["amount"]) - int(req["paid"])
        status = payreqs.shown_status(req, ctx.now())
        can_pay = bool(me) and status == "open" and me != req["requester"] and req["payer"] in (None, me)
        warnings = _warnings(ctx, conn, me, req, remaining) if can_pay and me else []
        return render(ctx, "pages/pay.html", "requests", status_code=status_code, req=req, link=link,
                      qr=Markup(qr.svg(link, title)), qr_title=title, status=status, remaining=remaining,
                      history=payreqs.history(conn, request_id), names=services.members(conn),
                      can_pay=can_pay, warnings=warnings,
                      can_refuse=status == "open" and me is not None and req["payer"] == me,
                      can_withdraw=status == "open" and (req["requester"] == me or (
                          req["requester"] == services.FUND and account.is_board)), **extra)


@router.get("/pay/{request_id}", response_class=HTMLResponse, include_in_schema=False)
def pay_page(request_id: int, done: str | None = None, ctx: Ctx = Depends(get_ctx),
             account: Account = Depends(require_account)) -> HTMLResponse:
    notice = ctx.t(f"requests.done.{done}") if done in ("created", "paid", "refused", "withdrawn") else None
    return _pay_page(ctx, account, request_id, notice=notice)


def _act(ctx: Ctx, account: Account, request_id: int, done: str, fn: Any) -> Response:
    try:
        with ctx.engine().begin() as conn:
            fn(conn)
    except services.ServiceError as exc:
        return _pay_page(ctx, account, request_id, 400, error=error_text(ctx, exc.code, exc.field, exc.params))
    return RedirectResponse(f"/pay/{request_id}?done={done}", status_code=303)


@router.post("/pay/{request_id}", include_in_schema=False)
def pay_submit(request_id: int, amount: str = Form(""), ctx: Ctx = Depends(get_ctx),
               account: Account = Depends(require_account)) -> Response:
    req = _visible(ctx, account, request_id)
    if not account.member_id:
        raise HTTPException(status_code=403, detail="this needs a member account")
    payer = account.member_id

    def go(conn: Any) -> None:
        base = to_base(str(req["unit"]), parse_number(amount, "amount"))
        payreqs.pay(conn, request_id, payer, base, ctx.now(), ops=ops_of(ctx.settings))
    return _act(ctx, account, request_id, "paid", go)


@router.post("/pay/{request_id}/refuse", include_in_schema=False)
def refuse_submit(request_id: int, ctx: Ctx = Depends(get_ctx),
                  account: Account = Depends(require_account)) -> Response:
    _visible(ctx, account, request_id)
    return _act(ctx, account, request_id, "refused", lambda conn: payreqs.refuse(
        conn, request_id, account.member_id or "", ctx.now(), ops=ops_of(ctx.settings)))


@router.post("/pay/{request_id}/withdraw", include_in_schema=False)
def withdraw_submit(request_id: int, ctx: Ctx = Depends(get_ctx),
                    account: Account = Depends(require_account)) -> Response:
    req = _visible(ctx, account, request_id)
    who = services.FUND if req["requester"] == services.FUND and account.is_board else account.member_id or ""
    return _act(ctx, account, request_id, "withdrawn", lambda conn: payreqs.withdraw(
        conn, request_id, who, ctx.now(), ops=ops_of(ctx.settings)))


@router.get("/pay/{request_id}/qr.svg", include_in_schema=False)
def qr_image(request_id: int, ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> Response:
    req = _visible(ctx, account, request_id)
    return Response(qr.svg(_link(ctx, req), f"request {request_id}"), media_type="image/svg+xml")


# --- API ----------------------------------------------------------------------------------


class RequestIn(BaseModel):
    payer: str | None = Field(None, description="the member asked to pay; none: anyone with the link")
    unit: str
    amount: int = Field(description="base units")
    memo: str = ""
    expires_at: int | None = Field(None, description="Unix seconds; default in 7 days")
    for_fund: bool = Field(False, description="the board asks on behalf of the community fund")


class RequestOut(BaseModel):
    id: int
    requester: str
    payer: str | None
    unit: str
    amount: int
    paid: int
    remaining: int
    memo: str
    status: str
    expires_at: int
    created_at: int
    chain_id: int | None
    tx_hash: str | None
    link: str


class EventOut(BaseModel):
    ts: int
    event: str
    member: str | None
    amount: int | None
    tx_hash: str | None


class RequestDetailOut(RequestOut):
    history: list[EventOut]
    warnings: list[str] = Field(description="limits that paying what remains would cross")


class PayIn(BaseModel):
    amount: int = Field(description="base units: all or part of what remains")


def _out(ctx: Ctx, req: dict[str, Any]) -> RequestOut:
    return RequestOut(id=req["id"], requester=req["requester"], payer=req["payer"], unit=req["unit"],
                      amount=req["amount"], paid=req["paid"], remaining=int(req["amount"]) - int(req["paid"]),
                      memo=req["memo"], status=payreqs.shown_status(req, ctx.now()), expires_at=req["expires_at"],
                      created_at=req["created_at"], chain_id=req["chain_id"], tx_hash=req["tx_hash"],
                      link=_link(ctx, req))


@api.get("/requests", summary="Requests I made and requests addressed to me (the board: also the fund's)")
def api_requests(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> dict[str, list[RequestOut]]:
    with ctx.engine().connect() as conn:
        mine = payreqs.of_member(conn, account.member_id) if account.member_id else {"made": [], "to_pay": []}
        fund = payreqs.for_fund(conn) if account.is_board else []
    return {"made": [_out(ctx, r) for r in mine["made"]], "to_pay": [_out(ctx, r) for r in mine["to_pay"]],
            "fund": [_out(ctx, r) for r in fund]}


@api.post("/requests", response_model=RequestOut, summary="Ask to be paid")
def api_create(body: RequestIn, ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> RequestOut:
    requester = _requester(account, body.for_fund)
    with ctx.engine().begin() as conn:
        req = payreqs.create(conn, requester=requester, payer=body.payer, unit=body.unit, amount=body.amount,
                             memo=body.memo, expires_at=body.expires_at or ctx.now() + 7 * DAY_S, now=ctx.now(),
                             created_by=account.username, ops=ops_of(ctx.settings))
    return _out(ctx, req)


@api.get("/requests/{request_id}", response_model=RequestDetailOut, summary="A request with its history")
def api_request(request_id: int, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_account)) -> RequestDetailOut:
    req = _visible(ctx, account, request_id)
    with ctx.engine().connect() as conn:
        history = [EventOut(ts=e["ts"], event=e["event"], member=e["member"], amount=e["amount"],
                            tx_hash=e["tx_hash"]) for e in payreqs.history(conn, request_id)]
        remaining = int(req["amount"]) - int(req["paid"])
        warnings = (_warnings(ctx, conn, account.member_id, req, remaining)
                    if account.member_id and account.member_id != req["requester"]
                    and payreqs.shown_status(req, ctx.now()) == "open" else [])
    return RequestDetailOut(**_out(ctx, req).model_dump(), history=history, warnings=warnings)


@api.post("/requests/{request_id}/pay", response_model=RequestOut, summary="Pay all or part of a request")
def api_pay(request_id: int, body: PayIn, ctx: Ctx = Depends(get_ctx),
            account: Account = Depends(require_account)) -> RequestOut:
    _visible(ctx, account, request_id)
    if not account.member_id:
        raise HTTPException(status_code=403, detail="this needs a member account")
    with ctx.engine().begin() as conn:
        return _out(ctx, payreqs.pay(conn, request_id, account.member_id, body.amount, ctx.now(),
                                     ops=ops_of(ctx.settings)))


@api.post("/requests/{request_id}/refuse", response_model=RequestOut, summary="Refuse a request made to me")
def api_refuse(request_id: int, ctx: Ctx = Depends(get_ctx),
               account: Account = Depends(require_account)) -> RequestOut:
    _visible(ctx, account, request_id)
    with ctx.engine().begin() as conn:
        return _out(ctx, payreqs.refuse(conn, request_id, account.member_id or "", ctx.now(),
                                        ops=ops_of(ctx.settings)))


@api.post("/requests/{request_id}/withdraw", response_model=RequestOut, summary="Withdraw my request")
def api_withdraw(request_id: int, ctx: Ctx = Depends(get_ctx),
                 account: Account = Depends(require_account)) -> RequestOut:
    req = _visible(ctx, account, request_id)
    who = services.FUND if req["requester"] == services.FUND and account.is_board else account.member_id or ""
    with ctx.engine().begin() as conn:
        return _out(ctx, payreqs.withdraw(conn, request_id, who, ctx.now(), ops=ops_of(ctx.settings)))


@api.get("/requests/{request_id}/qr.svg", summary="The request's QR code (SVG): its link with unit, amount, memo",
         response_class=Response)
def api_qr(request_id: int, request: Request, ctx: Ctx = Depends(get_ctx),
           account: Account = Depends(require_account)) -> Response:
    return qr_image(request_id, ctx, account)
