"""Devices in the field: the Modbus proxy for the owner's other tools, and an inverter
asleep at night (issue "Devices in the field")."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gw_helpers import Mosquitto, Procs, Subscriber, free_port, verify_stream, wait_port, write_config
from pymodbus.client import ModbusTcpClient
from test_durability import inverter, status, wait_for

from quartier.clock import SIM_CLOCK_ENV, SimClock


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path)
    yield b
    b.stop()


def test_proxy_serves_a_single_client_inverter(tmp_path: Path, broker: Mosquitto,
                                               procs: Procs) -> None:
    sim = procs.sim(tmp_path, "--max-clients", "1")
    xp = free_port()
    config = write_config(tmp_path, broker.url, [inverter(sim, interval="300ms")],
                          extra="")
    config.write_text(config.read_text() + f'\n[[proxy]]\nlisten = "127.0.0.1:{xp}"\n'
                      'device = "inverter"\ncache_age = "1s"\n')
    sub = Subscriber(broker.port)
    gw = procs.gateway(config)
    try:
        wait_port(xp, 20)
        c = ModbusTcpClient("127.0.0.1", port=xp, timeout=3, retries=0)
        assert c.connect()
        for _ in range(20):  # while the gateway polls the same single-client inverter
            rr = c.read_holding_registers(40000, count=2, device_id=1)
            assert not rr.isError() and rr.registers == [0x5375, 0x6E53]  # "SunS"
            time.sleep(0.05)
        model = c.read_holding_registers(40002, count=2, device_id=1)
        assert model.registers[0] == 1  # the common model, forwarded unchanged
        refused = c.write_register(40002, 7, device_id=1)
        assert refused.isError() and refused.exception_code == 1  # ILLEGAL FUNCTION
        c.close()
        time.sleep(1.0)
        st = status(config)
        (proxy,) = st["proxies"]
        assert proxy["refused"] == 1 and proxy["forwarded"] >= 1 and proxy["cached"] >= 1
        assert st["devices"]["inverter"]["state"] == "ok"
        assert st["devices"]["inverter"]["errors"] == {}
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(15)
        sub.stop()
    assert len(verify_stream(sub.payloads)) >= 5


def test_inverter_asleep_at_night_leaves_no_gap_and_no_alarm(tmp_path: Path, broker: Mosquitto,
                                                             procs: Procs) -> None:
    # 21:30 in Paris on midsummer's day, 300 simulated seconds per second: night
    # falls a few seconds into the test.
    origin = 1_718_998_200_000  # 2024-06-21T19:30:00Z
    clock = SimClock(origin, int(time.time() * 1000), 300.0)
    os.environ[SIM_CLOCK_ENV] = clock.to_env()
    try:
        sim = procs.sim(tmp_path, "--sleep-at-night", "--speed", "300")
        config = write_config(tmp_path, broker.url, [inverter(sim, interval="300ms")])
        sub = Subscriber(broker.port)
        gw = procs.gateway(config)
    finally:
        del os.environ[SIM_CLOCK_ENV]
    try:
        wait_for(lambda: status(config)["devices"]["inverter"]["state"] == "asleep", 40,
                 "the inverter to fall asleep")
        wait_for(lambda: any("asleep" in r.get("flags", []) for r in sub.readings()), 20,
                 "a carried reading")
        st = status(config)["devices"]["inverter"]
        assert st["state"] == "asleep" and st["readings"] > 0
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(15)
        sub.stop()
    verify_stream(sub.payloads)
    readings = sub.readings()
    awake = [r for r in readings if "asleep" not in r.get("flags", [])]
    carried = [r for r in readings if "asleep" in r.get("flags", [])]
    assert carried and awake
    # the production counter is carried, with zero power: the night's energy is zero
    assert all(r["m"]["e_prod_wh"] == awake[-1]["m"]["e_prod_wh"] for r in carried)
    assert all(r["m"]["p_w"] == 0 for r in carried)
    log = (tmp_path / "gateway.log").read_text()
    assert "event=device_asleep" in log and "event=device_error" not in log
