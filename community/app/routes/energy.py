"""My energy: per day and per 15-minute interval, chart, table and CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from community.app import services
from community.app.routes.home import home_chart
from community.app.sessions import Account
from community.app.web import Ctx, get_ctx, render, require_member

router = APIRouter()
api = APIRouter(prefix="/api", tags=["energy"])

CSV_COLUMNS = ("start", "produced_wh", "consumed_wh", "self_consumed_wh", "bought_local_wh",
               "sold_local_wh", "from_grid_wh", "to_grid_wh")


def _day(raw: str | None, conn_latest: int | None) -> int:
    """Start of the UTC day asked for (YYYY-MM-DD), or of the latest day with data."""
    if raw:
        try:
            d = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise services.ServiceError("err.date", "day") from None
        return int(d.timestamp())
    latest = conn_latest or int(datetime.now(UTC).timestamp())
    return latest - latest % services.DAY_S if latest % services.DAY_S else latest - services.DAY_S


def _load(ctx: Ctx, member_id: str, day: str | None) -> tuple[int, list[services.MemberInterval]]:
    with ctx.engine().connect() as conn:
        start = _day(day, services.latest_reading_s(conn))
        per_member = services.energy_intervals(conn, start, start + services.DAY_S)
    return start, per_member.get(member_id, [])


def _week(ctx: Ctx, member_id: str, day_start: int) -> list[tuple[int, services.Totals]]:
    with ctx.engine().connect() as conn:
        per_member = services.energy_intervals(conn, day_start - 6 * services.DAY_S, day_start + services.DAY_S)
    return services.member_days(per_member.get(member_id, []))


@router.get("/energy", response_class=HTMLResponse, include_in_schema=False)
def energy_page(day: str | None = None, ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_member)) -> HTMLResponse:
    assert account.member_id
    start, intervals = _load(ctx, account.member_id, day)
    return render(ctx, "pages/energy.html", "energy", day=start, intervals=intervals,
                  days=_week(ctx, account.member_id, start), totals=services.total(intervals),
                  chart=home_chart(ctx, intervals, "energy.chart.desc") if intervals else "")


def _csv(intervals: list[services.MemberInterval]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for iv in intervals:
        d = iv.as_dict()
        row = [datetime.fromtimestamp(iv.start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
        writer.writerow(row + [d[c] for c in CSV_COLUMNS[1:]])
    return buf.getvalue()


@router.get("/energy.csv", include_in_schema=False)
@api.get("/me/energy.csv", summary="My energy per 15 minutes of one day, as CSV")
def energy_csv(day: str | None = None, ctx: Ctx = Depends(get_ctx),
               account: Account = Depends(require_member)) -> Response:
    assert account.member_id
    start, intervals = _load(ctx, account.member_id, day)
    name = f"energy-{account.member_id}-{datetime.fromtimestamp(start, UTC):%Y-%m-%d}.csv"
    return Response(_csv(intervals), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


class EnergyOut(BaseModel):
    member_id: str
    day: str
    totals: dict[str, object]
    intervals: list[dict[str, int]]


@api.get("/me/energy", response_model=EnergyOut,
         summary="My energy per 15 minutes of one day (default: the latest day with data)")
def api_energy(day: str | None = Query(None, description="YYYY-MM-DD, UTC"), ctx: Ctx = Depends(get_ctx),
               account: Account = Depends(require_member)) -> EnergyOut:
    assert account.member_id
    start, intervals = _load(ctx, account.member_id, day)
    return EnergyOut(member_id=account.member_id, day=f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d}",
                     totals=services.total(intervals).as_dict(),
                     intervals=[iv.as_dict() for iv in intervals])
