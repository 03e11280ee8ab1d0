"""The pure statement core: identities that hold for any consistent period, and the
reconciliation catching a ledger that disagrees by one Wh."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from community.bills.statement import (
    BP,
    Metered,
    Move,
    PeriodData,
    cents,
    parse_tariff,
    reconcile,
    shares_bp,
    statements,
    totals,
)

MEMBERS = ("a", "b", "c", "d")


@given(st.lists(st.integers(0, 10**9), max_size=12))
def test_shares_sum_to_exactly_100_percent(amounts: list[int]) -> None:
    bps = shares_bp(amounts)
    assert sum(bps) == (BP if sum(amounts) else 0)
    total = sum(amounts)
    for a, bp in zip(amounts, bps, strict=True):
        assert abs(bp - a * BP / total if total else bp) < 1


@st.composite
def periods(draw: st.DrawFn) -> PeriodData:
    flows: dict[tuple[str, str], int] = {}
    for p in MEMBERS:
        for c in (*MEMBERS, "grid"):
            if c != p and draw(st.booleans()):
                flows[p, c] = draw(st.integers(1, 10_000))
    metered = {}
    moves = []
    for m in MEMBERS:
        netted = draw(st.integers(0, 500))
        shared = sum(v for (p, c), v in flows.items() if p == m and c != "grid")
        to_grid = flows.get((m, "grid"), 0)
        received = sum(v for (p, c), v in flows.items() if c == m)
        grid = draw(st.integers(0, 10_000))
        exported = netted + shared + to_grid
        produced = exported + draw(st.integers(0, 3000)) if draw(st.booleans()) else 0
        metered[m] = Metered(netted + received + grid, exported, produced, netted)
        for amount, reason in ((shared, "allocation"), (-received, "allocation"), (to_grid, "export")):
            if amount:
                moves.append(Move(0, m, "KWH", amount, reason))
        if to_grid:
            moves.append(Move(0, "fund", "KWH", -to_grid, "export", m))
    entries: dict[tuple[int, str, str], int] = {}
    for mv in moves:
        entries[0, mv.account, mv.unit] = entries.get((0, mv.account, mv.unit), 0) + mv.amount
    return PeriodData(0, 86400, (0,), metered, flows, tuple(moves), entries, members=MEMBERS)


@given(periods(), st.decimals(0, 60, places=2))
def test_statements_add_up_and_reconcile(data: PeriodData, price: object) -> None:
    tariff = str(price)
    stmts = statements(data, dict.fromkeys(MEMBERS, tariff))
    assert reconcile(data, stmts) == []
    t = totals(stmts)
    assert t["community_wh"] == t["shared_wh"] == sum(v for (_, c), v in data.flows.items() if c != "grid")
    assert t["community_wh"] + t["grid_wh"] == t["consumed_wh"]
    assert t["shared_wh"] + t["exported_wh"] + t["self_consumed_wh"] == t["produced_wh"]
    for s in stmts:
        assert s.community_wh == sum(src.wh for src in s.sources)
        assert sum(src.share_bp for src in s.sources) in (0, BP)
        assert all(src.name is None for src in s.sources)  # nobody agreed to be named
        assert 0 <= s.self_sufficiency_bp <= BP
        assert s.saved_cents == cents(s.community_wh, Decimal(tariff))


@given(periods())
def test_one_wh_off_in_the_ledger_does_not_reconcile(data: PeriodData) -> None:
    if not data.moves:
        return
    first = data.moves[0]
    broken = replace(data, moves=(replace(first, amount=first.amount + 1), *data.moves[1:]))
    assert reconcile(broken, statements(broken)) != []


def test_tariff_parsing_and_rounding() -> None:
    assert parse_tariff("25,16") == parse_tariff("25.16")
    assert parse_tariff("") is None
    assert cents(1500, Decimal("25.1")) == 38  # 37.65 rounds half up
    for bad in ("abc", "-1", "NaN"):
        try:
            parse_tariff(bad)
        except ValueError as exc:
            assert "cents per kWh" in str(exc)
        else:
            raise AssertionError(bad)
