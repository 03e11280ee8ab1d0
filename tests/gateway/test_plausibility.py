"""Flags for doubtful values (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.plausibility import Plausibility


def test_stale_after_identical_polls_with_power() -> None:
    p = Plausibility(stale_polls=3)
    values = {"p_w": 1200, "e_prod_wh": 5000}
    flags = [p.check(1000 * i, dict(values)) for i in range(6)]
    assert flags[:3] == [(), (), ()] and all(f == ("stale",) for f in flags[3:])
    assert p.check(7000, {"p_w": 1201, "e_prod_wh": 5001}) == ()


def test_identical_values_at_zero_power_are_not_stale() -> None:
    p = Plausibility(stale_polls=2)
    assert all(p.check(i, {"p_w": 0, "e_prod_wh": 5}) == () for i in range(10))


def test_counter_backwards_and_implausible_once() -> None:
    p = Plausibility(rated_power_w=6000)
    assert p.check(0, {"e_prod_wh": 1000}) == ()
    assert p.check(1000, {"e_prod_wh": 900}) == ("counter_backwards",)
    assert p.check(2000, {"e_prod_wh": 901}) == ()
    # 6 kW for an hour at most 6 kWh (with margin): 1 MWh in a second is not energy
    assert p.check(3000, {"e_prod_wh": 1_000_901}) == ("implausible",)
    assert p.check(4000, {"e_prod_wh": 1_000_902}) == ()


def test_new_meter_starts_a_segment() -> None:
    p = Plausibility()
    assert p.check(0, {"e_imp_wh": 90_000}, "A") == ()
    assert p.check(1, {"e_imp_wh": 3}, "B") == ("meter_replaced",)  # not "backwards"
    assert p.check(2, {"e_imp_wh": 4}, "B") == ()


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=50))
def test_increasing_counters_within_rating_never_flagged(steps: list[int]) -> None:
    p = Plausibility(rated_power_w=200_000)
    v = 0
    for i, d in enumerate(steps):
        v += d
        assert p.check(i * 1000, {"e_imp_wh": v, "p_w": i}) == ()
