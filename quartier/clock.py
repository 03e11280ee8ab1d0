"""Clocks: the system clock, or a simulated one shared by simulators and gateways.

The demo runs a simulated day in a few minutes. Simulators (PV curve, load curve) and
gateways (reading timestamps, period claims) must agree on what time it is, so both take
their time from one `SimClock`: simulated time = origin + (wall time - anchor) x speed.
It reaches their processes as one environment variable, parsed once at start-up.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Protocol

SIM_CLOCK_ENV = "QUARTIER_SIM_CLOCK"


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of this clock's time."""
        ...

    @property
    def speed(self) -> float: ...


class SystemClock:
    speed = 1.0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class SimClock:
    origin_ms: int  # simulated time at the anchor
    anchor_ms: int  # wall time (ms since epoch) at which the simulation started
    speed: float  # simulated seconds per wall second

    def now_ms(self) -> int:
        wall = time.time_ns() // 1_000_000
        return self.origin_ms + int((wall - self.anchor_ms) * self.speed)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.speed)

    def to_env(self) -> str:
        return f"{self.origin_ms}:{self.anchor_ms}:{self.speed}"

    @classmethod
    def parse(cls, text: str) -> SimClock:
        try:
            origin, anchor, speed = text.split(":")
            clock = cls(int(origin), int(anchor), float(speed))
        except ValueError:
            raise ValueError(
                f"{SIM_CLOCK_ENV}={text!r}: expected ORIGIN_MS:ANCHOR_MS:SPEED") from None
        if clock.speed <= 0:
            raise ValueError(f"{SIM_CLOCK_ENV}: speed must be positive, got {clock.speed}")
        return clock


def from_environment(environ: dict[str, str] | None = None) -> Clock:
    """The simulated clock if QUARTIER_SIM_CLOCK is set, else the system clock."""
    value = (os.environ if environ is None else environ).get(SIM_CLOCK_ENV)
    return SimClock.parse(value) if value else SystemClock()
