"""Netting a period: worked examples and zero-sum properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from community.settlement.allocation import allocate, parse_input, totals
from community.settlement.netting import (
    FUND,
    KWH,
    MemberEnergy,
    NettingError,
    StandingOrder,
    demurrage_charge,
    net_period,
)
from community.settlement.vectorised import allocate_period


def test_allocation_and_export_by_hand() -> None:
    # interval 1: p exports 900, c imports 300 -> p gives 300, 600 to the grid.
    # interval 2: p exports 100, c imports 400 -> p gives 100, c takes 300 from the grid.
    a1 = allocate(parse_input({"producers": {"p": 900}, "consumers": {"c": 300}}))
    a2 = allocate(parse_input({"producers": {"p": 100}, "consumers": {"c": 400}}))
    energy = {m: MemberEnergy(**row) for m, row in totals([a1, a2]).items()}
    assert energy["p"] == MemberEnergy(given=400, to_grid=600)
    n = net_period(energy)
    assert n.entry("p") == 1000  # 400 from c, 600 from the fund
    assert n.entry("c") == -400
    assert n.entry(FUND) == -600
    reasons = {(m.account, m.reason): m.amount for m in n.movements}
    assert reasons == {
        ("p", "allocation"): 400,
        ("c", "allocation"): -400,
        ("p", "export"): 600,
        (FUND, "export"): -600,
    }


def test_donations_capped_by_donor_credits_and_beneficiary_needs() -> None:
    energy = {
        "p": MemberEnergy(given=700, to_grid=300),
        "c": MemberEnergy(received=500),
        "b": MemberEnergy(received=200),
        "q": MemberEnergy(to_grid=50),
    }
    orders = [
        StandingOrder("p", "b", share_bp=1250),  # 12.5 % of 1000 = 125; b still owes 75
        StandingOrder("q", "b", wh=80),  # q exported only 50: gives 50
        StandingOrder("q", "c", wh=10),  # q has nothing left
        StandingOrder("p", "c", wh=600),  # c received only 500: 500
    ]
    n = net_period(energy, orders)
    assert n.entry("b") == -200 + 125 + 50
    assert n.entry("c") == 0
    assert n.entry("p") == 1000 - 125 - 500
    assert n.entry("q") == 0
    donations = [
        (m.account, m.amount, m.counterparty) for m in n.movements if m.reason == "donation"
    ]
    assert donations == [
        ("p", -125, "b"), ("b", 125, "p"),
        ("q", -50, "b"), ("b", 50, "q"),
        ("p", -500, "c"), ("c", 500, "p"),
    ]  # fmt: skip


def test_demurrage_rounds_down_and_accrues_to_fund() -> None:
    # 0.5 % per period: 1999 -> 9.995 -> 9; 100 -> 0.5 -> 0; negative balances pay none.
    opening = {("a", KWH): 1999, ("b", KWH): 100, ("c", KWH): -500, (FUND, KWH): 10**6}
    n = net_period({}, demurrage_ppm={KWH: 5000}, opening=opening)
    assert n.entry("a") == -9
    assert n.entry("b") == 0
    assert n.entry("c") == 0
    assert n.entry(FUND) == 9


def test_demurrage_lazy_over_periods_compounds() -> None:
    # 10 % per period on 1000: 100, then 90, then 81 -> 271
    assert demurrage_charge(1000, 100_000, 3) == 271
    assert demurrage_charge(9, 100_000, 50) == 0
    assert demurrage_charge(-5, 100_000, 2) == 0
    with pytest.raises(NettingError):
        demurrage_charge(1, 2_000_000)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"wh": 0, "share_bp": 0},
        {"wh": 10, "share_bp": 10},
        {"share_bp": 10_001},
        {"wh": -1},
    ],
)
def test_bad_orders(kwargs: dict) -> None:
    with pytest.raises(NettingError):
        StandingOrder("a", "b", **kwargs)


def test_unknown_donor_and_fund_with_energy() -> None:
    with pytest.raises(NettingError, match="unknown donor"):
        net_period({"a": MemberEnergy()}, [StandingOrder("x", "a", wh=1)])
    with pytest.raises(NettingError, match="fund"):
        net_period({FUND: MemberEnergy()})


@st.composite
def days(draw: st.DrawFn):
    n = draw(st.integers(1, 8))
    t = draw(st.integers(1, 5))
    members = [f"m{i}" for i in range(n)]
    row = st.lists(st.integers(0, 2000), min_size=n, max_size=n)
    exp = np.array(draw(st.lists(row, min_size=t, max_size=t)))
    imp = np.array(draw(st.lists(row, min_size=t, max_size=t)))
    pairs = st.tuples(st.sampled_from(members), st.sampled_from(members)).filter(
        lambda p: p[0] != p[1]
    )
    orders = [
        StandingOrder(d, b, wh=w) if w else StandingOrder(d, b, share_bp=s)
        for (d, b), w, s in draw(
            st.lists(st.tuples(pairs, st.integers(0, 500), st.integers(1, 10_000)), max_size=5)
        )
    ]
    opening = {(m, u): draw(st.integers(-(10**6), 10**6)) for m in members for u in (KWH, "HOUR")}
    return members, exp, imp, orders, opening


@given(days(), st.integers(0, 1_000_000))
def test_every_unit_zero_sum_and_donors_never_overdrawn(day, rate: int) -> None:
    members, exp, imp, orders, opening = day
    energy = {m: MemberEnergy(**r) for m, r in allocate_period(members, exp, imp).totals().items()}
    n = net_period(energy, orders, {KWH: rate, "HOUR": rate // 2}, opening)
    for unit in (KWH, "HOUR"):
        assert sum(e.amount for e in n.entries if e.unit == unit) == 0
    assert len({(e.account, e.unit) for e in n.entries}) == len(n.entries)
    for m, e in energy.items():
        gave = -sum(
            x.amount
            for x in n.movements
            if x.account == m and x.reason == "donation" and x.amount < 0
        )
        assert gave <= e.exported
        got = sum(
            x.amount
            for x in n.movements
            if x.account == m and x.reason == "donation" and x.amount > 0
        )
        assert got <= e.received
        # net never beyond what the meters signed (the contract's cover check)
        energy_net = sum(
            x.amount
            for x in n.movements
            if x.account == m and x.unit == KWH and x.reason != "demurrage"
        )
        assert -e.received <= energy_net <= e.exported
        # credits come only from metered energy: export credit = what was exported
        credit = sum(
            x.amount
            for x in n.movements
            if x.account == m and x.amount > 0 and x.reason in ("allocation", "export")
        )
        assert credit == e.exported
    assert (
        net_period(energy, orders, {KWH: rate}, opening).entries
        == net_period(energy, orders, {KWH: rate}, opening).entries
    )
