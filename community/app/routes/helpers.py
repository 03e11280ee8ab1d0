"""Helpers: grant another member the right to pay for me up to a monthly amount, or to see
my account, until a date, revocable; pay for the members I help."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from community.app import helping, services
from community.app.fmt import to_base
from community.app.ledger_ops import ops_of
from community.app.sessions import Account
from community.app.web import Ctx, error_text, get_ctx, parse_number, render, require_member

router = APIRouter()
api = APIRouter(prefix="/api", tags=["helpers"])

DAY_S = 86_400


def _page(ctx: Ctx, account: Account, status_code: int = 200, **extra: object) -> HTMLResponse:
    assert account.member_id
    with ctx.engine().connect() as conn:
        return render(ctx, "pages/helpers.html", "helpers", status_code=status_code,
                      given=helping.grants_of(conn, account.member_id, ctx.now()),
                      held=helping.helping(conn, account.member_id, ctx.now()),
                      units=services.units(conn), names=services.members(conn), **extra)


@router.get("/helpers", response_class=HTMLResponse, include_in_schema=False)
def helpers_page(done: str | None = None, ctx: Ctx = Depends(get_ctx),
                 account: Account = Depends(require_member)) -> HTMLResponse:
    notice = ctx.t(f"helpers.done.{done}") if done in ("granted", "revoked", "paid") else None
    return _page(ctx, account, notice=notice)


def _run(ctx: Ctx, account: Account, done: str, fn: Any, form: dict[str, str] | None = None) -> Response:
    try:
        with ctx.engine().begin() as conn:
            fn(conn)
    except services.ServiceError as exc:
        return _page(ctx, account, 400, error=error_text(ctx, exc.code, exc.field, exc.params), form=form or {})
    return RedirectResponse(f"/helpers?done={done}", status_code=303)


@router.post("/helpers/grants", include_in_schema=False)
def grant_submit(helper: str = Form(""), kind: str = Form("pay"), unit: str = Form("HOUR"),
                 monthly: str = Form(""), days: str = Form("90"), ctx: Ctx = Depends(get_ctx),
                 account: Account = Depends(require_member)) -> Response:
    member = account.member_id or ""

    def go(conn: Any) -> None:
        amount = to_base(unit, parse_number(monthly, "monthly")) if kind == "pay" else 0
        valid = parse_number(days, "valid_days")
        helping.grant(conn, member, helper, kind, unit=unit, monthly=amount,
                      expires_at=ctx.now() + int(valid * DAY_S), now=ctx.now(), ops=ops_of(ctx.settings))
    return _run(ctx, account, "granted", go, {"helper": helper, "kind": kind, "unit": unit, "monthly": monthly,
                                              "days": days})


@router.post("/helpers/grants/{grant_id}/revoke", include_in_schema=False)
def revoke_submit(grant_id: int, ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_member)) -> Response:
    return _run(ctx, account, "revoked", lambda conn: helping.revoke(
        conn, account.member_id or "", grant_id, ctx.now(), ops=ops_of(ctx.settings)))


@router.post("/helpers/pay", include_in_schema=False)
def pay_for_submit(member: str = Form(""), to: str = Form(""), unit: str = Form("HOUR"), amount: str = Form(""),
                   memo: str = Form(""), ctx: Ctx = Depends(get_ctx),
                   account: Account = Depends(require_member)) -> Response:
    def go(conn: Any) -> None:
        base = to_base(unit, parse_number(amount, "amount"))
        helping.pay_for(conn, account.member_id or "", member, to, unit, base, ctx.now(), memo=memo,
                        ops=ops_of(ctx.settings))
    return _run(ctx, account, "paid", go)


# --- API ----------------------------------------------------------------------------------


class GrantIn(BaseModel):
    helper: str
    kind: str = Field(description="pay (pay for me, and see my account) or view (read-only)")
    unit: str | None = Field(None, description="pay grants: the unit")
    monthly: int = Field(0, description="pay grants: base units per UTC calendar month")
    expires_at: int = Field(description="Unix seconds")


class GrantOut(BaseModel):
    id: int
    member: str
    helper: str
    kind: str
    unit: str | None
    monthly: int
    spent: int = Field(description="paid by the helper this month")
    expires_at: int
    tx_hash: str | None


class PayForIn(BaseModel):
    member: str = Field(description="whom I pay for")
    to: str
    unit: str
    amount: int = Field(description="base units")
    memo: str = ""


class PaidForOut(BaseModel):
    member: str
    helper: str
    to: str
    unit: str
    amount: int
    spent: int
    monthly: int
    tx_hash: str | None


def _grant_out(g: dict[str, Any]) -> GrantOut:
    return GrantOut(id=g["id"], member=g["member"], helper=g["helper"], kind=g["kind"], unit=g["unit"],
                    monthly=g["monthly"], spent=g.get("spent", 0), expires_at=g["expires_at"], tx_hash=g["tx_hash"])


@api.get("/helpers", summary="Who helps me (given) and whom I help (held)")
def api_helpers(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_member)) -> dict[str, list[GrantOut]]:
    assert account.member_id
    with ctx.engine().connect() as conn:
        return {"given": [_grant_out(g) for g in helping.grants_of(conn, account.member_id, ctx.now())],
                "held": [_grant_out(g) for g in helping.helping(conn, account.member_id, ctx.now())]}


@api.post("/helpers/grants", response_model=GrantOut, summary="Let a member pay for me or see my account")
def api_grant(body: GrantIn, ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_member)) -> GrantOut:
    assert account.member_id
    with ctx.engine().begin() as conn:
        return _grant_out(helping.grant(conn, account.member_id, body.helper, body.kind, unit=body.unit,
                                        monthly=body.monthly, expires_at=body.expires_at, now=ctx.now(),
                                        ops=ops_of(ctx.settings)))


@api.delete("/helpers/grants/{grant_id}", status_code=204, response_class=Response, summary="Revoke a grant")
def api_revoke(grant_id: int, ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_member)) -> Response:
    with ctx.engine().begin() as conn:
        helping.revoke(conn, account.member_id or "", grant_id, ctx.now(), ops=ops_of(ctx.settings))
    return Response(status_code=204)


@api.post("/helpers/pay", response_model=PaidForOut, summary="Pay on behalf of a member who granted me")
def api_pay_for(body: PayForIn, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_member)) -> PaidForOut:
    with ctx.engine().begin() as conn:
        return PaidForOut(**helping.pay_for(conn, account.member_id or "", body.member, body.to, body.unit,
                                            body.amount, ctx.now(), memo=body.memo, ops=ops_of(ctx.settings)))
