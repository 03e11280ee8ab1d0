"""TIC and P1 drivers over a real pty fed by the simulators, opened with pyserial at the
meters' line settings (7E1 1200/9600 for TIC, 8N1 115200 for DSMR 5)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import serial

from gateway.drivers import DeviceSpec, open_device
from gateway.drivers.base import DeviceError
from gateway.drivers.serial_device import P1Device, TicDevice
from tests.drivers.drivers_helpers import QUARTIER, sim_pty  # noqa: F401  (fixture)


@pytest.mark.parametrize("mode", ["historique", "standard"])
def test_tic_device_reads_frames(sim_pty, mode: str) -> None:  # noqa: F811
    path = sim_pty("tic", "--mode", mode, "--pty", "--interval", "0.2", "--speed", "3600")
    dev = open_device(DeviceSpec("linky", "tic", None, path, 0, "grid", mode=mode))
    assert isinstance(dev, TicDevice)
    try:
        ser = dev.reader.serial
        first = dev.read()
        ser = dev.reader.serial
        assert ser.bytesize == serial.SEVENBITS and ser.parity == serial.PARITY_EVEN
        assert ser.baudrate == (1200 if mode == "historique" else 9600)
        second = dev.read()
        assert second.values["e_imp_wh"] >= first.values["e_imp_wh"] > 0
        assert first.meter_id and len(first.meter_id) == 12
        if mode == "standard":
            assert first.meter_point and "e_exp_wh" in first.values
    finally:
        dev.close()


def test_p1_device_reads_telegrams_at_115200_8n1(sim_pty) -> None:  # noqa: F811
    path = sim_pty("p1", "--version", "5", "--pty", "--interval", "0.2")
    dev = open_device(DeviceSpec("p1", "p1", None, path, 0, "grid"))
    assert isinstance(dev, P1Device)
    try:
        m = dev.read()
        ser = dev.reader.serial
        assert (ser.baudrate, ser.bytesize, ser.parity) == (115200, 8, serial.PARITY_NONE)
        assert m.values["e_imp_wh"] > 0 and "p_w" in m.values
    finally:
        dev.close()


def test_bad_checksums_are_typed_errors_not_crashes(sim_pty) -> None:  # noqa: F811
    path = sim_pty("tic", "--mode", "historique", "--pty", "--interval", "0.1",
                   "--bad-checksum-rate", "1")
    dev = TicDevice("linky", path, "historique", timeout_s=3)
    try:
        with pytest.raises(DeviceError) as info:
            dev.read()
        assert info.value.kind == "checksum"
        assert "TIC checksum mismatch on group" in str(info.value)
    finally:
        dev.close()


def test_dropped_bytes_give_typed_errors_and_good_frames_still_pass(sim_pty) -> None:  # noqa: F811
    path = sim_pty("p1", "--version", "5", "--pty", "--interval", "0.05", "--drop-rate", "0.5",
                   "--seed", "3")
    dev = P1Device("p1", path, timeout_s=3)
    kinds, good = set(), 0
    try:
        for _ in range(12):
            try:
                dev.read()
                good += 1
            except DeviceError as exc:
                kinds.add(exc.kind)
    finally:
        dev.close()
    assert good > 0 and kinds <= {"checksum", "frame", "timeout"} and kinds


def test_silent_line_times_out() -> None:
    master, slave = os.openpty()
    try:
        dev = TicDevice("linky", os.ttyname(slave), "historique", timeout_s=0.3)
        with pytest.raises(DeviceError) as info:
            dev.read()
        assert info.value.kind == "timeout" and "1200 7E1" in str(info.value)
        dev.close()
    finally:
        os.close(master)
        os.close(slave)


def test_probe_serial_finds_p1(sim_pty) -> None:  # noqa: F811
    path = sim_pty("p1", "--version", "5", "--pty", "--interval", "0.2")
    out = subprocess.run([QUARTIER, "meter", "probe", "--serial", path], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["protocol"] == "p1" and result["line"] == "115200 8N1"
    assert result["m"]["e_imp_wh"] > 0 and result["serial"]


def test_probe_serial_finds_tic_historique(sim_pty) -> None:  # noqa: F811
    path = sim_pty("tic", "--mode", "historique", "--pty", "--interval", "0.3")
    out = subprocess.run([QUARTIER, "meter", "probe", "--serial", path], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["protocol"], result["mode"], result["line"]) == ("tic", "historique", "1200 7E1")
