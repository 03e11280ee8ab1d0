"""Board controls every member can see: the ledger paused or running, frozen accounts,
each with its reason; the board pauses, resumes, freezes, unfreezes, sets the units'
ceilings and the community's privacy setting. Also the limits check before a payment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from community.app import controls, replacement, services
from community.app.fmt import Formatter, to_base
from community.app.ledger_ops import ops_of
from community.app.sessions import Account
from community.app.web import (
    Ctx,
    error_text,
    get_ctx,
    parse_number,
    render,
    require_account,
    require_board,
    require_member,
)

router = APIRouter()
api = APIRouter(prefix="/api", tags=["controls"])


def _page(ctx: Ctx, status_code: int = 200, **extra: object) -> HTMLResponse:
    with ctx.engine().connect() as conn:
        units = services.units(conn)
        return render(ctx, "pages/controls.html", "controls", status_code=status_code, st=controls.state(conn),
                      history=controls.history(conn), names=services.members(conn), units=units,
                      ceilings={u: controls.ceiling(conn, u) for u in units},
                      see_balances=controls.members_see_balances(conn),
                      replacements=replacement.all_pending(conn), **extra)


@router.get("/controls", response_class=HTMLResponse, include_in_schema=False)
def controls_page(done: str | None = None, ctx: Ctx = Depends(get_ctx),
                  account: Account = Depends(require_account)) -> HTMLResponse:
    return _page(ctx, notice=ctx.t("controls.done") if done else None)


def _run(ctx: Ctx, fn: Any) -> Response:
    try:
        with ctx.engine().begin() as conn:
            fn(conn)
    except services.ServiceError as exc:
        return _page(ctx, 400, error=error_text(ctx, exc.code, exc.field, exc.params))
    return RedirectResponse("/controls?done=1", status_code=303)


@router.post("/controls", include_in_schema=False)
def control_submit(action: str = Form(""), member: str = Form(""), reason: str = Form(""),
                   ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_board)) -> Response:
    return _run(ctx, lambda conn: controls.act(conn, action, reason, account.username, ctx.now(),
                                               member=member or None, ops=ops_of(ctx.settings)))


@router.post("/controls/settings", include_in_schema=False)
def settings_submit(see_balances: str = Form(""), ctx: Ctx = Depends(get_ctx),
                    account: Account = Depends(require_board)) -> Response:
    return _run(ctx, lambda conn: controls.set_setting(conn, controls.MEMBERS_SEE_BALANCES,
                                                       "yes" if see_balances else "no"))


@router.post("/controls/ceilings", include_in_schema=False)
def ceiling_submit(unit: str = Form(""), ceiling: str = Form(""), ctx: Ctx = Depends(get_ctx),
                   account: Account = Depends(require_board)) -> Response:
    def go(conn: Any) -> None:
        if unit not in services.units(conn):
            raise services.ServiceError("err.choice", "unit", choices=", ".join(services.units(conn)))
        value = to_base(unit, parse_number(ceiling, "ceiling")) if ceiling.strip() else None
        controls.set_ceiling(conn, unit, value)
    return _run(ctx, go)


# --- API ----------------------------------------------------------------------------------


class ControlOut(BaseModel):
    ts: int
    action: str
    member: str | None
    reason: str
    by: str
    tx_hash: str | None


class ControlsOut(BaseModel):
    paused: bool
    pause_reason: str | None
    frozen: dict[str, str] = Field(description="member -> reason")
    history: list[ControlOut]
    members_see_balances: bool


class ControlIn(BaseModel):
    action: str = Field(description="pause | resume | freeze | unfreeze")
    member: str | None = Field(None, description="freeze and unfreeze: the member")
    reason: str


class PrivacyIn(BaseModel):
    members_see_balances: bool


class CeilingIn(BaseModel):
    ceiling: int | None = Field(description="base units; null: no ceiling")


class CrossingOut(BaseModel):
    who: str = Field(description="payer | payee")
    limit: str = Field(description="floor | ceiling")
    unit: str
    after: int
    bound: int
    by: int
    message: str


def _out(conn: Any) -> ControlsOut:
    st = controls.state(conn)
    return ControlsOut(paused=st.paused, pause_reason=st.pause_reason, frozen=st.frozen,
                       history=[ControlOut.model_validate(h) for h in controls.history(conn)],
                       members_see_balances=controls.members_see_balances(conn))


@api.get("/controls", response_model=ControlsOut, summary="Pause and freezes with their reasons (every member)")
def api_controls(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> ControlsOut:
    with ctx.engine().connect() as conn:
        return _out(conn)


@api.post("/board/controls", response_model=ControlsOut, summary="Pause, resume, freeze or unfreeze, with a reason")
def api_act(body: ControlIn, ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_board)) -> ControlsOut:
    with ctx.engine().begin() as conn:
        controls.act(conn, body.action, body.reason, account.username, ctx.now(), member=body.member,
                     ops=ops_of(ctx.settings))
        return _out(conn)


@api.put("/board/settings/privacy", response_model=ControlsOut,
         summary="Whether members see each other's balances (off by default)")
def api_privacy(body: PrivacyIn, ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_board)) -> ControlsOut:
    with ctx.engine().begin() as conn:
        controls.set_setting(conn, controls.MEMBERS_SEE_BALANCES, "yes" if body.members_see_balances else "no")
        return _out(conn)


@api.put("/board/ceilings/{unit}", summary="A unit's ceiling for every account (without a ledger)")
def api_ceiling(unit: str, body: CeilingIn, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_board)) -> dict[str, int | None]:
    with ctx.engine().begin() as conn:
        if unit not in services.units(conn):
            raise services.ServiceError("err.choice", "unit", choices=", ".join(services.units(conn)))
        controls.set_ceiling(conn, unit, body.ceiling)
    return {unit: body.ceiling}


@api.get("/payments/check", response_model=list[CrossingOut],
         summary="Before paying: the floors and ceilings this payment would cross, and by how much")
def api_check(to: str, unit: str, amount: int, ctx: Ctx = Depends(get_ctx),
              account: Account = Depends(require_member)) -> list[CrossingOut]:
    f = Formatter(ctx.lang)
    with ctx.engine().connect() as conn:
        found = controls.crossings(conn, account.member_id or "", to, unit, amount, ops_of(ctx.settings))
    return [CrossingOut(who=c.who, limit=c.limit, unit=c.unit, after=c.after, bound=c.bound, by=c.by,
                        message=ctx.t(f"warn.{c.who}_{c.limit}", after=f.amount(c.unit, c.after),
                                      bound=f.amount(c.unit, c.bound), by=f.amount(c.unit, c.by)))
            for c in found]
