"""My ledger account and its replacement: after a lost phone or key the member (or the
board, after an identity check) asks to move to a new address; after the delay, during
which the old key can cancel, everything moves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from community.app import replacement, services
from community.app.ledger_ops import ops_of
from community.app.relay import ledger_address
from community.app.sessions import Account
from community.app.web import Ctx, error_text, get_ctx, render, require_account

router = APIRouter()
api = APIRouter(prefix="/api", tags=["account"])


def _target(account: Account, member: str | None) -> str:
    target = member or account.member_id
    if not target:
        raise HTTPException(status_code=404, detail="name the member: ?member=")
    if target != account.member_id and not account.is_board:
        raise HTTPException(status_code=403, detail="only the member and the board see this")
    return target


def _state(ctx: Ctx, conn: Any, member: str) -> dict[str, Any]:
    ops = ops_of(ctx.settings)
    key = ctx.settings.custody.get(conn, member) if ctx.settings.custody is not None else None
    pending = replacement.current(conn, member)
    chain_now = ops.now() if ops is not None else ctx.now()
    guardians, threshold = replacement.guardians_of(conn, member)
    guarding = [{"member": m, "pending": replacement.current(conn, m),
                 "approved": any(a["guardian"] == member for a in replacement.approvals_of(conn, m))}
                for m in replacement.guarded_by(conn, member)]
    return {"member": member, "address": ledger_address(conn, member), "mode": key.mode if key else None,
            "guardians": guardians, "threshold": threshold, "guarding": guarding,
            "approvals": len(replacement.approvals_of(conn, member)), "pending": pending, "ready": bool(pending and chain_now >= int(pending["ready_at"])),
            "history": replacement.of_member(conn, member), "on_ledger": ops is not None}


def _page(ctx: Ctx, account: Account, member: str, status_code: int = 200, **extra: object) -> HTMLResponse:
    with ctx.engine().connect() as conn:
        if services.member_name(conn, member) is None:
            raise HTTPException(status_code=404, detail="no such member")
        return render(ctx, "pages/account.html", "account", status_code=status_code, st=_state(ctx, conn, member),
                      name=services.member_name(conn, member), names=services.members(conn),
                      needs_form=True, **extra)


@router.get("/account", response_class=HTMLResponse, include_in_schema=False)
def account_page(member: str | None = None, done: str | None = None, ctx: Ctx = Depends(get_ctx),
                 account: Account = Depends(require_account)) -> HTMLResponse:
    notice = ctx.t(f"account.done.{done}") if done in ("requested", "cancelled", "executed", "guardians",
                                                        "approved") else None
    return _page(ctx, account, _target(account, member), notice=notice)


def _session_hash(ctx: Ctx) -> str | None:
    from community.app.security import token_digest

    return token_digest(ctx.session.token) if ctx.session else None


def _run(ctx: Ctx, account: Account, member: str, done: str, fn: Any) -> Response:
    try:
        with ctx.engine().begin() as conn:
            fn(conn)
    except services.ServiceError as exc:
        return _page(ctx, account, member, 400, error=error_text(ctx, exc.code, exc.field, exc.params))
    if done == "executed" and member == account.member_id:
        return RedirectResponse("/login", status_code=303)  # every session of the old account ended
    suffix = f"&member={member}" if member != account.member_id else ""
    return RedirectResponse(f"/account?done={done}{suffix}", status_code=303)


@router.post("/account/replacement", include_in_schema=False)
def request_submit(member: str = Form(""), address: str = Form(""), ctx: Ctx = Depends(get_ctx),
                   account: Account = Depends(require_account)) -> Response:
    target = _target(account, member or None)
    by_board = target != account.member_id
    return _run(ctx, account, target, "requested", lambda conn: replacement.request(
        conn, target, ctx.now(), by_board=by_board, ops=ops_of(ctx.settings), new_address=address or None,
        keep_session=_session_hash(ctx)))


@router.post("/account/replacement/cancel", include_in_schema=False)
def cancel_submit(member: str = Form(""), ctx: Ctx = Depends(get_ctx),
                  account: Account = Depends(require_account)) -> Response:
    target = _target(account, member or None)
    return _run(ctx, account, target, "cancelled", lambda conn: replacement.cancel(
        conn, target, ctx.now(), by=account.username, by_board=target != account.member_id,
        ops=ops_of(ctx.settings)))


@router.post("/account/replacement/execute", include_in_schema=False)
def execute_submit(member: str = Form(""), ctx: Ctx = Depends(get_ctx),
                   account: Account = Depends(require_account)) -> Response:
    target = _target(account, member or None)
    return _run(ctx, account, target, "executed", lambda conn: replacement.execute(
        conn, target, ctx.now(), by=account.username, ops=ops_of(ctx.settings)))


@router.post("/account/guardians", include_in_schema=False)
def guardians_submit(guardians: list[str] = Form([]), threshold: str = Form("1"), ctx: Ctx = Depends(get_ctx),
                     account: Account = Depends(require_account)) -> Response:
    target = _target(account, None)

    def go(conn: Any) -> None:
        try:
            needed = int(threshold)
        except ValueError:
            raise services.ServiceError("err.number", "threshold") from None
        replacement.set_guardians(conn, target, guardians, needed, ctx.now(), ops=ops_of(ctx.settings))
    return _run(ctx, account, target, "guardians", go)


@router.post("/account/replacement/approve", include_in_schema=False)
def approve_submit(member: str = Form(""), ctx: Ctx = Depends(get_ctx),
                   account: Account = Depends(require_account)) -> Response:
    me = _target(account, None)
    return _run(ctx, account, me, "approved", lambda conn: replacement.approve(
        conn, me, member, ctx.now(), ops=ops_of(ctx.settings)))


# --- API ----------------------------------------------------------------------------------


class ReplacementOut(BaseModel):
    member: str
    old_address: str
    new_address: str
    requested_by: str
    requested_at: int
    ready_at: int
    status: str
    tx_hash: str | None


class AccountOut(BaseModel):
    member: str
    address: str | None
    mode: str | None = Field(description="server: the community keeps the key; self: the member does")
    guardians: list[str]
    threshold: int = Field(description="how many guardians must approve a replacement")
    guarding: list[str] = Field(description="members who named me guardian")
    pending: ReplacementOut | None
    ready: bool
    history: list[ReplacementOut]


class ReplacementIn(BaseModel):
    member: str | None = Field(None, description="the board names the member; a member asks for themself")
    address: str | None = Field(None, description="a new address the member keeps; none: a new server-held key")


class MemberIn(BaseModel):
    member: str | None = None


def _rep(r: dict[str, Any]) -> ReplacementOut:
    return ReplacementOut(**{k: r[k] for k in ReplacementOut.model_fields})


def _account_out(st: dict[str, Any]) -> AccountOut:
    return AccountOut(member=st["member"], address=st["address"], mode=st["mode"], guardians=st["guardians"],
                      threshold=st["threshold"], guarding=[g["member"] for g in st["guarding"]],
                      pending=_rep(st["pending"]) if st["pending"] else None, ready=st["ready"],
                      history=[_rep(r) for r in st["history"]])


@api.get("/account", response_model=AccountOut, summary="My ledger account and its replacement (board: ?member=)")
def api_account(member: str | None = None, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_account)) -> AccountOut:
    target = _target(account, member)
    with ctx.engine().connect() as conn:
        return _account_out(_state(ctx, conn, target))


@api.post("/account/replacement", response_model=ReplacementOut,
          summary="Ask to replace the account's address (member: lost phone; board: after an identity check)")
def api_request(body: ReplacementIn, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_account)) -> ReplacementOut:
    target = _target(account, body.member)
    with ctx.engine().begin() as conn:
        return _rep(replacement.request(conn, target, ctx.now(), by_board=target != account.member_id,
                                        ops=ops_of(ctx.settings), new_address=body.address,
                                        keep_session=_session_hash(ctx)))


@api.post("/account/replacement/cancel", response_model=ReplacementOut, summary="Cancel during the delay")
def api_cancel(body: MemberIn, ctx: Ctx = Depends(get_ctx),
               account: Account = Depends(require_account)) -> ReplacementOut:
    target = _target(account, body.member)
    with ctx.engine().begin() as conn:
        return _rep(replacement.cancel(conn, target, ctx.now(), by=account.username,
                                       by_board=target != account.member_id, ops=ops_of(ctx.settings)))


@api.post("/account/replacement/execute", response_model=ReplacementOut, summary="Complete after the delay")
def api_execute(body: MemberIn, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_account)) -> ReplacementOut:
    target = _target(account, body.member)
    with ctx.engine().begin() as conn:
        return _rep(replacement.execute(conn, target, ctx.now(), by=account.username, ops=ops_of(ctx.settings)))


class GuardiansIn(BaseModel):
    guardians: list[str] = Field(description="up to 8 members; empty: none")
    threshold: int = Field(0, description="how many of them must approve")


class ApproveIn(BaseModel):
    member: str = Field(description="the member whose account is replaced")


@api.put("/account/guardians", response_model=AccountOut, summary="Name guardians who may approve a replacement")
def api_guardians(body: GuardiansIn, ctx: Ctx = Depends(get_ctx),
                  account: Account = Depends(require_account)) -> AccountOut:
    target = _target(account, None)
    with ctx.engine().begin() as conn:
        replacement.set_guardians(conn, target, body.guardians, body.threshold, ctx.now(), ops=ops_of(ctx.settings))
        return _account_out(_state(ctx, conn, target))


@api.post("/account/replacement/approve", summary="As a guardian, approve replacing a member's key by a new one")
def api_approve(body: ApproveIn, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_account)) -> dict[str, object]:
    me = _target(account, None)
    with ctx.engine().begin() as conn:
        out = replacement.approve(conn, me, body.member, ctx.now(), ops=ops_of(ctx.settings))
    return {k: out[k] for k in ("member", "new_address", "status") if k in out} | (
        {"ready_at": out["ready_at"]} if "ready_at" in out else {"approvals": out.get("approvals")})
