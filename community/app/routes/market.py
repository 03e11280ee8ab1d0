"""Market: offers of energy, hours and goods and wants (requests for a service or goods),
each with a category and an expiry (`community.app.listings`); buying at the community
rate in any unit; confirming a service or a delivery; history."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from community.app import listings, services
from community.app.exchange_trades import sign_energy_offer
from community.app.fmt import to_base
from community.app.relay import relayer_of
from community.app.sessions import Account
from community.app.web import Ctx, get_ctx, parse_number, render, require_member

router = APIRouter()
api = APIRouter(prefix="/api", tags=["market"])


def _page(ctx: Ctx, account: Account, status_code: int = 200, category: str | None = None,
          **extra: object) -> HTMLResponse:
    assert account.member_id
    category = category if category in listings.CATEGORIES else None
    with ctx.engine().connect() as conn:
        return render(ctx, "pages/market.html", "market", status_code=status_code,
                      offers=listings.market(conn, ctx.now(), category=category, wants=False),
                      wants=listings.market(conn, ctx.now(), category=category, wants=True),
                      categories=listings.CATEGORIES, category=category or "",
                      default_days=listings.DEFAULT_DAYS,
                      trades=services.trades_of(conn, account.member_id),
                      units=services.units(conn), names=services.members(conn), **extra)


@router.get("/market", response_class=HTMLResponse, include_in_schema=False)
def market_page(done: str | None = None, category: str | None = None, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_member)) -> HTMLResponse:
    notice = {"published": ctx.t("market.published"), "taken": ctx.t("market.taken"),
              "confirmed": ctx.t("market.confirmed"), "wanted": ctx.t("market.want_published"),
              "answered": ctx.t("market.answered"), "withdrawn": ctx.t("market.withdrawn"),
              }.get(done or "")
    return _page(ctx, account, category=category, notice=notice)


def _days(raw: str) -> int | None:
    if not raw.strip():
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise services.ServiceError("err.days", "days") from None


def _form_error(ctx: Ctx, account: Account, exc: services.ServiceError) -> HTMLResponse:
    from community.app.web import error_text

    return _page(ctx, account, status_code=400, error=error_text(ctx, exc.code, exc.field, exc.params))


@router.post("/market/offers", include_in_schema=False)
def offer_submit(kind: str = Form(""), description: str = Form(""), quantity: str = Form(""),
                 category: str = Form(""), days: str = Form(""), ctx: Ctx = Depends(get_ctx),
                 account: Account = Depends(require_member)) -> Response:
    assert account.member_id
    try:
        unit = services.KINDS.get(kind, "KWH")
        amount = to_base(unit, parse_number(quantity, "quantity"))
        with ctx.engine().begin() as conn:
            oid = listings.publish(conn, account.member_id, want=False, kind=kind, description=description,
                                   quantity=amount, now=ctx.now(), category=category, days=_days(days))
            sign_energy_offer(conn, relayer_of(ctx.settings), oid, ctx.now())  # the seller's consent, on chain
    except services.ServiceError as exc:
        return _form_error(ctx, account, exc)
    return RedirectResponse("/market?done=published", status_code=303)


@router.post("/market/wants", include_in_schema=False)
def want_submit(kind: str = Form(""), description: str = Form(""), quantity: str = Form(""),
                category: str = Form(""), days: str = Form(""), pay_unit: str = Form(""),
                ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_member)) -> Response:
    assert account.member_id
    try:
        unit = services.KINDS.get(kind, "HOUR")
        amount = to_base(unit, parse_number(quantity, "quantity"))
        with ctx.engine().begin() as conn:
            listings.publish(conn, account.member_id, want=True, kind=kind, description=description,
                             quantity=amount, now=ctx.now(), category=category, days=_days(days),
                             pay_unit=pay_unit or None)
    except services.ServiceError as exc:
        return _form_error(ctx, account, exc)
    return RedirectResponse("/market?done=wanted", status_code=303)


@router.post("/market/wants/{want_id}/answer", include_in_schema=False)
def answer_submit(want_id: int, quantity: str = Form(""), ctx: Ctx = Depends(get_ctx),
                  account: Account = Depends(require_member)) -> Response:
    assert account.member_id
    try:
        with ctx.engine().begin() as conn:
            want = listings.listing(conn, want_id, ctx.now())
            if want is None:
                raise services.ServiceError("err.offer", "offer")
            amount = to_base(str(want["unit"]), parse_number(quantity, "quantity"))
            listings.answer_want(conn, account.member_id, want_id, amount, ctx.now())
    except services.ServiceError as exc:
        return _form_error(ctx, account, exc)
    return RedirectResponse("/market?done=answered", status_code=303)


@router.post("/market/offers/{offer_id}/withdraw", include_in_schema=False)
def withdraw_submit(offer_id: int, ctx: Ctx = Depends(get_ctx),
                    account: Account = Depends(require_member)) -> Response:
    assert account.member_id
    try:
        with ctx.engine().begin() as conn:
            listings.withdraw(conn, account.member_id, offer_id)
    except services.ServiceError as exc:
        return _form_error(ctx, account, exc)
    return RedirectResponse("/market?done=withdrawn", status_code=303)


@router.post("/market/offers/{offer_id}/take", include_in_schema=False)
def take_submit(offer_id: int, quantity: str = Form(""), pay_unit: str = Form(""),
                ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_member)) -> Response:
    assert account.member_id
    try:
        with ctx.engine().begin() as conn:
            offer = listings.listing(conn, offer_id, ctx.now())
            if offer is None:
                raise services.ServiceError("err.offer", "offer")
            amount = to_base(str(offer["unit"]), parse_number(quantity, "quantity"))
            result = services.take_offer(conn, account.member_id, offer_id, amount, pay_unit, ctx.now(),
                                         relayer=relayer_of(ctx.settings))
    except services.ServiceError as exc:
        return _form_error(ctx, account, exc)
    if result["status"] == "settled":
        from community.app.fmt import Formatter

        f = Formatter(ctx.lang)
        return _page(ctx, account, notice=ctx.t(
            "market.bought", kwh=f.num(int(result["quantity"]) / 1000, 3),  # type: ignore[call-overload]
            amount=f.amount(str(result["pay_unit"]), int(result["pay_amount"])).rsplit("\u00a0", 1)[0],  # type: ignore[call-overload]
            unit=f.unit(str(result["pay_unit"]))))
    return RedirectResponse("/market?done=taken", status_code=303)


@router.post("/market/trades/{trade_id}/confirm", include_in_schema=False)
def confirm_submit(trade_id: int, ctx: Ctx = Depends(get_ctx),
                   account: Account = Depends(require_member)) -> Response:
    assert account.member_id
    try:
        with ctx.engine().begin() as conn:
            services.confirm_trade(conn, account.member_id, trade_id, ctx.now(),
                                   relayer=relayer_of(ctx.settings))
    except services.ServiceError as exc:
        return _form_error(ctx, account, exc)
    return RedirectResponse("/market?done=confirmed", status_code=303)


# --- API -----------------------------------------------------------------------------------


class OfferOut(BaseModel):
    id: int
    member_id: str
    kind: str = Field(description="energy | hours | goods, or want")
    description: str
    unit: str
    quantity: int
    status: str
    created_at: int
    category: str | None = None
    expires_at: int | None = Field(default=None, description="Unix seconds; off the market after")
    pay_unit: str | None = Field(default=None, description="wants: the unit the asker pays in")


CATEGORY_HELP = "one of " + ", ".join(listings.CATEGORIES)


class OfferIn(BaseModel):
    kind: str = Field(description="energy | hours | goods")
    description: str = Field(min_length=1, max_length=200)
    quantity: int = Field(gt=0, description="base units: Wh, 0.01 h or g")
    category: str | None = Field(default=None, description=CATEGORY_HELP)
    expires_in_days: int | None = Field(default=None, description="1 to 365, default 30")


class WantIn(BaseModel):
    kind: str = Field(description="hours | goods: what is asked for")
    description: str = Field(min_length=1, max_length=200)
    quantity: int = Field(gt=0, description="base units: 0.01 h or g")
    category: str | None = Field(default=None, description=CATEGORY_HELP)
    expires_in_days: int | None = Field(default=None, description="1 to 365, default 30")
    pay_unit: str | None = Field(default=None, description="KWH, HOUR or KG; default the unit asked for")


class AnswerIn(BaseModel):
    quantity: int = Field(gt=0, description="base units of the want's unit")


class TakeIn(BaseModel):
    quantity: int = Field(gt=0, description="base units of the offer's unit")
    pay_unit: str = Field(description="KWH, HOUR or KG: paid at the community's reference rate")


class TradeOut(BaseModel):
    id: int
    offer_id: int | None
    buyer: str
    seller: str
    unit: str
    quantity: int
    pay_unit: str
    pay_amount: int
    description: str
    status: str
    created_at: int
    confirmed_at: int | None


class QuoteOut(BaseModel):
    unit: str
    quantity: int
    pay_unit: str
    pay_amount: int


@api.get("/offers", response_model=list[OfferOut],
         summary="Offers of energy, hours and goods on the market (open, not expired)")
def api_offers(category: str | None = None, ctx: Ctx = Depends(get_ctx),
               account: Account = Depends(require_member)) -> list[OfferOut]:
    with ctx.engine().connect() as conn:
        return [OfferOut(**o) for o in listings.market(  # type: ignore[arg-type]
            conn, ctx.now(), category=listings.check_category(category), wants=False)]


@api.post("/offers", response_model=OfferOut, status_code=201, summary="Publish an offer")
def api_create_offer(body: OfferIn, ctx: Ctx = Depends(get_ctx),
                     account: Account = Depends(require_member)) -> OfferOut:
    assert account.member_id
    with ctx.engine().begin() as conn:
        oid = listings.publish(conn, account.member_id, want=False, kind=body.kind,
                               description=body.description, quantity=body.quantity, now=ctx.now(),
                               category=body.category, days=body.expires_in_days)
        sign_energy_offer(conn, relayer_of(ctx.settings), oid, ctx.now())
        return OfferOut(**listings.listing(conn, oid, ctx.now()))  # type: ignore[arg-type]


@api.delete("/offers/{offer_id}", status_code=204, summary="Withdraw my offer or want")
def api_withdraw(offer_id: int, ctx: Ctx = Depends(get_ctx),
                 account: Account = Depends(require_member)) -> Response:
    assert account.member_id
    with ctx.engine().begin() as conn:
        listings.withdraw(conn, account.member_id, offer_id)
    return Response(status_code=204)


@api.get("/wants", response_model=list[OfferOut],
         summary="Wants: requests for a service or goods on the market (open, not expired)")
def api_wants(category: str | None = None, ctx: Ctx = Depends(get_ctx),
              account: Account = Depends(require_member)) -> list[OfferOut]:
    with ctx.engine().connect() as conn:
        return [OfferOut(**o) for o in listings.market(  # type: ignore[arg-type]
            conn, ctx.now(), category=listings.check_category(category), wants=True)]


@api.post("/wants", response_model=OfferOut, status_code=201, summary="Ask for a service or goods")
def api_create_want(body: WantIn, ctx: Ctx = Depends(get_ctx),
                    account: Account = Depends(require_member)) -> OfferOut:
    assert account.member_id
    with ctx.engine().begin() as conn:
        oid = listings.publish(conn, account.member_id, want=True, kind=body.kind,
                               description=body.description, quantity=body.quantity, now=ctx.now(),
                               category=body.category, days=body.expires_in_days,
                               pay_unit=body.pay_unit)
        return OfferOut(**listings.listing(conn, oid, ctx.now()))  # type: ignore[arg-type]


@api.post("/wants/{want_id}/answer", response_model=TradeOut,
          summary="Do (part of) what a want asks: the asker confirms, then pays")
def api_answer(want_id: int, body: AnswerIn, ctx: Ctx = Depends(get_ctx),
               account: Account = Depends(require_member)) -> TradeOut:
    assert account.member_id
    with ctx.engine().begin() as conn:
        return TradeOut(**listings.answer_want(conn, account.member_id, want_id,  # type: ignore[arg-type]
                                               body.quantity, ctx.now()))


@api.get("/offers/{offer_id}/quote", response_model=QuoteOut,
         summary="What taking (part of) an offer costs in a unit, at the community rate")
def api_quote(offer_id: int, quantity: int, pay_unit: str, ctx: Ctx = Depends(get_ctx),
              account: Account = Depends(require_member)) -> QuoteOut:
    with ctx.engine().connect() as conn:
        offer = listings.listing(conn, offer_id, ctx.now())
        us = services.units(conn)
        if offer is None or offer["kind"] == listings.WANT:
            raise services.ServiceError("err.offer", "offer")
        if pay_unit not in us:
            raise services.ServiceError("err.choice", "pay_unit", choices=", ".join(us))
        unit = str(offer["unit"])
        return QuoteOut(unit=unit, quantity=quantity, pay_unit=pay_unit,
                        pay_amount=services.price_in(quantity, us[unit], us[pay_unit]))


@api.post("/offers/{offer_id}/take", response_model=TradeOut,
          summary="Take an offer: energy settles at once (two legs); hours and goods await confirmation")
def api_take(offer_id: int, body: TakeIn, ctx: Ctx = Depends(get_ctx),
             account: Account = Depends(require_member)) -> TradeOut:
    assert account.member_id
    with ctx.engine().begin() as conn:
        return TradeOut(**services.take_offer(conn, account.member_id, offer_id, body.quantity,  # type: ignore[arg-type]
                                              body.pay_unit, ctx.now(),
                                              relayer=relayer_of(ctx.settings)))


@api.post("/trades/{trade_id}/confirm", response_model=TradeOut,
          summary="Confirm a service received or a delivery: pays the provider")
def api_confirm(trade_id: int, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_member)) -> TradeOut:
    assert account.member_id
    with ctx.engine().begin() as conn:
        return TradeOut(**services.confirm_trade(conn, account.member_id, trade_id, ctx.now(),  # type: ignore[arg-type]
                                                relayer=relayer_of(ctx.settings)))


@api.get("/trades", response_model=list[TradeOut], summary="My trades, as buyer or seller")
def api_trades(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_member)) -> list[TradeOut]:
    assert account.member_id
    with ctx.engine().connect() as conn:
        return [TradeOut(**tr) for tr in services.trades_of(conn, account.member_id)]  # type: ignore[arg-type]
