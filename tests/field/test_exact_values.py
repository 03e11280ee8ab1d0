"""An inverter and a meter whose scale factors change encoding at every request (the
simulator's --sf-change, with values moving as well) decode exactly, every time."""

from __future__ import annotations

import pytest

from firmware_sim.faults import Faults
from gateway.drivers import sunspec
from gateway.drivers.spec import Role
from tests.field.field_helpers import make_sim, open_on, rtu_line  # noqa: F401

READS = 150
SF_POINTS = {"inverter": ("A_SF", "V_SF", "W_SF", "Hz_SF", "WH_SF"),
             "meter": ("A_SF", "V_SF", "W_SF", "TotWh_SF")}


@pytest.mark.parametrize(("kind", "role", "model"), [("inverter", "production", 103),
                                                     ("meter", "grid", 203)])
def test_changing_scale_factors_decode_exactly_every_time(rtu_line, kind: str, role: Role,  # noqa: F811
                                                          model: int) -> None:
    sim = make_sim(kind, 1, seed=11, faults=Faults(sf_change=True))
    line = rtu_line({1: sim}, baudrate=115200, pace=False)
    dev = open_on(line, 1, role)
    table = sunspec.POINTS[model]
    off = 2 + 66 + 2  # the device model's ID register in the simulator's image
    seen: set[tuple[int, ...]] = set()
    try:
        for _ in range(READS):
            values = dev.read().values
            want = sim.expected()
            assert {k: values.get(k) for k in want} == want
            image = sim.last_image
            seen.add(tuple(image[off + table[p][0]] for p in SF_POINTS[kind]))
    finally:
        dev.close()
    # the encodings really changed from one request to the next, many times over
    assert len(seen) >= 8
