"""SunSpec: point tables against pysunspec2, exact scaling, a pysunspec2-laid-out map read
through a real pymodbus server, typed errors on garbage."""

from __future__ import annotations

import contextlib
import json
import os
import struct

import pytest
import sunspec2
import sunspec2.device as ssdevice
from hypothesis import given
from hypothesis import strategies as st

from gateway.drivers import DeviceSpec, open_device, sunspec
from gateway.drivers.base import DeviceError
from gateway.drivers.probe import probe_modbus
from tests.drivers.drivers_helpers import image_server  # noqa: F401  (fixture)

MODELS_DIR = os.path.join(os.path.dirname(sunspec2.__file__), "models", "json")
TYPES = {"u16": ("uint16", "enum16"), "s16": ("int16",), "acc32": ("acc32",), "sf": ("sunssf",),
         "f32": ("float32",)}


@pytest.mark.parametrize("model_id", sorted(sunspec.POINTS))
def test_point_table_matches_pysunspec2(model_id: int) -> None:
    with open(os.path.join(MODELS_DIR, f"model_{model_id}.json")) as f:
        group = json.load(f)["group"]
    offsets, off = {}, 0
    for p in group["points"]:
        offsets[p["name"]] = (off, p["type"], p.get("sf"))
        off += p["size"]
    assert off - 2 == sunspec.LENGTHS[model_id]
    for name, (offset, kind, sf) in sunspec.POINTS[model_id].items():
        their_offset, their_type, their_sf = offsets[name]
        assert offset == their_offset, name
        assert their_type in TYPES[kind], (name, their_type)
        assert sf == their_sf, name


def regs_of(model_id: int, values: dict[str, object]) -> list[int]:
    m = ssdevice.Model(model_id)
    for k, v in values.items():
        getattr(m, k).value = v
    mb = m.get_mb()
    return list(struct.unpack(f">{len(mb) // 2}H", mb))


def test_decode_inverter_laid_out_by_pysunspec2() -> None:
    regs = regs_of(103, {"A": 1234, "A_SF": -2, "W": 5432, "W_SF": 0, "WH": 123456789,
                         "WH_SF": 0, "Hz": 5001, "Hz_SF": -2, "PhVphA": 2301, "V_SF": -1, "St": 4})
    values = sunspec.decode_model(103, regs)
    assert values == {"p_w": 5432, "e_prod_wh": 123456789, "f_mhz": 50010, "v_dv": 2301,
                      "v_dv_l1": 2301, "i_ma": 12340, "st": 4}


def test_not_implemented_and_missing_scale_factor_are_absent() -> None:
    # W is set but W_SF is "not implemented": the value cannot be trusted, so it is dropped
    values = sunspec.decode_model(103, regs_of(103, {"W": 100, "WH": 5, "WH_SF": 0}))
    assert "p_w" not in values and "f_mhz" not in values
    assert values["e_prod_wh"] == 5


def test_float_meter_model() -> None:
    regs = regs_of(213, {"W": -1500.4, "TotWhImp": 12345678.0, "TotWhExp": 42.0, "Hz": 49.98,
                         "PhVphA": 229.9})
    values = sunspec.decode_model(213, regs)
    assert values["p_w"] == -1500 and values["e_imp_wh"] == 12345678
    assert values["e_exp_wh"] == 42 and values["f_mhz"] == 49980 and values["v_dv"] == 2299


@given(st.integers(0, 65534), st.integers(-10, 10), st.integers(0, 3))
def test_scaling_is_exact_integer_arithmetic(raw: int, sf: int, exponent: int) -> None:
    from decimal import Decimal

    want = Decimal(raw).scaleb(sf + exponent).to_integral_value(rounding="ROUND_HALF_EVEN")
    assert sunspec._scale_int(raw, sf + exponent) == int(want)


def test_read_plan_stays_within_125_registers() -> None:
    assert sunspec.read_plan(sunspec.ModelRef(103, 40070, 50)) == [(40070, 52)]
    assert sunspec.read_plan(sunspec.ModelRef(213, 40070, 124)) == [(40072, 124)]
    assert sunspec.read_plan(sunspec.ModelRef(64000, 0, 300)) == [(2, 125), (127, 125), (252, 50)]


@given(st.lists(st.integers(0, 0xFFFF), max_size=130), st.sampled_from(sorted(sunspec.POINTS)))
def test_random_registers_never_crash(regs: list[int], model_id: int) -> None:
    with contextlib.suppress(DeviceError):
        sunspec.decode_model(model_id, [model_id, *regs])


def test_probe_reads_a_pysunspec2_map(image_server) -> None:  # noqa: F811
    port = image_server("fronius-103")
    out = probe_modbus(f"tcp://127.0.0.1:{port}", 1)
    assert out["models"] == [1, 103]
    assert out["manufacturer"] == "Fronius" and out["serial"] == "29384756"
    m = out["m"]
    assert (m["p_w"], m["e_prod_wh"], m["f_mhz"], m["v_dv"], m["i_ma"]) == (
        5432, 123456789, 50010, 2301, 12340)


def test_device_meter_role_and_float_model(image_server) -> None:  # noqa: F811
    meter = open_device(DeviceSpec("grid", "sunspec", f"tcp://127.0.0.1:{image_server('meter-203')}",
                                   None, 1, "grid"))
    try:
        m = meter.read()
        assert m.values["p_w"] == -1234 and m.values["e_imp_wh"] == 4567890
        assert m.values["e_exp_wh"] == 1234567 and m.meter_id == "MTR-77"
        assert m.values["i_ma"] == -5310
    finally:
        meter.close()
    inv = open_device(DeviceSpec("inv", "sunspec", f"tcp://127.0.0.1:{image_server('float-113')}",
                                 None, 1, "production"))
    try:
        m = inv.read()
        assert m.values["p_w"] == 2500 and m.values["e_prod_wh"] == 9876543
        assert m.values["f_mhz"] == 50020 and m.values["v_dv"] == 2314
        assert m.flags == ("asleep",)  # St = 2, sleeping
    finally:
        inv.close()


def test_base_address_zero_and_positive_scale_factors(image_server) -> None:  # noqa: F811
    dev = open_device(DeviceSpec("inv", "sunspec", f"tcp://127.0.0.1:{image_server('base-0')}",
                                 None, 1, "production"))
    try:
        m = dev.read()
        assert m.values["p_w"] == 10000 and m.values["e_prod_wh"] == 777000
        assert m.values["f_mhz"] == 50000 and m.values["i_ma"] == 4300
    finally:
        dev.close()


def test_nothing_listening_is_a_connection_error() -> None:
    from tests.drivers.drivers_helpers import free_port

    dev = open_device(DeviceSpec("inv", "sunspec", f"tcp://127.0.0.1:{free_port()}", None, 1,
                                 "production", timeout_s=0.5))
    try:
        with pytest.raises(DeviceError) as info:
            dev.read()
        assert info.value.kind == "connection"
        with pytest.raises(DeviceError) as again:  # backoff: no new attempt right away
            dev.read()
        assert "next attempt" in str(again.value)
    finally:
        dev.close()
