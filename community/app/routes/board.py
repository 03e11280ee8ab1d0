"""Board: members and their accounts, meter points, gateway enrolment with status and last
reading, units, proposals. Board accounts only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from community.app import services
from community.app import sessions as sess
from community.app.relay import provision_new_member
from community.app.web import Ctx, get_ctx, render, require_board

router = APIRouter()
api = APIRouter(prefix="/api/board", tags=["board"])


def _data(ctx: Ctx) -> dict[str, Any]:
    with ctx.engine().connect() as conn:
        return {"members": services.members(conn), "points": services.meter_points(conn),
                "gateways": services.gateways_with_status(conn), "units": services.units(conn),
                "accounts": sess.list_accounts(conn),
                "proposals": services.proposals(conn, None, ctx.now())}


@router.get("/board", response_class=HTMLResponse, include_in_schema=False)
def board_page(done: str | None = None, ctx: Ctx = Depends(get_ctx),
               account: sess.Account = Depends(require_board)) -> HTMLResponse:
    return render(ctx, "pages/board.html", "board", notice=ctx.t("board.saved") if done else None, **_data(ctx))


@router.post("/board/accounts", include_in_schema=False)
def account_submit(username: str = Form(""), password: str = Form(""), role: str = Form("member"),
                   member_id: str = Form(""), ctx: Ctx = Depends(get_ctx),
                   account: sess.Account = Depends(require_board)) -> Response:
    try:
        with ctx.engine().begin() as conn:
            name = services.member_name(conn, member_id) if member_id else None
            if member_id and name is None:
                raise services.ServiceError("err.unknown_member", "member", value=member_id)
            sess.create_account(conn, username.strip(), password, role=role, member_id=member_id or None,
                                display_name=name or username.strip(), now=ctx.now())
    except services.ServiceError as exc:
        from community.app.web import error_text

        return render(ctx, "pages/board.html", "board", status_code=400,
                      error=error_text(ctx, exc.code, exc.field, exc.params), **_data(ctx))
    except sess.AccountError as exc:
        return render(ctx, "pages/board.html", "board", status_code=400, error=str(exc), **_data(ctx))
    return RedirectResponse("/board?done=account", status_code=303)


def _registry_change(ctx: Ctx, change: Any) -> Response:
    """Run a registry change; its RegistryError message is already what to fix."""
    from community.registry import RegistryError

    try:
        with ctx.engine().begin() as conn:
            change(conn)
    except RegistryError as exc:
        return render(ctx, "pages/board.html", "board", status_code=400, error=str(exc), **_data(ctx))
    return RedirectResponse("/board?done=registry", status_code=303)


@router.post("/board/members", include_in_schema=False)
def member_submit(member_id: str = Form(""), name: str = Form(""), ctx: Ctx = Depends(get_ctx),
                  account: sess.Account = Depends(require_board)) -> Response:
    from community.registry import add_member

    def change(conn: Any) -> None:
        add_member(conn, member_id.strip(), name)
        provision_new_member(conn, ctx.settings, member_id.strip())

    return _registry_change(ctx, change)


@router.post("/board/gateways", include_in_schema=False)
def gateway_submit(address: str = Form(""), member_id: str = Form(""), meter_point: str = Form(""),
                   role: str = Form("grid"), ctx: Ctx = Depends(get_ctx),
                   account: sess.Account = Depends(require_board)) -> Response:
    from community.registry import enrol_gateway

    return _registry_change(ctx, lambda conn: enrol_gateway(conn, address.strip(), member_id,
                                                            meter_point.strip(), role))


@router.post("/board/gateways/{address}/revoke", include_in_schema=False)
def gateway_revoke(address: str, reason: str = Form(""), ctx: Ctx = Depends(get_ctx),
                   account: sess.Account = Depends(require_board)) -> Response:
    from community.registry import revoke_gateway

    return _registry_change(ctx, lambda conn: revoke_gateway(conn, address, reason.strip()))


class MemberOut(BaseModel):
    id: str
    name: str


class GatewayOut(BaseModel):
    address: str
    member_id: str
    meter_point: str
    role: str
    status: str
    active_from: int
    active_to: int | None
    last_reading_ms: int | None
    readings: int


class UnitOut(BaseModel):
    unit: str
    wh_per_unit: int
    floor: int


@api.get("/members", response_model=list[MemberOut], summary="Members (board)")
def api_members(ctx: Ctx = Depends(get_ctx), account: sess.Account = Depends(require_board)) -> list[MemberOut]:
    with ctx.engine().connect() as conn:
        return [MemberOut(id=m, name=n) for m, n in services.members(conn).items()]


class MemberIn(BaseModel):
    id: str
    name: str


class GatewayIn(BaseModel):
    address: str
    member_id: str
    meter_point: str
    role: str = "grid"


def _registry_api(ctx: Ctx, change: Any) -> Any:
    from community.registry import RegistryError

    try:
        with ctx.engine().begin() as conn:
            return change(conn)
    except RegistryError as exc:
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": str(exc)}, status_code=400)


@api.post("/members", response_model=MemberOut, status_code=201, summary="Add a member (board)")
def api_add_member(body: MemberIn, ctx: Ctx = Depends(get_ctx),
                   account: sess.Account = Depends(require_board)) -> Any:
    from community.registry import add_member

    def change(conn: Any) -> MemberOut:
        m = add_member(conn, body.id, body.name)
        provision_new_member(conn, ctx.settings, m.id)
        return MemberOut(id=m.id, name=m.name)

    return _registry_api(ctx, change)


@api.post("/gateways", status_code=201, summary="Enrol a gateway for a member's meter point (board)")
def api_enrol(body: GatewayIn, ctx: Ctx = Depends(get_ctx),
              account: sess.Account = Depends(require_board)) -> Any:
    from community.registry import enrol_gateway

    return _registry_api(ctx, lambda conn: enrol_gateway(conn, body.address, body.member_id,
                                                          body.meter_point, body.role).as_dict())


@api.post("/gateways/{address}/revoke", summary="Revoke a gateway (board)")
def api_revoke(address: str, ctx: Ctx = Depends(get_ctx),
               account: sess.Account = Depends(require_board)) -> Any:
    from community.registry import revoke_gateway

    return _registry_api(ctx, lambda conn: revoke_gateway(conn, address, "revoked by the board").as_dict())


@api.get("/meter-points", summary="Meter points and their members (board)")
def api_points(ctx: Ctx = Depends(get_ctx), account: sess.Account = Depends(require_board)) -> list[dict[str, object]]:
    with ctx.engine().connect() as conn:
        return services.meter_points(conn)


@api.get("/gateways", response_model=list[GatewayOut], summary="Gateways with status and last reading (board)")
def api_gateways(ctx: Ctx = Depends(get_ctx), account: sess.Account = Depends(require_board)) -> list[GatewayOut]:
    with ctx.engine().connect() as conn:
        return [GatewayOut(address=g["address"], member_id=g["member_id"], meter_point=g["meter_point"],  # type: ignore[arg-type]
                           role=g["role"], status=g["status"], active_from=g["active_from"],  # type: ignore[arg-type]
                           active_to=g["active_to"], last_reading_ms=g["last_ts"], readings=g["readings"])  # type: ignore[arg-type]
                for g in services.gateways_with_status(conn)]


@api.get("/units", response_model=list[UnitOut], summary="Units with reference rates and default floors")
def api_units(ctx: Ctx = Depends(get_ctx), account: sess.Account = Depends(require_board)) -> list[UnitOut]:
    with ctx.engine().connect() as conn:
        return [UnitOut(unit=u.code, wh_per_unit=u.wh_per_unit, floor=u.floor) for u in services.units(conn).values()]
