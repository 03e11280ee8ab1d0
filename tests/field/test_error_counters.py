"""Meters sending bad checksums ten times a second: the device and line counters are exact,
class by class (a Modbus RTU meter with bad CRCs; a Linky whose TIC groups fail their
checksum), and good answers in between are still read."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from firmware_sim.faults import FaultDice, Faults
from firmware_sim.serial_sim import MeterState, _write, build_frame, open_pty
from gateway.drivers.base import DeviceError
from gateway.drivers.serial_device import TicDevice
from tests.field.field_helpers import make_sim, open_on, rtu_line  # noqa: F401

RATE_HZ = 10
DURATION_S = 3


def test_rtu_meter_with_bad_crcs_gives_exact_counters(rtu_line) -> None:  # noqa: F811
    bad = make_sim("meter", 1, seed=3, faults=Faults(bad_checksum_rate=1.0))
    good = make_sim("inverter", 2, seed=4)
    line = rtu_line({1: bad, 2: good}, baudrate=115200, pace=False)
    meter, inverter = open_on(line, 1, "grid"), open_on(line, 2, "production")
    try:
        inverter.read()  # discovery of the good neighbour first
        kinds: dict[str, int] = {}
        polls = 0
        next_at = time.monotonic()
        for _ in range(RATE_HZ * DURATION_S):
            polls += 1
            try:
                meter.read()
            except DeviceError as exc:
                kinds[exc.kind] = kinds.get(exc.kind, 0) + 1
            next_at += 1 / RATE_HZ
            time.sleep(max(0.0, next_at - time.monotonic()))
        inverter.read()  # the neighbour on the same line is unaffected
        # every answer had a bad CRC: each poll fails at its first request, as a checksum
        assert kinds == {"checksum": polls}
        assert bad.injected == {"checksum": polls}
        assert meter.counters() == {"timeout": 0, "checksum": polls, "frame": 0, "exception": 0,
                                    "connection": 0, "ok": 0, "fallbacks": 0}
        assert inverter.counters()["checksum"] == 0 and inverter.counters()["ok"] > 0
        assert meter.line.stats.errors == {"checksum": polls}
    finally:
        meter.close()
        inverter.close()


def test_rtu_meter_with_some_bad_crcs_counts_each_class_exactly(rtu_line) -> None:  # noqa: F811
    sim = make_sim("meter", 1, seed=5, faults=Faults(bad_checksum_rate=0.3, exception_rate=0.1))
    line = rtu_line({1: sim}, baudrate=115200, pace=False)
    dev = open_on(line, 1, "grid")
    ok = 0
    try:
        for _ in range(60):
            try:
                dev.read()
                ok += 1
            except DeviceError:
                pass
        c = dev.counters()
        assert c["checksum"] == sim.injected["checksum"] > 0
        assert c["exception"] == sim.injected["exception"] > 0
        assert c["timeout"] == c["frame"] == 0
        assert c["ok"] + c["checksum"] + c["exception"] == sim.requests
        assert ok > 0
    finally:
        dev.close()


def test_tic_meter_with_bad_checksums_ten_times_a_second() -> None:
    # the meter side: frames built by the simulator, every other one with a bad group checksum
    master, slave, path = open_pty(1200, 7, "E")
    dev = TicDevice("linky", path, "historique", timeout_s=3)
    dev.reader.open()  # before the first frame, so that the count starts with it
    good_dice = FaultDice(Faults(), 1)
    bad_dice = FaultDice(Faults(bad_checksum_rate=1.0), 2)
    n = RATE_HZ * DURATION_S
    sent_bad = 0

    def meter() -> None:
        nonlocal sent_bad
        for i in range(n):
            state = MeterState(datetime.now(UTC), 1_234_000 + i, 0, 500, 2300)
            bad = i % 2 == 1
            sent_bad += bad
            frame = build_frame("tic", "historique", state, 7, bad_dice if bad else good_dice)
            assert frame is not None
            _write(master, slave, frame)
            time.sleep(1 / RATE_HZ)

    writer = threading.Thread(target=meter, daemon=True)
    readings = []
    try:
        writer.start()
        while writer.is_alive():
            try:
                readings.append(dev.read().values["e_imp_wh"])
            except DeviceError as exc:
                assert exc.kind == "checksum"
            time.sleep(0.5)
        writer.join()
        time.sleep(0.3)
        try:  # the frames sent since the last poll; none left gives a timeout
            readings.append(dev.read().values["e_imp_wh"])
        except DeviceError as exc:
            assert exc.kind in ("checksum", "timeout")
        c = dev.counters()
        assert c["frames"] == n and c["checksum"] == sent_bad == n // 2
        assert c["ok"] == n - sent_bad and c["frame"] == 0
        assert readings and readings == sorted(readings)  # newest good frame each time
    finally:
        dev.close()
        import os

        os.close(master)
        os.close(slave)
