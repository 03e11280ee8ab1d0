"""Monthly statements (the figures of `quartier bills`, PDF and CSV), the billing runs for
the board, members' billing settings, and the digest's unsubscribe link.

The page shows `community.bills.render.rows`, the very rows the PDF and the CSV are made
of, so the three always agree. A member sees their own statement; the board sees anyone's
(`web.may_view_account`).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from community.app import services
from community.app.sessions import Account
from community.app.web import Ctx, get_ctx, may_view_account, render, require_account, require_board
from community.bills import i18n as bills_i18n
from community.bills import ledger, runs
from community.bills import render as bills_render
from community.bills.schema import bills_credit_notes, bills_members
from community.bills.statement import BillsError, Statement, parse_tariff
from community.settlement import schema as settle

router = APIRouter()
api = APIRouter(prefix="/api", tags=["statements"])

SECTIONS = ("statement", "consumption", "sources", "production", "kwh", "balance", "tokens",
            "demurrage", "donations", "tariff")


# --- what the pages and the API share ---------------------------------------------------------


def settled_months(conn: sa.Connection) -> list[str]:
    """Months with at least one settled period, newest first."""
    p = settle.settle_periods
    starts = conn.execute(sa.select(p.c.period_start).where(p.c.status == "settled")).scalars()
    return sorted({ledger.month_of(int(s)) for s in starts}, reverse=True)


def _target(account: Account, member: str | None, conn: sa.Connection) -> str:
    """The member whose statement or settings are asked for: oneself by default; the board
    picks anyone (the first member when it has no member of its own)."""
    target = member or account.member_id
    if not target and account.is_board:
        target = next(iter(services.members(conn)), None)
    if not target:
        raise HTTPException(status_code=404, detail="no member to show")
    if not may_view_account(account, target):
        raise HTTPException(status_code=403, detail="only the member and the board see this statement")
    if services.member_name(conn, target) is None:
        raise HTTPException(status_code=404, detail="no such member")
    return target


def _month(conn: sa.Connection, month: str | None) -> str:
    if not month:
        return ledger.last_settled_month(conn) or ledger.month_of(_now())
    try:
        ledger.month_bounds(month)
    except BillsError:
        raise services.ServiceError("err.month", "month") from None
    return month


def _now() -> int:
    import time

    return int(time.time())


def _statement(conn: sa.Connection, member: str, month: str) -> Statement:
    return ledger.statement_for(conn, member, month)


def _lang(conn: sa.Connection, member: str, lang: str | None, fallback: str) -> str:
    """The statement's language: asked for, else the member's own setting, else the page's."""
    if lang in bills_i18n.LANGS:
        return lang  # type: ignore[return-value]
    if lang:
        raise services.ServiceError("err.lang", "lang")
    cfg = ledger.settings(conn).get(member)
    return cfg.lang if cfg else fallback


# What the PDF says where a section has nothing (community.bills.render).
EMPTY = {"sources": "no_sources", "tokens": "no_tokens", "donations": "no_donations",
         "tariff": "no_tariff"}


def _sections(s: Statement, lang: str) -> list[tuple[str, str, list[bills_render.Row], str]]:
    """(section, title, rows, what to say when there are none), in the PDF's order."""
    rows = bills_render.rows(s, lang)
    out = []
    for section in SECTIONS:
        mine = [r for r in rows if r.section == section]
        if mine or section in EMPTY:
            title = bills_i18n.t(lang, "title" if section == "statement" else section)
            out.append((section, title, mine, bills_i18n.t(lang, EMPTY[section]) if section in EMPTY else ""))
    return out


def _download(s: Statement, lang: str, kind: str, community: str) -> Response:
    stem = f"statement-{s.month}-{runs.safe_name(s.member)}-{lang}"
    if kind == "pdf":
        body: bytes = bills_render.render_pdf(s, lang, community=community)
        media = "application/pdf"
    else:
        body = bills_render.to_csv(s, lang).encode("utf-8")
        media = "text/csv; charset=utf-8"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{stem}.{kind}"'})


# --- pages ---------------------------------------------------------------------------------


