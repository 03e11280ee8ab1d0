"""Certificates: search by meter point and period, download, verification verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.responses import HTMLResponse, Response

from community.app import services
from community.app.sessions import Account
from community.app.web import Ctx, error_text, get_ctx, render, require_account

router = APIRouter()
api = APIRouter(prefix="/api", tags=["certificates"])


def _date(raw: str | None, field: str, default: int) -> int:
    if not raw:
        return default
    try:
        return int(datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise services.ServiceError("err.date", field) from None


def _span(ctx: Ctx, start: str | None, end: str | None) -> tuple[int, int]:
    with ctx.engine().connect() as conn:
        latest = services.latest_reading_s(conn) or ctx.now()
    day = latest - latest % services.DAY_S
    a = _date(start, "from", day)
    b = _date(end, "to", a) + services.DAY_S  # inclusive end date
    return a, b


def _verify(ctx: Ctx, cert: dict[str, Any]) -> dict[str, Any]:
    chain = services.chain_view(ctx.request.app)
    if chain is None:
        return {"valid": False, "id": cert.get("id"), "reasons": ["no ledger configured to verify against"],
                "checks": {}}
    from community.settlement.certificates import verify_certificate

    return verify_certificate(cert, chain)


def _find(ctx: Ctx, meter_point: str, hour: int) -> dict[str, Any]:
    with ctx.engine().connect() as conn:
        found = services.settled_certificates(conn, meter_point, hour, hour + 3600)
    if not found:
        raise HTTPException(status_code=404, detail=f"no certificate for {meter_point} at {hour}")
    return found[0]


@router.get("/certificates", response_class=HTMLResponse, include_in_schema=False)
def certificates_page(meter_point: str | None = None, start: str | None = Query(None, alias="from"),
                      end: str | None = Query(None, alias="to"), ctx: Ctx = Depends(get_ctx),
                      account: Account = Depends(require_account)) -> HTMLResponse:
    with ctx.engine().connect() as conn:
        points = services.production_meter_points(conn)
        names = services.members(conn)
    error = None
    try:
        a, b = _span(ctx, start, end)
    except services.ServiceError as exc:
        error = error_text(ctx, exc.code, exc.field, exc.params)
        a, b = _span(ctx, None, None)
    chosen = meter_point or (points[0]["meter_point"] if points else "")
    certs: list[dict[str, Any]] = []
    if chosen and error is None:
        with ctx.engine().connect() as conn:
            certs = services.settled_certificates(conn, chosen, a, b)
    return render(ctx, "pages/certificates.html", "certificates", status_code=400 if error else 200,
                  points=points, chosen=chosen, start=a, end=b - services.DAY_S, certs=certs,
                  names=names, error=error)


@router.get("/certificates/{meter_point}/{hour}.json", include_in_schema=False)
@api.get("/certificates/{meter_point}/{hour}", summary="One hourly certificate, as a JSON file")
def certificate_file(meter_point: str, hour: int, ctx: Ctx = Depends(get_ctx),
                     account: Account = Depends(require_account)) -> Response:
    cert = _find(ctx, meter_point, hour)
    return Response(json.dumps(cert, indent=2, sort_keys=True), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{cert["id"]}.json"'})


@router.get("/certificates/{meter_point}/{hour}/verify", response_class=HTMLResponse, include_in_schema=False)
def certificate_verify_page(meter_point: str, hour: int, ctx: Ctx = Depends(get_ctx),
                            account: Account = Depends(require_account)) -> HTMLResponse:
    cert = _find(ctx, meter_point, hour)
    with ctx.engine().connect() as conn:
        names = services.members(conn)
    return render(ctx, "pages/certificate.html", "certificates", cert=cert, verdict=_verify(ctx, cert),
                  names=names)


@api.get("/certificates", summary="Certificates of a meter point for the days [from, to] (UTC)")
def api_certificates(meter_point: str, start: str | None = Query(None, alias="from"),
                     end: str | None = Query(None, alias="to"), ctx: Ctx = Depends(get_ctx),
                     account: Account = Depends(require_account)) -> list[dict[str, Any]]:
    a, b = _span(ctx, start, end)
    with ctx.engine().connect() as conn:
        return services.settled_certificates(conn, meter_point, a, b)


@api.get("/certificates/{meter_point}/{hour}/verification",
         summary="Verify a stored certificate against the ledger")
def api_verification(meter_point: str, hour: int, ctx: Ctx = Depends(get_ctx),
                     account: Account = Depends(require_account)) -> dict[str, Any]:
    return _verify(ctx, _find(ctx, meter_point, hour))


@api.post("/certificates/verify", summary="Verify any certificate (uploaded JSON) against the ledger")
def api_verify_upload(cert: dict[str, Any] = Body(...), ctx: Ctx = Depends(get_ctx),
                      account: Account = Depends(require_account)) -> dict[str, Any]:
    return _verify(ctx, cert)
