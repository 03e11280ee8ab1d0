"""Simulated field installations for the field tests: SunSpec devices on a simulated RS485
line (a real pty, pymodbus RTU framing on both ends), read through the gateway's drivers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from firmware_sim.faults import Faults
from firmware_sim.modbus_server import SunSpecSim
from firmware_sim.plant import Plant, SimClock
from firmware_sim.rtu_line import RtuLine
from gateway.drivers import Device, DeviceSpec, open_device
from gateway.drivers.base import DeviceError
from gateway.drivers.spec import Role
from gateway.drivers.sunspec_device import SunSpecDevice

NOON = datetime(2024, 6, 21, 11, 0, tzinfo=UTC)  # a June noon in Paris: the inverter produces


def make_sim(kind: str, unit: int, seed: int, faults: Faults | None = None) -> SunSpecSim:
    f = faults or Faults()
    plant = Plant(kind=kind, seed=seed, peak_w=6000 if kind == "inverter" else 0, faults=f)
    return SunSpecSim(plant, SimClock(speed=60, start=NOON), unit, f, seed)


@pytest.fixture
def rtu_line() -> Iterator[object]:
    """Start simulated lines: `rtu_line({unit: sim}, baudrate=…)` returns the started line."""
    lines: list[RtuLine] = []

    def start(sims: dict[int, SunSpecSim], baudrate: int = 9600, pace: bool = True) -> RtuLine:
        line = RtuLine(sims, baudrate, pace).start()
        lines.append(line)
        return line

    yield start
    for line in lines:
        line.stop()


def open_on(line: RtuLine, unit: int, role: Role, timeout_s: float = 1.0) -> SunSpecDevice:
    dev = open_device(DeviceSpec(f"unit{unit}", "sunspec", None, line.path, unit, role,
                                 baudrate=line.baudrate, timeout_s=timeout_s))
    assert isinstance(dev, SunSpecDevice)
    return dev


@dataclass
class PollLog:
    polls: int = 0
    correct: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    wrong: list[tuple[dict[str, int | None], dict[str, int]]] = field(default_factory=list)


def poll_every(dev: Device, sim: SunSpecSim, interval_s: float, duration_s: float,
               log: PollLog) -> threading.Thread:
    """Poll like the gateway does, in a thread: compare every reading with what the
    simulator encoded in the answer it just sent."""

    def run() -> None:
        next_at = time.monotonic()
        end = next_at + duration_s
        while next_at < end:
            log.polls += 1
            try:
                values = dev.read().values
            except DeviceError as exc:
                log.errors[exc.kind] = log.errors.get(exc.kind, 0) + 1
            else:
                want = sim.expected()
                got = {k: values.get(k) for k in want}
                if got == want:
                    log.correct += 1
                else:
                    log.wrong.append((got, want))
            next_at += interval_s
            time.sleep(max(0.0, next_at - time.monotonic()))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t