@router.get("/statements", response_class=HTMLResponse, include_in_schema=False)
def statement_page(month: str | None = None, member: str | None = None, ctx: Ctx = Depends(get_ctx),
                   account: Account = Depends(require_account)) -> HTMLResponse:
    with ctx.engine().connect() as conn:
        target = _target(account, member, conn)
        chosen = _month(conn, month)
        s = _statement(conn, target, chosen)
        months = settled_months(conn)
        if chosen not in months:
            months = sorted({*months, chosen}, reverse=True)
        return render(ctx, "pages/statements.html", "statements", s=s, month=chosen, months=months,
                      target=target, sections=_sections(s, ctx.lang),
                      names=services.members(conn) if account.is_board else {})


@router.get("/statements/{month}/statement.{kind}", include_in_schema=False)
def statement_file(month: str, kind: str, member: str | None = None, lang: str | None = None,
                   ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> Response:
    return api_statement_file(month, kind, member, lang, ctx, account)


@router.get("/statements/runs", response_class=HTMLResponse, include_in_schema=False)
def runs_page(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_board)) -> HTMLResponse:
    with ctx.engine().connect() as conn:
        return render(ctx, "pages/statement_runs.html", "statements", runs=_runs(conn),
                      notes=_credit_notes(conn), names=services.members(conn))


def _settings_page(ctx: Ctx, conn: sa.Connection, target: str, status_code: int = 200,
                   **extra: Any) -> HTMLResponse:
    cfg = ledger.settings(conn).get(target) or ledger.MemberSettings(target)
    return render(ctx, "pages/billing_settings.html", "statements", status_code=status_code,
                  target=target, name=services.member_name(conn, target) or target, cfg=cfg,
                  tariff=(cfg.tariff_ct_kwh or "").replace(".", "," if ctx.lang == "fr" else "."),
                  **extra)


@router.get("/statements/settings", response_class=HTMLResponse, include_in_schema=False)
def settings_page(member: str | None = None, done: str | None = None, ctx: Ctx = Depends(get_ctx),
                  account: Account = Depends(require_account)) -> HTMLResponse:
    with ctx.engine().connect() as conn:
        target = _target(account, member, conn)
        return _settings_page(ctx, conn, target, notice=ctx.t("settings.saved") if done else None)


