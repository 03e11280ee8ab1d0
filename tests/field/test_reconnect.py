"""An inverter that drops its TCP connection (restart, firmware update) is reconnected
with backoff and read again, without reopening the device; the counters say what happened."""

from __future__ import annotations

import time

from gateway.drivers import DeviceSpec, open_device
from gateway.drivers.base import DeviceError
from gateway.drivers.sunspec_device import SunSpecDevice
from tests.drivers.drivers_helpers import sunspec_sim  # noqa: F401  (fixture)


def test_dropped_connections_are_restored(sunspec_sim) -> None:  # noqa: F811
    port = sunspec_sim("--device", "inverter", "--drop-connection-every", "1",
                       "--start", "2024-06-21T11:00:00+00:00")
    dev = open_device(DeviceSpec("inv", "sunspec", f"tcp://127.0.0.1:{port}", None, 1,
                                 "production", timeout_s=1))
    assert isinstance(dev, SunSpecDevice)
    ok, kinds = 0, set()
    try:
        end = time.monotonic() + 4.5
        while time.monotonic() < end:
            try:
                assert dev.read().values["e_prod_wh"] > 0
                ok += 1
            except DeviceError as exc:
                kinds.add(exc.kind)
            time.sleep(0.2)
        stats = dev.line.stats
        assert stats.reconnects >= 3  # one per drop: the same device, the same line object
        assert kinds <= {"connection", "timeout"}
        assert ok >= 10
        assert sum(stats.errors.values()) == dev.counters()["connection"] + \
            dev.counters()["timeout"]
    finally:
        dev.close()


def test_rtu_simulator_on_a_pty_carries_several_units(tmp_path) -> None:
    import signal

    from tests.drivers.drivers_helpers import QUARTIER, start, stop

    proc = start([QUARTIER, "sim", "sunspec", "--rtu", "--pty", "--units", "1,2",
                  "--device", "inverter,meter", "--start", "2024-06-21T11:00:00+00:00"])
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), path
        assert "unit 1" in proc.stdout.readline() and "unit 2" in proc.stdout.readline()
        inv = open_device(DeviceSpec("inv", "sunspec", None, path, 1, "production", timeout_s=1))
        grid = open_device(DeviceSpec("grid", "sunspec", None, path, 2, "grid", timeout_s=1))
        assert isinstance(inv, SunSpecDevice) and isinstance(grid, SunSpecDevice)
        try:
            assert inv.read().values["p_w"] > 0
            assert "e_imp_wh" in grid.read().values
            assert inv.describe()["serial"] == "SIMI00000"
            assert grid.describe()["serial"] == "SIMM00001"
        finally:
            inv.close()
            grid.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
        assert "unit 1: requests" in err and "unit 2: requests" in err
    finally:
        stop(proc)
