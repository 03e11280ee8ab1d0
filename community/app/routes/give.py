"""Give: standing donation orders to a neighbour, with the effect shown before saving."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, model_validator

from community.app import services
from community.app.relay import relayer_of
from community.app.sessions import Account
from community.app.web import Ctx, error_text, get_ctx, parse_number, render, require_member

log = logging.getLogger("quartier.app.give")
router = APIRouter()
api = APIRouter(prefix="/api", tags=["donations"])


def _synced(ctx: Ctx, member_id: str) -> None:
    """The member's orders as the ledger has them (signed elsewhere, or cancelled there)."""
    relayer = relayer_of(ctx.settings)
    if relayer is None or relayer.orders is None:
        return
    try:
        with ctx.engine().begin() as conn:
            relayer.sync_orders(conn, member_id, ctx.now())
    except Exception as exc:  # the ledger is unreachable: show the orders as the app last knew them
        log.warning("standing orders of %s not synced with the ledger: %s", member_id, exc)


def _page(ctx: Ctx, account: Account, status_code: int = 200, **extra: object) -> HTMLResponse:
    assert account.member_id
    _synced(ctx, account.member_id)
    with ctx.engine().connect() as conn:
        names = services.members(conn)
        return render(ctx, "pages/give.html", "give", status_code=status_code,
                      orders=services.donation_orders(conn, account.member_id), names=names,
                      neighbours={m: n for m, n in names.items() if m != account.member_id}, **extra)


@router.get("/give", response_class=HTMLResponse, include_in_schema=False)
def give_page(done: str | None = None, ctx: Ctx = Depends(get_ctx),
              account: Account = Depends(require_member)) -> HTMLResponse:
    notice = {"saved": ctx.t("give.saved"), "cancelled": ctx.t("give.cancelled")}.get(done or "")
    return _page(ctx, account, notice=notice)


def _order(kind: str, amount: str) -> tuple[int, int]:
    value = parse_number(amount, "amount")
    if value <= 0:
        raise services.ServiceError("err.positive", "amount")
    if kind == "share":
        if value > 100:
            raise services.ServiceError("err.percent", "amount")
        return 0, round(value * 100)
    if kind != "fixed":
        raise services.ServiceError("err.choice", "kind", choices="fixed, share")
    return round(value * 1000), 0


@router.post("/give", include_in_schema=False)
def give_submit(beneficiary: str = Form(""), kind: str = Form("fixed"), amount: str = Form(""),
                action: str = Form("preview"), ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_member)) -> Response:
    """One form, two buttons: "show the effect" renders the estimate with the values kept;
    "save" stores the order."""
    assert account.member_id
    form = {"beneficiary": beneficiary, "kind": kind, "amount": amount}
    try:
        wh, bp = _order(kind, amount)
        with ctx.engine().begin() as conn:
            if action == "save":
                services.create_donation(conn, account.member_id, beneficiary, wh_per_day=wh,
                                         share_bp=bp, now=ctx.now(), relayer=relayer_of(ctx.settings))
            else:
                effect = services.preview_donation(conn, account.member_id, beneficiary,
                                                   wh_per_day=wh, share_bp=bp)
                name = services.member_name(conn, beneficiary) or beneficiary
    except services.ServiceError as exc:
        return _page(ctx, account, status_code=400, form=form,
                     error=error_text(ctx, exc.code, exc.field, exc.params))
    if action == "save":
        return RedirectResponse("/give?done=saved", status_code=303)
    from community.app.fmt import Formatter

    f = Formatter(ctx.lang)
    text = ctx.t("give.effect", kwh=f.num(effect.per_day_wh / 1000, 2),
                 month=f.num(effect.per_month_wh / 1000, 1), name=name)
    return _page(ctx, account, form=form, effect=effect, effect_text=text)


@router.post("/give/orders/{order_id}/cancel", include_in_schema=False)
def cancel_submit(order_id: int, ctx: Ctx = Depends(get_ctx),
                  account: Account = Depends(require_member)) -> Response:
    assert account.member_id
    try:
        with ctx.engine().begin() as conn:
            services.cancel_donation(conn, account.member_id, order_id, ctx.now(),
                                     relayer=relayer_of(ctx.settings))
    except services.ServiceError as exc:
        return _page(ctx, account, status_code=400, error=error_text(ctx, exc.code, exc.field, exc.params))
    return RedirectResponse("/give?done=cancelled", status_code=303)


class DonationIn(BaseModel):
    beneficiary: str = Field(min_length=1, max_length=64)
    wh_per_day: int = Field(0, ge=0, description="a fixed amount per day, Wh")
    share_bp: int = Field(0, ge=0, le=10_000, description="or a share of my export, 1/100 %")

    @model_validator(mode="after")
    def one_kind(self) -> DonationIn:
        if (self.wh_per_day > 0) == (self.share_bp > 0):
            raise ValueError("give either wh_per_day or share_bp (exactly one above 0)")
        return self


class DonationOut(BaseModel):
    id: int
    donor: str
    beneficiary: str
    wh_per_day: int
    share_bp: int
    created_at: int
    chain_order: int | None = Field(None, description="the order's id on the ledger, when signed there")


class EffectOut(BaseModel):
    beneficiary: str
    per_day_wh: int
    per_month_wh: int
    basis_days: int


@api.get("/donations", summary="My standing donation orders, given and received")
def api_donations(ctx: Ctx = Depends(get_ctx),
                  account: Account = Depends(require_member)) -> dict[str, list[DonationOut]]:
    assert account.member_id
    _synced(ctx, account.member_id)
    with ctx.engine().connect() as conn:
        orders = services.donation_orders(conn, account.member_id)
    return {k: [DonationOut(**o) for o in v] for k, v in orders.items()}  # type: ignore[arg-type]


@api.post("/donations/preview", response_model=EffectOut,
          summary="The effect of a standing order before saving it")
def api_preview(body: DonationIn, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_member)) -> EffectOut:
    assert account.member_id
    with ctx.engine().connect() as conn:
        e = services.preview_donation(conn, account.member_id, body.beneficiary,
                                      wh_per_day=body.wh_per_day, share_bp=body.share_bp)
    return EffectOut(beneficiary=e.beneficiary, per_day_wh=e.per_day_wh,
                     per_month_wh=e.per_month_wh, basis_days=e.basis_days)


@api.post("/donations", response_model=DonationOut, status_code=201, summary="Save a standing order")
def api_donate(body: DonationIn, ctx: Ctx = Depends(get_ctx),
               account: Account = Depends(require_member)) -> DonationOut:
    assert account.member_id
    with ctx.engine().begin() as conn:
        oid = services.create_donation(conn, account.member_id, body.beneficiary,
                                       wh_per_day=body.wh_per_day, share_bp=body.share_bp, now=ctx.now(),
                                       relayer=relayer_of(ctx.settings))
        order = next(o for o in services.donation_orders(conn, account.member_id)["given"] if o["id"] == oid)
    return DonationOut(**order)  # type: ignore[arg-type]


@api.delete("/donations/{order_id}", summary="Stop a standing order")
def api_stop(order_id: int, ctx: Ctx = Depends(get_ctx),
             account: Account = Depends(require_member)) -> dict[str, bool]:
    assert account.member_id
    with ctx.engine().begin() as conn:
        services.cancel_donation(conn, account.member_id, order_id, ctx.now(),
                                 relayer=relayer_of(ctx.settings))
    return {"ok": True}