@router.post("/statements/settings", include_in_schema=False)
def settings_submit(member: str = Form(""), lang: str = Form(""), email: str = Form(""),
                    tariff: str = Form(""), name_consent: str = Form(""), digest: str = Form(""),
                    ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> Response:
    from community.app.web import error_text

    with ctx.engine().begin() as conn:
        target = _target(account, member or None, conn)
        try:
            save_settings(conn, target, lang=lang, email=email, tariff=tariff,
                          name_consent=bool(name_consent), digest=bool(digest))
        except services.ServiceError as exc:
            return _settings_page(ctx, conn, target, status_code=400,
                                  error=error_text(ctx, exc.code, exc.field, exc.params))
    suffix = f"&member={target}" if target != account.member_id else ""
    return RedirectResponse(f"/statements/settings?done=1{suffix}", status_code=303)


def save_settings(conn: sa.Connection, member: str, **values: Any) -> ledger.MemberSettings:
    """Check what a person typed (messages in their language), then store it."""
    if "lang" in values and values["lang"] not in bills_i18n.LANGS:
        raise services.ServiceError("err.lang", "lang")
    if "email" in values:
        email = (values["email"] or "").strip()
        local, at, domain = email.partition("@")
        if email and (not at or not local or "." not in domain or any(c.isspace() for c in email)):
            raise services.ServiceError("err.email", "email")
        values["email"] = email or None
    if "tariff" in values:
        raw = (values.pop("tariff") or "").strip().replace("\u202f", "").replace(" ", "")
        try:
            parse_tariff(raw)
        except BillsError:
            raise services.ServiceError("err.tariff", "tariff") from None
        values["tariff_ct_kwh"] = raw or None
    return ledger.set_member(conn, member, **values)


# --- the digest's unsubscribe link -------------------------------------------------------------
# The e-mail carries <base>/bills/unsubscribe?token=... (community.bills.digest); both it and
# /unsubscribe/{token} work. Opening the link only asks (mail scanners follow links); the
# button, or a mail client's RFC 8058 one-click POST, unsubscribes.


def _holder(conn: sa.Connection, token: str) -> tuple[str, bool] | None:
    """(member, still subscribed) for a token, or None."""
    if not token:
        return None
    row = conn.execute(sa.select(bills_members.c.member_id, bills_members.c.digest)
                       .where(bills_members.c.unsubscribe_token == token)).first()
    return None if row is None else (str(row.member_id), bool(row.digest))


def unsubscribe(conn: sa.Connection, token: str) -> tuple[str, bool] | None:
    """(member, whether this call unsubscribed them) or None for an unknown token."""
    held = _holder(conn, token)
    if held is None:
        return None
    member, subscribed = held
    if subscribed:
        ledger.unsubscribe(conn, token)
    return member, subscribed


def _unsubscribe_page(ctx: Ctx, token: str, post: bool) -> HTMLResponse:
    with ctx.engine().begin() as conn:
        held = unsubscribe(conn, token) if post else _holder(conn, token)
        name = services.member_name(conn, held[0]) or held[0] if held else ""
    if held is None:
        return render(ctx, "pages/unsubscribe.html", "", status_code=404, message=ctx.t("unsub.invalid"))
    _, changed = held
    if post:
        message = ctx.t("unsub.done" if changed else "unsub.already", name=name)
        return render(ctx, "pages/unsubscribe.html", "", message=message, done=True)
    if not changed:
        return render(ctx, "pages/unsubscribe.html", "", message=ctx.t("unsub.already", name=name), done=True)
    return render(ctx, "pages/unsubscribe.html", "", message=ctx.t("unsub.confirm", name=name),
                  token=token, needs_form=True)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_ask(token: str, ctx: Ctx = Depends(get_ctx)) -> HTMLResponse:
    return _unsubscribe_page(ctx, token, post=False)


@router.get("/bills/unsubscribe", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_ask_query(token: str = "", ctx: Ctx = Depends(get_ctx)) -> HTMLResponse:
    return _unsubscribe_page(ctx, token, post=False)


@router.post("/bills/unsubscribe", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_post(token: str = "", form_token: str = Form("", alias="token"),
                     ctx: Ctx = Depends(get_ctx)) -> HTMLResponse:
    return _unsubscribe_page(ctx, token or form_token, post=True)


# --- API -----------------------------------------------------------------------------------


class RowOut(BaseModel):
    section: str
    key: str
    label: str
    value: str = Field(description="machine value: integer base units (Wh, 0.01 h, g) or a decimal")
    unit: str
    shown: str = Field(description="the value as printed, in the statement's language")


class StatementOut(BaseModel):
    member: str
    month: str
    lang: str
    rows: list[RowOut]
    statement: dict[str, Any] = Field(description="every figure: community.bills.statement.Statement")


class RunOut(BaseModel):
    id: int
    month: str
    kind: str
    number: int | None
    created_at: int
    members: int | None = None
    consumed_wh: int | None = None
    reconciles: bool | None = None
    totals: dict[str, Any] | None = Field(default=None, description="final runs: with credit notes applied")


class CreditNoteOut(BaseModel):
    number: int
    run_number: int | None
    month: str
    member_id: str
    created_at: int
    reason: str
    delta: dict[str, int]


class BillingSettingsIO(BaseModel):
    lang: str | None = Field(default=None, description="fr | en")
    email: str | None = Field(default=None, description="empty for statements on paper")
    tariff_ct_kwh: str | None = Field(default=None, description="supplier price, cents per kWh, e.g. 25.16")
    name_consent: bool | None = None
    digest: bool | None = None


@api.get("/statements/months", response_model=list[str], summary="Months with settled data, newest first")
def api_months(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> list[str]:
    with ctx.engine().connect() as conn:
        return settled_months(conn)


@api.get("/statements/runs", response_model=list[RunOut], summary="Billing runs (the board)")
def api_runs(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_board)) -> list[RunOut]:
    with ctx.engine().connect() as conn:
        return [RunOut(**r) for r in _runs(conn)]


@api.get("/statements/credit-notes", response_model=list[CreditNoteOut], summary="Credit notes (the board)")
def api_credit_notes(ctx: Ctx = Depends(get_ctx),
                     account: Account = Depends(require_board)) -> list[CreditNoteOut]:
    with ctx.engine().connect() as conn:
        return [CreditNoteOut(**n) for n in _credit_notes(conn)]


@api.get("/statements/{month}", response_model=StatementOut,
         summary="A member's statement of a month (the member and the board only)")
def api_statement(month: str, member: str | None = None, lang: str | None = None,
                  ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> StatementOut:
    with ctx.engine().connect() as conn:
        target = _target(account, member, conn)
        chosen = _month(conn, month)
        language = _lang(conn, target, lang, ctx.lang)
        s = _statement(conn, target, chosen)
    return StatementOut(member=target, month=chosen, lang=language, statement=s.to_json(),
                        rows=[RowOut(**r.__dict__) for r in bills_render.rows(s, language)])


@api.get("/statements/{month}/{kind}", summary="The statement as PDF (A4) or CSV, in the member's language",
         responses={200: {"content": {"application/pdf": {}, "text/csv": {}}}})
def api_statement_file(month: str, kind: str, member: str | None = None, lang: str | None = None,
                       ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> Response:
    if kind not in ("pdf", "csv"):
        raise HTTPException(status_code=404, detail="pdf or csv")
    with ctx.engine().connect() as conn:
        target = _target(account, member, conn)
        chosen = _month(conn, month)
        language = _lang(conn, target, lang, ctx.lang)
        s = _statement(conn, target, chosen)
    return _download(s, language, kind, ctx.settings.community)


@api.get("/members/{member_id}/billing", response_model=BillingSettingsIO,
         summary="A member's billing settings (the member and the board only)")
def api_get_billing(member_id: str, ctx: Ctx = Depends(get_ctx),
                    account: Account = Depends(require_account)) -> BillingSettingsIO:
    with ctx.engine().connect() as conn:
        target = _target(account, member_id, conn)
        cfg = ledger.settings(conn).get(target) or ledger.MemberSettings(target)
    return BillingSettingsIO(lang=cfg.lang, email=cfg.email, tariff_ct_kwh=cfg.tariff_ct_kwh,
                             name_consent=cfg.name_consent, digest=cfg.digest)


@api.put("/members/{member_id}/billing", response_model=BillingSettingsIO,
         summary="Change a member's billing settings: only the fields sent change")
def api_put_billing(member_id: str, body: BillingSettingsIO, ctx: Ctx = Depends(get_ctx),
                    account: Account = Depends(require_account)) -> BillingSettingsIO:
    values = body.model_dump(exclude_unset=True)
    if "tariff_ct_kwh" in values:
        values["tariff"] = values.pop("tariff_ct_kwh")
    with ctx.engine().begin() as conn:
        target = _target(account, member_id, conn)
        cfg = save_settings(conn, target, **values)
    return BillingSettingsIO(lang=cfg.lang, email=cfg.email, tariff_ct_kwh=cfg.tariff_ct_kwh,
                             name_consent=cfg.name_consent, digest=cfg.digest)


@api.get("/me/billing", response_model=BillingSettingsIO, summary="My billing settings")
def api_my_billing(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> BillingSettingsIO:
    if not account.member_id:
        raise HTTPException(status_code=403, detail="this needs a member account")
    return api_get_billing(account.member_id, ctx, account)


# --- billing runs, read for the board ------------------------------------------------------


def _runs(conn: sa.Connection) -> list[dict[str, Any]]:
    out = []
    for r in reversed(runs.list_runs(conn)):
        if r["kind"] == "final" and r["number"] is not None:
            r = {**r, "totals": runs.run_totals(conn, int(r["number"]))}
        out.append(r)
    return out


def _credit_notes(conn: sa.Connection) -> list[dict[str, Any]]:
    from community.bills.schema import bills_runs

    n, r = bills_credit_notes, bills_runs
    q = (sa.select(n.c.number, n.c.member_id, n.c.created_at, n.c.reason, n.c.delta,
                   r.c.number.label("run_number"), r.c.month)
         .join(r, r.c.id == n.c.run_id).order_by(n.c.number.desc()))
    return [{**row._mapping, "delta": json.loads(row.delta)} for row in conn.execute(q)]
