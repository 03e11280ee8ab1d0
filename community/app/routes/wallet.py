"""Wallet: balances per unit with floors, and the statement with reasons and transactions."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from community.app import services
from community.app.sessions import Account
from community.app.web import Ctx, get_ctx, may_view_account, render, require_account

router = APIRouter()
api = APIRouter(prefix="/api", tags=["wallet"])


def _member(ctx: Ctx, account: Account, member: str | None, what: str = "statement") -> str:
    target = member or account.member_id
    if not target:
        raise HTTPException(status_code=404, detail="no account to show")
    with ctx.engine().connect() as conn:
        allowed = may_view_account(account, target, conn, what)
    if not allowed:
        raise HTTPException(status_code=403, detail="only the member and the board see this account")
    return target


@router.get("/wallet", response_class=HTMLResponse, include_in_schema=False)
def wallet_page(member: str | None = None, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_account)) -> HTMLResponse:
    target = _member(ctx, account, member, "balances")
    with ctx.engine().connect() as conn:
        name = services.member_name(conn, target)
        if name is None and target != services.FUND:
            raise HTTPException(status_code=404, detail="no such member")
        # The community's "members see each other's balances" shows balances, never statements.
        full = may_view_account(account, target, conn, "statement")
        return render(ctx, "pages/wallet.html", "wallet", target=target, name=name or target,
                      balances=services.balances(conn, target),
                      entries=services.statement(conn, target) if full else [], names=services.members(conn))


class BalanceOut(BaseModel):
    unit: str
    balance: int
    floor: int
    available: int
    scale: int


class StatementEntryOut(BaseModel):
    ts: int
    unit: str
    amount: int
    reason: str
    counterparty: str | None
    ref: str | None
    tx_hash: str | None
    source: str


@api.get("/members/{member_id}/balances", response_model=list[BalanceOut],
         summary="Balances per unit with floors (the member and the board only)")
def api_balances(member_id: str, ctx: Ctx = Depends(get_ctx),
                 account: Account = Depends(require_account)) -> list[BalanceOut]:
    target = _member(ctx, account, member_id, "balances")
    with ctx.engine().connect() as conn:
        return [BalanceOut(unit=b.unit, balance=b.balance, floor=b.floor, available=b.available,
                           scale=services.unit_scale(b.unit)) for b in services.balances(conn, target)]


@api.get("/members/{member_id}/statement", response_model=list[StatementEntryOut],
         summary="Every movement with its reason and transaction (the member and the board only)")
def api_statement(member_id: str, ctx: Ctx = Depends(get_ctx),
                  account: Account = Depends(require_account)) -> list[StatementEntryOut]:
    target = _member(ctx, account, member_id)
    with ctx.engine().connect() as conn:
        return [StatementEntryOut(ts=int(e["ts"]), unit=str(e["unit"]), amount=int(e["amount"]),  # type: ignore[call-overload]
                                  reason=str(e["reason"]), counterparty=e["counterparty"],  # type: ignore[arg-type]
                                  ref=e["ref"], tx_hash=e["tx_hash"], source=str(e["source"]))  # type: ignore[arg-type]
                for e in services.statement(conn, target)]


@api.get("/me/balances", response_model=list[BalanceOut], summary="My balances per unit")
def api_my_balances(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> list[BalanceOut]:
    return api_balances(_member(ctx, account, None), ctx, account)


@api.get("/me/statement", response_model=list[StatementEntryOut], summary="My statement")
def api_my_statement(ctx: Ctx = Depends(get_ctx),
                     account: Account = Depends(require_account)) -> list[StatementEntryOut]:
    return api_statement(_member(ctx, account, None), ctx, account)
