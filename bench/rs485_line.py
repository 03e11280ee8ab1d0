"""Two SunSpec devices on one simulated RS485 line, polled every second each for a minute.

An inverter (unit 1) and a grid meter (unit 2) share one pseudo-terminal at 9600 baud 8N1,
the simulator answering with pymodbus RTU framing and the time the bytes take on the wire;
the gateway's drivers read both through one shared ModbusLine (one pyserial port, one
lock, the 3.5-character gap between frames), from two threads as the gateway's pollers
do. Every reading is compared with what the simulated device encoded in the answer it
had just sent. Prints one JSON line last: polls, crc_errors, timeouts, correct (readings
equal to the simulator's values), other_errors, line utilisation.

    .venv/bin/python bench/rs485_line.py [SECONDS]
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_sim.modbus_server import SunSpecSim
from firmware_sim.plant import Plant, SimClock
from firmware_sim.rtu_line import RtuLine
from gateway.drivers import DeviceSpec, open_device
from gateway.drivers.base import DeviceError

NOON = datetime(2024, 6, 21, 11, 0, tzinfo=UTC)


def main(duration_s: float) -> dict[str, object]:
    sims = {
        1: SunSpecSim(Plant("inverter", seed=1), SimClock(speed=60, start=NOON), 1, seed=1),
        2: SunSpecSim(Plant("meter", seed=2, peak_w=0), SimClock(speed=60, start=NOON), 2,
                      seed=2),
    }
    line = RtuLine(sims, baudrate=9600).start()
    devices = {
        1: open_device(DeviceSpec("inverter", "sunspec", None, line.path, 1, "production")),
        2: open_device(DeviceSpec("grid", "sunspec", None, line.path, 2, "grid")),
    }
    counts = {"polls": 0, "correct": 0, "wrong": 0}
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def poller(unit: int) -> None:
        dev, sim = devices[unit], sims[unit]
        next_at = time.monotonic()
        end = next_at + duration_s
        while next_at < end:
            try:
                values = dev.read().values
                want = sim.expected()
                good = {k: values.get(k) for k in want} == want
                with lock:
                    counts["polls"] += 1
                    counts["correct" if good else "wrong"] += 1
            except DeviceError as exc:
                with lock:
                    counts["polls"] += 1
                    errors[exc.kind] = errors.get(exc.kind, 0) + 1
            next_at += 1.0
            time.sleep(max(0.0, next_at - time.monotonic()))

    started = time.monotonic()
    threads = [threading.Thread(target=poller, args=(u,)) for u in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    stats = devices[1].line.stats  # type: ignore[attr-defined]
    for dev in devices.values():
        dev.close()
    line.stop()
    return {
        "polls": counts["polls"],
        "crc_errors": errors.pop("checksum", 0),
        "timeouts": errors.pop("timeout", 0),
        "correct": counts["correct"],
        "wrong": counts["wrong"],
        "other_errors": errors,
        "requests": stats.requests,
        "line_utilisation": round(stats.busy_s / elapsed, 3),
        "seconds": round(elapsed, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)))
