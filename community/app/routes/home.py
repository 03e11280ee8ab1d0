"""Home: the neighbourhood now, today and over the last 24 hours. Public: anyone may see
the neighbourhood's totals, never a member's own figures."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from community.app import charts, services
from community.app.web import Ctx, get_ctx, render

router = APIRouter()
api = APIRouter(prefix="/api", tags=["neighbourhood"])


def _load(ctx: Ctx) -> services.Neighbourhood:
    with ctx.engine().connect() as conn:
        return services.neighbourhood(conn, ctx.settings.chart_hours)


def home_chart(ctx: Ctx, series: list[services.MemberInterval], desc_key: str) -> str:
    from community.app.fmt import Formatter

    f = Formatter(ctx.lang)
    per_hour = 3600 // services.STEP_S
    return charts.line_chart(
        [charts.Series(ctx.t("home.production"), [iv.produced * per_hour / 1000 for iv in series], "prod"),
         charts.Series(ctx.t("home.consumption"), [iv.consumed * per_hour / 1000 for iv in series], "cons")],
        [f.hm(iv.start) for iv in series], title=ctx.t("home.chart"), desc=ctx.t(desc_key), unit="kW")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(ctx: Ctx = Depends(get_ctx)) -> HTMLResponse:
    n = _load(ctx)
    return render(ctx, "pages/home.html", "home", n=n,
                  chart=home_chart(ctx, n.series, "home.chart.desc") if n.series else "")


class NeighbourhoodOut(BaseModel):
    as_of: int | None
    production_w: int
    consumption_w: int
    members: int
    today: dict[str, object]
    last_24h: list[dict[str, int]]


@api.get("/neighbourhood", response_model=NeighbourhoodOut,
         summary="Neighbourhood production and consumption: now, today, last 24 h")
def api_neighbourhood(ctx: Ctx = Depends(get_ctx)) -> NeighbourhoodOut:
    n = _load(ctx)
    return NeighbourhoodOut(as_of=n.as_of, production_w=n.production_w, consumption_w=n.consumption_w,
                            members=n.members, today=n.today.as_dict(),
                            last_24h=[{"start": iv.start, "produced_wh": iv.produced,
                                       "consumed_wh": iv.consumed, "shared_wh": iv.bought_local}
                                      for iv in n.series])
