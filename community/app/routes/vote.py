"""Vote: proposals (rates, floors, demurrage, caps) with results; the community fund's
allocation preferences and their contribution-weighted result."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from community.app import services
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
api = APIRouter(prefix="/api", tags=["votes"])


def _page(ctx: Ctx, account: Account, status_code: int = 200, **extra: object) -> HTMLResponse:
    with ctx.engine().connect() as conn:
        allocation, voters = services.fund_allocation(conn)
        mine = services.fund_preference(conn, account.member_id) if account.member_id else None
        fund = {b.unit: b.balance for b in services.balances(conn, services.FUND)}
        return render(ctx, "pages/vote.html", "vote", status_code=status_code,
                      proposals=services.proposals(conn, account.member_id, ctx.now()),
                      purposes=services.FUND_PURPOSES, allocation=allocation, voters=voters,
                      mine=mine, fund=fund, kinds=services.PROPOSAL_KINDS, **extra)


@router.get("/vote", response_class=HTMLResponse, include_in_schema=False)
def vote_page(done: str | None = None, ctx: Ctx = Depends(get_ctx),
              account: Account = Depends(require_account)) -> HTMLResponse:
    notice = {"voted": ctx.t("vote.voted"), "fund": ctx.t("vote.fund.saved")}.get(done or "")
    return _page(ctx, account, notice=notice)


@router.post("/vote/proposals/{proposal_id}", include_in_schema=False)
def vote_submit(proposal_id: int, choice: str = Form(""), ctx: Ctx = Depends(get_ctx),
                account: Account = Depends(require_member)) -> Response:
    assert account.member_id
    try:
        with ctx.engine().begin() as conn:
            services.cast_vote(conn, account.member_id, proposal_id, choice, ctx.now())
    except services.ServiceError as exc:
        return _page(ctx, account, status_code=400, error=error_text(ctx, exc.code, exc.field, exc.params))
    return RedirectResponse(f"/vote?done=voted#p{proposal_id}", status_code=303)


@router.post("/vote/fund", include_in_schema=False)
async def fund_submit(request: Request, ctx: Ctx = Depends(get_ctx),
                      account: Account = Depends(require_member)) -> Response:
    assert account.member_id
    form = await request.form()
    try:
        raw = {p: parse_number(str(form.get(p) or "0"), p) for p in services.FUND_PURPOSES}
        shares = services.parse_shares(raw)
        with ctx.engine().begin() as conn:
            services.set_fund_preference(conn, account.member_id, shares, ctx.now())
    except services.ServiceError as exc:
        return _page(ctx, account, status_code=400, error=error_text(ctx, exc.code, exc.field, exc.params))
    return RedirectResponse("/vote?done=fund#fund", status_code=303)


@router.post("/vote/proposals", include_in_schema=False)
def proposal_submit(title: str = Form(""), kind: str = Form("other"), subject: str = Form(""),
                    value: str = Form(""), days: str = Form("7"), ctx: Ctx = Depends(get_ctx),
                    account: Account = Depends(require_board)) -> Response:
    try:
        n_days = parse_number(days, "days")
        with ctx.engine().begin() as conn:
            services.create_proposal(conn, account.username, title, kind, subject=subject, value=value,
                                     closes_at=ctx.now() + round(n_days * 86400), now=ctx.now())
    except services.ServiceError as exc:
        return _page(ctx, account, status_code=400, error=error_text(ctx, exc.code, exc.field, exc.params))
    return RedirectResponse("/vote", status_code=303)


class ProposalOut(BaseModel):
    id: int
    title: str
    kind: str
    subject: str | None
    value: str | None
    created_at: int
    closes_at: int
    open: bool
    tally: dict[str, int]
    my_vote: str | None
    outcome: str | None


class VoteIn(BaseModel):
    choice: str = Field(description="yes | no | abstain")


class ProposalIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    kind: str = Field("other", description="rate | floor | demurrage | cap | other")
    subject: str | None = Field(None, max_length=32)
    value: str | None = Field(None, max_length=64)
    days: float = Field(7, gt=0, le=365)


class FundOut(BaseModel):
    allocation_percent: dict[str, float]
    voters: int
    mine_percent: dict[str, float] | None
    fund_balances: dict[str, int]


class FundIn(BaseModel):
    shares_percent: dict[str, float] = Field(description="purpose -> percent; must add up to 100")


@api.get("/proposals", response_model=list[ProposalOut], summary="Proposals with their results")
def api_proposals(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> list[ProposalOut]:
    with ctx.engine().connect() as conn:
        return [ProposalOut(**p) for p in services.proposals(conn, account.member_id, ctx.now())]  # type: ignore[arg-type]


@api.post("/proposals", response_model=ProposalOut, status_code=201, summary="Open a proposal (board)")
def api_new_proposal(body: ProposalIn, ctx: Ctx = Depends(get_ctx),
                     account: Account = Depends(require_board)) -> ProposalOut:
    with ctx.engine().begin() as conn:
        pid = services.create_proposal(conn, account.username, body.title, body.kind, subject=body.subject,
                                       value=body.value, closes_at=ctx.now() + round(body.days * 86400),
                                       now=ctx.now())
        return ProposalOut(**next(p for p in services.proposals(conn, account.member_id, ctx.now())  # type: ignore[arg-type]
                                  if p["id"] == pid))


@api.post("/proposals/{proposal_id}/votes", response_model=ProposalOut, summary="Vote on a proposal")
def api_vote(proposal_id: int, body: VoteIn, ctx: Ctx = Depends(get_ctx),
             account: Account = Depends(require_member)) -> ProposalOut:
    assert account.member_id
    with ctx.engine().begin() as conn:
        services.cast_vote(conn, account.member_id, proposal_id, body.choice, ctx.now())
        return ProposalOut(**next(p for p in services.proposals(conn, account.member_id, ctx.now())  # type: ignore[arg-type]
                                  if p["id"] == proposal_id))


def _fund(ctx: Ctx, account: Account) -> FundOut:
    with ctx.engine().connect() as conn:
        allocation, voters = services.fund_allocation(conn)
        mine = services.fund_preference(conn, account.member_id) if account.member_id else None
        return FundOut(allocation_percent=allocation, voters=voters,
                       mine_percent={k: v / 100 for k, v in mine.items()} if mine else None,
                       fund_balances={b.unit: b.balance for b in services.balances(conn, services.FUND)})


@api.get("/fund/votes", response_model=FundOut,
         summary="The fund's weighted allocation (votes on how to spend it) and my preference")
def api_fund(ctx: Ctx = Depends(get_ctx), account: Account = Depends(require_account)) -> FundOut:
    return _fund(ctx, account)


@api.put("/fund/votes/mine", response_model=FundOut, summary="State my preferred allocation of the fund")
def api_fund_set(body: FundIn, ctx: Ctx = Depends(get_ctx),
                 account: Account = Depends(require_member)) -> FundOut:
    assert account.member_id
    unknown = sorted(set(body.shares_percent) - set(services.FUND_PURPOSES))
    if unknown:
        raise services.ServiceError("err.choice", "shares", choices=", ".join(services.FUND_PURPOSES))
    with ctx.engine().begin() as conn:
        services.set_fund_preference(conn, account.member_id, services.parse_shares(body.shares_percent),
                                     ctx.now())
    return _fund(ctx, account)
