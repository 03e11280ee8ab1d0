"""Exact SunSpec values: each point with the scale factor of its own response, requests
split so that a point never leaves its scale factor, no scale factor kept across reads,
and the integer/float twin read when a device answers the other variant."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.rtu_line import RtuLine
from gateway.drivers import DeviceSpec, open_device, sunspec
from tests.drivers.drivers_helpers import ImageSim, sunspec_image

COMMON = {"Mn": "Fronius", "Md": "Symo 8.2-3-M", "SN": "29384756", "Vr": "3.2.1", "DA": 1}
INT_103 = {"W": 5432, "W_SF": 0, "WH": 123456789, "WH_SF": 0, "Hz": 5001, "Hz_SF": -2,
           "PhVphA": 2301, "V_SF": -1, "A": 1234, "A_SF": -2, "St": 4}
FLOAT_113 = {"W": 2500.0, "WH": 9876543.0, "Hz": 50.02, "PhVphA": 231.4, "A": 10.82, "St": 4}


# -- pure: request plans and same-response scaling -----------------------------------------

@st.composite
def point_tables(draw: st.DrawFn) -> tuple[dict[str, sunspec.Point], int]:
    """A random long model: points scattered over up to 600 registers, each with a scale
    factor register somewhere within 60 registers of it."""
    end = draw(st.integers(130, 600))
    table: dict[str, sunspec.Point] = {}
    for i in range(draw(st.integers(1, 40))):
        off = draw(st.integers(2, end - 2))
        kind = draw(st.sampled_from(["u16", "s16", "acc32"]))
        sf_name = None
        if draw(st.booleans()):
            sf_off = min(end - 1, max(2, off + draw(st.integers(-60, 60))))
            sf_name = f"SF{i}"
            table[sf_name] = (sf_off, "sf", None)
        table[f"P{i}"] = (off, kind, sf_name)
    return table, end


@given(point_tables())
def test_split_keeps_every_point_with_its_scale_factor(case: tuple[dict, int]) -> None:
    table, end = case
    plan = sunspec.split_points(table, end)
    assert all(1 <= n <= sunspec.MAX_READ for _, n in plan)
    assert all(a <= b for (a, _), (b, _) in itertools.pairwise(plan))  # in order
    for offset, kind, sf_name in table.values():
        if offset + (2 if kind == "acc32" else 1) > end:
            continue
        width = 2 if kind == "acc32" else 1
        sf_off = table[sf_name][0] if sf_name is not None else offset
        assert any(a <= offset and offset + width <= a + n and a <= sf_off < a + n
                   for a, n in plan), (offset, sf_off, plan)


def test_a_model_longer_than_one_request_is_split_at_safe_places() -> None:
    # a vendor-extended meter model 203 announcing 300 registers
    plan = sunspec.read_plan(sunspec.ModelRef(203, 40100, 300))
    assert plan[0][0] == 40102 and all(n <= 125 for _, n in plan)
    table = sunspec.POINTS[203]
    for name, (off, _kind, sf_name) in table.items():
        sf_off = table[sf_name][0] if sf_name else off
        assert any(a - 40100 <= min(off, sf_off) and max(off, sf_off) < a - 40100 + n
                   for a, n in plan), name


def test_a_point_whose_scale_factor_is_in_another_response_is_left_out() -> None:
    regs = sunspec_image([(103, INT_103)])[2:]  # model 103 from its ID register
    # W (14) in the first response, W_SF (15) only in the second: W cannot be trusted
    blocks = [(0, regs[:15]), (15, regs[15:])]
    values = sunspec.decode_blocks(103, blocks)
    assert "p_w" not in values
    assert values["e_prod_wh"] == 123456789 and values["f_mhz"] == 50010


def test_scale_factors_come_from_each_read_not_an_earlier_one() -> None:
    a = sunspec_image([(103, {**INT_103, "W": 5432, "W_SF": 0})])[2:]
    b = sunspec_image([(103, {**INT_103, "W": 27160, "W_SF": -1})])[2:]  # 2716 W
    c = sunspec_image([(103, {**INT_103, "W": 543, "W_SF": 1})])[2:]  # 5430 W
    assert [sunspec.decode_model(103, r)["p_w"] for r in (a, b, c, a)] == [5432, 2716, 5430, 5432]


# -- on a line: integer/float fallback ------------------------------------------------------

@pytest.fixture
def line() -> Iterator[tuple[RtuLine, ImageSim]]:
    sim = ImageSim(sunspec_image([(1, COMMON), (103, INT_103)]))
    rtu = RtuLine({1: sim}, baudrate=115200, pace=False).start()  # type: ignore[dict-item]
    yield rtu, sim
    rtu.stop()


def _open(path: str):
    return open_device(DeviceSpec("inv", "sunspec", None, path, 1, "production",
                                  baudrate=115200, timeout_s=1))


def test_lists_the_integer_model_answers_the_float_one(line) -> None:
    rtu, sim = line
    dev = _open(rtu.path)
    try:
        assert dev.read().values["p_w"] == 5432  # discovered as 103
        # the owner switches the inverter to "float" (Fronius: Modbus → float): same place
        sim.regs = sunspec_image([(1, COMMON), (113, FLOAT_113)])
        m = dev.read()
        assert m.values["p_w"] == 2500 and m.values["e_prod_wh"] == 9876543
        assert dev.target.id == 113 and dev.fallbacks == 1
        assert dev.read().values["f_mhz"] == 50020  # and stays on it
        assert dev.fallbacks == 1
    finally:
        dev.close()


def test_both_listed_the_answered_one_is_used(line) -> None:
    rtu, sim = line
    # lists 103 and 113; the integer one is left "not implemented"
    sim.regs = sunspec_image([(1, COMMON), (103, {"St": 4}), (113, FLOAT_113)])
    dev = _open(rtu.path)
    try:
        m = dev.read()
        assert m.values["p_w"] == 2500 and dev.target.id == 113
        assert dev.describe()["models"] == [1, 103, 113]
    finally:
        dev.close()

