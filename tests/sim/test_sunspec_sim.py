"""The SunSpec simulator as a real peer: pysunspec2 scans it, the project reads it, and its
faults (single client, changing scale factors, sleep at night) behave like field devices."""

from __future__ import annotations

import time

import sunspec2.modbus.client as ssclient
from pymodbus.client import ModbusTcpClient

from gateway.drivers import DeviceSpec, open_device
from gateway.drivers.base import DeviceError
from tests.drivers.drivers_helpers import sunspec_sim  # noqa: F401  (fixture)


def test_pysunspec2_scans_the_inverter(sunspec_sim) -> None:  # noqa: F811
    port = sunspec_sim("--device", "inverter", "--speed", "600", "--start", "2024-06-21T11:00:00+00:00")
    d = ssclient.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port)
    try:
        d.scan()
        ids = [k for k in d.models if isinstance(k, int)]
        assert ids == [1, 103]
        inv = d.models[103][0]
        inv.read()
        wh1, w = inv.WH.cvalue, inv.W.cvalue
        assert 500 < w <= 6000, w  # a June noon in Paris
        assert 49.9 < inv.Hz.cvalue < 50.1 and 220 < inv.PhVphA.cvalue < 240
        assert inv.St.cvalue == 4
        time.sleep(1.0)
        inv.read()
        assert inv.WH.cvalue > wh1 > 0
        common = d.models[1][0]
        assert common.Mn.cvalue == "Quartier" and common.SN.cvalue == "SIMI00000"
    finally:
        d.close()


def test_pysunspec2_scans_the_meter_and_project_agrees(sunspec_sim) -> None:  # noqa: F811
    port = sunspec_sim("--device", "meter", "--seed", "7")
    d = ssclient.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port)
    dev = open_device(DeviceSpec("grid", "sunspec", f"tcp://127.0.0.1:{port}", None, 1, "grid"))
    try:
        d.scan()
        meter = d.models[203][0]
        meter.read()
        ours = dev.read()
        assert abs(ours.values["e_imp_wh"] - meter.TotWhImp.cvalue) <= 5
        assert ours.values["e_exp_wh"] >= 0 and ours.meter_id == "SIMM00007"
    finally:
        d.close()
        dev.close()


def test_max_clients_one_refuses_a_second_client(sunspec_sim) -> None:  # noqa: F811
    port = sunspec_sim("--device", "inverter", "--max-clients", "1")
    first = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    second = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    try:
        assert first.connect()
        assert not first.read_holding_registers(40000, count=2, device_id=1).isError()
        answered = False
        if second.connect():
            try:
                answered = not second.read_holding_registers(40000, count=2, device_id=1).isError()
            except Exception:
                answered = False
        assert not answered
        assert not first.read_holding_registers(40000, count=2, device_id=1).isError()
        first.close()
        time.sleep(0.3)
        third = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        assert third.connect()  # the slot is free again once the first client left
        assert not third.read_holding_registers(40000, count=2, device_id=1).isError()
        third.close()
    finally:
        first.close()
        second.close()


def test_changing_scale_factors_decode_exactly(sunspec_sim) -> None:  # noqa: F811
    # frozen values with scale factors re-encoded at every request: every read must agree
    port = sunspec_sim("--device", "inverter", "--sf-change", "--freeze-after", "0",
                       "--start", "2024-06-21T10:00:00+00:00", "--seed", "5")
    dev = open_device(DeviceSpec("inv", "sunspec", f"tcp://127.0.0.1:{port}", None, 1, "production"))
    raw = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    try:
        first = dev.read().values
        assert raw.connect()
        sfs = set()
        for _ in range(30):
            assert dev.read().values == first
            regs = raw.read_holding_registers(40070, count=52, device_id=1).registers
            sfs.add((regs[6], regs[13], regs[17]))  # A_SF, V_SF, Hz_SF
        assert len(sfs) > 1  # the encoding really changed between requests
    finally:
        raw.close()
        dev.close()


def test_inverter_asleep_at_night_does_not_answer(sunspec_sim) -> None:  # noqa: F811
    port = sunspec_sim("--device", "inverter", "--sleep-at-night",
                       "--start", "2024-12-21T01:00:00+00:00")
    dev = open_device(DeviceSpec("inv", "sunspec", f"tcp://127.0.0.1:{port}", None, 1,
                                 "production", timeout_s=0.5))
    try:
        try:
            dev.read()
            raise AssertionError("an inverter asleep answered")
        except DeviceError as exc:
            assert exc.kind == "timeout"
    finally:
        dev.close()


def test_awake_at_night_reports_zero_power_and_sleeping_state(sunspec_sim) -> None:  # noqa: F811
    port = sunspec_sim("--device", "inverter", "--start", "2024-12-21T01:00:00+00:00")
    dev = open_device(DeviceSpec("inv", "sunspec", f"tcp://127.0.0.1:{port}", None, 1, "production"))
    try:
        m = dev.read()
        assert m.values["p_w"] == 0 and m.flags == ("asleep",)
    finally:
        dev.close()
