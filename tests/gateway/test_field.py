"""Devices in the field: the Modbus proxy for the owner's other tools, and an inverter
asleep at night (issue "Devices in the field")."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from gw_helpers import (
    Mosquitto,
    Procs,
    Subscriber,
    free_port,
    verify_stream,
    wait_port,
    write_config,
)
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
    mp = free_port()
    config = write_config(tmp_path, broker.url, [inverter(sim, interval="300ms")])
    config.write_text(config.read_text().replace(
        "[mqtt]", f'metrics = "127.0.0.1:{mp}"\n\n[mqtt]') + f'\n[[proxy]]\n'
        f'listen = "127.0.0.1:{xp}"\ndevice = "inverter"\ncache_age = "1s"\n')
    sub = Subscriber(broker.port)
    gw = procs.gateway(config)
    try:
        wait_port(xp, 20)
        # The device opened and polled once: what follows runs beside the gateway's polls.
        wait_for(lambda: bool(sub.readings()), 30, "a first reading")
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
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{mp}/metrics", timeout=5).read()
        text = metrics.decode()
        assert "quartier_gateway_broker_connected 1" in text
        assert 'quartier_device_up{device="inverter"} 1' in text
        assert "# TYPE quartier_device_errors_total counter" in text
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(15)
        sub.stop()
    assert len(verify_stream(sub.payloads)) >= 5


def test_inverter_asleep_at_night_leaves_no_gap_and_no_alarm(tmp_path: Path, broker: Mosquitto,
                                                             procs: Procs) -> None:
    # 21:05 in Paris on midsummer's day, 300 simulated seconds per second: night
    # falls some ten seconds into the test (time for both processes to start, even
    # on a loaded machine).
    origin = 1_718_996_700_000  # 2024-06-21T19:05:00Z
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


def test_inverter_restarted_on_the_same_port_resumes_without_gap(
        tmp_path: Path, broker: Mosquitto, procs: Procs) -> None:
    sim = procs.sim(tmp_path, "--speed", "60")
    device = {**inverter(sim, interval="200ms"), "backoff_max": "1s"}
    config = write_config(tmp_path, broker.url, [device])
    sub = Subscriber(broker.port)
    gw = procs.gateway(config)
    try:
        wait_for(lambda: len(sub.readings()) >= 5, 20, "first readings")
        procs.procs[0].kill()  # the inverter reboots (firmware update)
        procs.procs[0].wait(5)
        wait_for(lambda: status(config)["devices"]["inverter"]["consecutive_failures"] >= 2,
                 20, "failures to be noticed")
        before = len(sub.readings())
        procs.start([*procs.procs[0].args], tmp_path / "sim-again.log")  # type: ignore[list-item]
        wait_port(sim, 20)
        wait_for(lambda: len(sub.readings()) >= before + 5, 30, "readings after the restart")
        st = status(config)["devices"]["inverter"]
        assert st["state"] == "ok" and st["failures"] >= 2
        assert gw.poll() is None  # the gateway kept running
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(15)
        sub.stop()
    verify_stream(sub.payloads)


def test_hourly_claim_matches_what_the_server_computes(tmp_path: Path, broker: Mosquitto,
                                                       procs: Procs) -> None:
    from quartier import intervals
    from quartier import reading as rd
    from quartier.claim import decode_claim_message, verify_claim

    origin = 1_718_967_000_000  # 2024-06-21T10:50:00Z, a sunny morning
    os.environ[SIM_CLOCK_ENV] = SimClock(origin, int(time.time() * 1000), 600.0).to_env()
    try:
        sim = procs.sim(tmp_path, "--speed", "600")
        config = write_config(tmp_path, broker.url, [inverter(sim, interval="200ms")],
                              extra="")
        config.write_text(config.read_text() + '\n[claims]\nperiod = "hourly"\ntimezone = "UTC"\n')
        sub = Subscriber(broker.port)
        claims = Subscriber(broker.port, "quartier/demo/+/claim")
        gw = procs.gateway(config)
    finally:
        del os.environ[SIM_CLOCK_ENV]
    try:
        wait_for(lambda: len(claims.payloads) >= 1, 40, "a claim")
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(15)
        sub.stop()
        claims.stop()
    claim, sig = decode_claim_message(claims.payloads[0])
    verify_claim(claim, sig)
    assert (claim.period_start, claim.period_end) == (1_718_967_600, 1_718_971_200)
    # what the community server does with the readings it received
    received = [rd.verify_envelope(p).reading for p in sub.payloads]
    chosen = intervals.select_period_readings(received, claim.period_start, claim.period_end)
    totals = intervals.gateway_period(chosen, claim.period_start, claim.period_end)
    assert claim == totals.claim("demo", claim.gateway, claim.period_start, claim.period_end)
    assert claim.produced_wh > 0
