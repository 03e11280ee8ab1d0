"""Pure simulation curves: the sun, clouds, load, counters that only grow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim import curves
from firmware_sim.faults import FaultDice, Faults
from firmware_sim.plant import Plant
from firmware_sim.serial_sim import MeterState, build_frame
from gateway.drivers import p1, tic


def test_sun_is_up_at_noon_in_june_and_down_at_midnight() -> None:
    noon = datetime(2024, 6, 21, 11, 50, tzinfo=UTC)  # solar noon in Paris ≈ 11:50 UTC
    assert 60 < curves.sun_elevation_deg(noon, 48.85, 2.35) < 66  # 90 - 48.85 + 23.44
    assert curves.sun_elevation_deg(noon.replace(hour=0), 48.85, 2.35) < 0
    assert curves.pv_power_w(noon.replace(hour=0), 6000, curves.Clouds.from_seed(1)) == 0


def test_same_seed_same_day() -> None:
    t = datetime(2024, 5, 1, 12, tzinfo=UTC)
    a = [curves.pv_power_w(t + timedelta(minutes=m), 5000, curves.Clouds.from_seed(4)) for m in range(60)]
    b = [curves.pv_power_w(t + timedelta(minutes=m), 5000, curves.Clouds.from_seed(4)) for m in range(60)]
    assert a == b and max(a) <= 5000


@settings(max_examples=30)
@given(st.integers(0, 1000), st.lists(st.integers(1, 7200), min_size=2, max_size=40),
       st.sampled_from(["inverter", "meter"]))
def test_energy_counters_only_grow(seed: int, steps: list[int], kind: str) -> None:
    plant = Plant(kind=kind, seed=seed, peak_w=4000)
    t = datetime(2024, 3, 20, 4, tzinfo=UTC)
    last = plant.state(t, 0)
    for s in steps:
        t += timedelta(seconds=s)
        now = plant.state(t, 0)
        assert now.e_wh >= last.e_wh and now.e_exp_wh >= last.e_exp_wh
        last = now


def test_counter_reset_fault() -> None:
    plant = Plant(kind="inverter", seed=1, faults=Faults(counter_reset_after_s=60))
    t = datetime(2024, 6, 21, 12, tzinfo=UTC)
    assert plant.state(t, 0).e_wh > 1_000_000
    assert plant.state(t + timedelta(seconds=61), 61).e_wh < 1000


# TIC indexes have 9 digits: a real meter wraps at 10**9 Wh, and so does the simulator
@given(st.integers(0, 10**9 - 1), st.integers(0, 10**8), st.integers(-9000, 9000),
       st.sampled_from(["historique", "standard"]))
def test_tic_frames_decode_to_the_state(imp: int, exp: int, p_w: int, mode: str) -> None:
    s = MeterState(datetime(2024, 1, 1, tzinfo=UTC), imp, exp, p_w, 2310)
    frame = build_frame("tic", mode, s, 1, FaultDice(Faults(), 1))
    assert frame is not None
    m = tic.decode_frame(frame).measurement()
    assert m.values["e_imp_wh"] == imp
    if mode == "standard":
        assert m.values["e_exp_wh"] == exp and m.meter_point


@given(st.integers(0, 10**9), st.integers(0, 10**8), st.integers(-9000, 9000))
def test_p1_telegrams_decode_to_the_state(imp: int, exp: int, p_w: int) -> None:
    s = MeterState(datetime(2024, 1, 1, tzinfo=UTC), imp, exp, p_w, 2310)
    frame = build_frame("p1", "5", s, 1, FaultDice(Faults(), 1))
    assert frame is not None
    m = p1.decode_telegram(frame).measurement()
    assert (m.values["e_imp_wh"], m.values["e_exp_wh"], m.values["p_w"]) == (imp, exp, p_w)


def test_bad_checksum_fault_gives_typed_errors() -> None:
    s = MeterState(datetime(2024, 1, 1, tzinfo=UTC), 1000, 0, 100, 2300)
    dice = FaultDice(Faults(bad_checksum_rate=1.0), 2)
    for kind, variant in (("tic", "historique"), ("tic", "standard"), ("p1", "5")):
        frame = build_frame(kind, variant, s, 1, dice)
        assert frame is not None
        decoded = tic.decode_frame(frame) if kind == "tic" else p1.decode_telegram(frame)
        assert decoded.errors and decoded.errors[0].kind == "checksum"
