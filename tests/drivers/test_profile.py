"""Register-map profiles: shipped files parse, reads are planned, two devices share a line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gateway.drivers import DeviceSpec, open_device
from gateway.drivers.modbus_line import Endpoint, ModbusLine
from gateway.drivers.profile import (
    ProfileError,
    ProfilePoint,
    decode_point,
    load_profile,
    parse_profile,
    plan_reads,
    shipped_profiles,
)
from tests.drivers.drivers_helpers import free_port, start, stop, wait_port


def test_shipped_profiles_parse() -> None:
    assert {"huawei-sun2000", "eastron-sdm630"} <= set(shipped_profiles())
    for name in shipped_profiles():
        profile = load_profile(name)
        assert profile.points and profile.manufacturer


def test_errors_name_the_profile_and_point() -> None:
    with pytest.raises(ProfileError, match="profile x: point 'p_w' lacks 'address'"):
        parse_profile("x", '[[point]]\nname = "p_w"\ntype = "int32"\n')
    with pytest.raises(ProfileError, match="unknown type 'int24'"):
        parse_profile("x", '[[point]]\nname = "p_w"\naddress = 1\ntype = "int24"\n')
    with pytest.raises(ProfileError, match="no profile 'nope'"):
        load_profile("nope")


def test_plan_and_decode() -> None:
    pts = [ProfilePoint("a", 10, "int32"), ProfilePoint("b", 12, "uint16"), ProfilePoint("c", 200, "uint16")]
    assert plan_reads(pts, 0) == [(10, 3), (200, 1)]
    assert plan_reads(pts, 200) == [(10, 3), (200, 1)]  # 191 registers: over the 125 limit
    assert plan_reads([*pts[:2], ProfilePoint("d", 100, "uint16")], 100) == [(10, 91)]
    assert decode_point(ProfilePoint("p", 0, "int32"), [0xFFFF, 0xFFFE], "big") == -2
    assert decode_point(ProfilePoint("p", 0, "int32"), [0xFFFE, 0xFFFF], "little") == -2
    assert decode_point(ProfilePoint("e", 0, "uint32", mul=10), [0x0001, 0x0000], "big") == 655360


@pytest.fixture
def vendor_line() -> object:
    port = free_port()
    proc = start([sys.executable, str(Path(__file__).with_name("profile_server.py")), str(port)])
    wait_port(port)
    yield port
    stop(proc)


def test_two_profiles_share_one_endpoint(vendor_line) -> None:
    url = f"tcp://127.0.0.1:{vendor_line}"
    inv = open_device(DeviceSpec("inv", "profile", url, None, 1, "production", profile="huawei-sun2000"))
    meter = open_device(DeviceSpec("sdm", "profile", url, None, 2, "grid", profile="eastron-sdm630"))
    try:
        assert inv.line is meter.line  # type: ignore[attr-defined]
        m = inv.read()
        assert m.values == {"v_dv": 2318, "i_ma": 8123, "p_w": 5432, "f_mhz": 50010,
                            "e_prod_wh": 12345670}
        assert m.meter_id == "HV2150123456"
        g = meter.read()
        assert g.values == {"v_dv": 2315, "i_ma_l1": 4250, "p_w": -812, "f_mhz": 49970,
                            "e_imp_wh": 1234500, "e_exp_wh": 321250}
        assert inv.line.stats.requests >= 4  # type: ignore[attr-defined]
    finally:
        inv.close()
        meter.close()
    assert Endpoint.parse(url, None) not in ModbusLine._registry
