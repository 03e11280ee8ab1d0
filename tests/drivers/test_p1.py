"""DSMR P1 decoding: real telegrams from NL, BE and LU meters, CRC errors, random bytes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.drivers import p1
from gateway.drivers.base import DeviceError
from tests.drivers.drivers_helpers import CAPTURES


def measure(name: str) -> p1.P1Telegram:
    telegram = p1.decode_telegram((CAPTURES / name).read_bytes())
    assert telegram.ok, telegram.errors
    return telegram


def test_dsmr5_sums_tariffs_and_reads_phases() -> None:
    m = measure("p1_dsmr50_iskra.p1").measurement()
    assert m.values["e_imp_wh"] == 4426 + 2399
    assert m.values["e_exp_wh"] == 2444
    assert m.values["p_w"] == 244
    assert m.values["v_dv_l3"] == 2290 and m.values["i_ma_l1"] == 480
    assert m.meter_id == "K8EG004046395507"  # hex-encoded ASCII equipment id


def test_dsmr42_kaifa() -> None:
    m = measure("p1_dsmr42_kaifa.p1").measurement()
    assert m.values["e_imp_wh"] == 1581123 + 1435706
    assert m.values["p_w"] == 2027 and m.values["p_w_l2"] == 1247


def test_dsmr22_without_crc() -> None:
    telegram = measure("p1_dsmr22_iskra.p1")
    assert not telegram.has_crc
    assert telegram.measurement().values["e_imp_wh"] == 2002


def test_x80_total_and_wh_units_win_over_tariff_sum() -> None:
    m = measure("p1_dsmr50_sagemcom_t210.p1").measurement()
    assert m.values["e_imp_wh"] == 6545766  # 1-0:1.8.0 in Wh
    assert m.values["e_exp_wh"] == 58 and m.values["p_w"] == 286


def test_belgian_emucs() -> None:
    m = measure("p1_emucs_fluvius.p1").measurement()
    assert m.values["e_imp_wh"] == 3457591 + 4282456
    assert m.values["e_exp_wh"] == 447891 + 203818
    assert m.values["v_dv"] == 2316 and m.values["i_ma"] == 2720
    assert m.meter_id == "1SAG1100057729"


def test_crc_mismatch_is_typed() -> None:
    raw = (CAPTURES / "p1_dsmr50_iskra.p1").read_bytes().replace(b"00.244*kW", b"00.245*kW")
    telegram = p1.decode_telegram(raw)
    err = telegram.errors[0]
    assert isinstance(err, p1.P1ChecksumError) and err.kind == "checksum"
    assert "expected" in str(err) and "got '6EEE'" in str(err)
    with pytest.raises(p1.P1ChecksumError):
        telegram.measurement()


def test_split_telegrams_resyncs() -> None:
    one = (CAPTURES / "p1_dsmr50_iskra.p1").read_bytes()
    two = (CAPTURES / "p1_emucs_fluvius.p1").read_bytes()
    telegrams, rest = p1.split_telegrams(one[100:] + two + one[:50])
    assert telegrams == [two]
    assert rest == one[:50]


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(-20000, 20000))
def test_encode_decode_round_trip(imp: int, exp: int, p_w: int) -> None:
    lines = [
        f"1-0:1.8.1({imp / 1000:010.3f}*kWh)",
        f"1-0:2.8.1({exp / 1000:010.3f}*kWh)",
        f"1-0:1.7.0({max(p_w, 0) / 1000:06.3f}*kW)",
        f"1-0:2.7.0({max(-p_w, 0) / 1000:06.3f}*kW)",
    ]
    m = p1.decode_telegram(p1.encode_telegram("XMX5TEST", lines)).measurement()
    assert (m.values["e_imp_wh"], m.values["e_exp_wh"], m.values["p_w"]) == (imp, exp, p_w)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data: bytes) -> None:
    for raw in [data, b"/" + data + b"!\r\n", *p1.split_telegrams(data)[0]]:
        with contextlib.suppress(DeviceError):
            p1.decode_telegram(raw).measurement()
