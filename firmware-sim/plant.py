"""The simulated installation over simulated time: power now, energy counters that only grow.

`SimClock` maps wall time to simulated time (`--speed`); `Plant.state(now)` integrates power
between calls, so a counter grows by exactly the energy of the curve it reports.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from firmware_sim import curves
from firmware_sim.faults import Faults
from firmware_sim.sunspec_map import Electrical


@dataclass
class SimClock:
    speed: float = 1.0
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    t0: float = field(default_factory=time.monotonic)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.t0) * self.speed)

    def elapsed_s(self) -> float:
        """Simulated seconds since start."""
        return (time.monotonic() - self.t0) * self.speed


@dataclass
class Plant:
    """An inverter (`kind="inverter"`) or a household grid meter (`kind="meter"`)."""

    kind: str
    seed: int = 0
    peak_w: int = 6000  # inverter: Wp; meter: the household's own PV (0 = none)
    latitude: float = curves.DEFAULT_LATITUDE
    longitude: float = curves.DEFAULT_LONGITUDE
    faults: Faults = field(default_factory=Faults)
    energy_wh: float = 0.0
    export_wh: float = 0.0
    _last: datetime | None = None
    _last_p: int = 0
    _frozen: Electrical | None = None
    _reset_done: bool = False

    def __post_init__(self) -> None:
        self.clouds = curves.Clouds.from_seed(self.seed)
        if self.energy_wh == 0:
            # a device that has been in service for a while, different per seed
            self.energy_wh = 2_000_000 + (self.seed % 1000) * 1000 + 0.0
            self.export_wh = 500_000 + (self.seed % 1000) * 100 + 0.0 if self.kind == "meter" else 0

    def power_w(self, when: datetime) -> int:
        pv = curves.pv_power_w(when, self.peak_w, self.clouds, self.latitude, self.longitude)
        if self.kind == "inverter":
            return pv
        return curves.household_load_w(when, self.seed) - pv

    def is_night(self, when: datetime) -> bool:
        return curves.sun_elevation_deg(when, self.latitude, self.longitude) <= 0

    def state(self, when: datetime, elapsed_s: float) -> Electrical:
        """Advance to `when` and return what the device measures."""
        f = self.faults
        if f.freeze_after_s is not None and elapsed_s >= f.freeze_after_s and self._frozen:
            return self._frozen
        p = self.power_w(when)
        if self._last is not None and when > self._last:
            hours = (when - self._last).total_seconds() / 3600
            avg = (p + self._last_p) / 2  # trapezoid: exact for a linear ramp between polls
            if avg >= 0:
                self.energy_wh += avg * hours
            else:
                self.export_wh += -avg * hours
        self._last, self._last_p = when, p
        if (
            f.counter_reset_after_s is not None
            and elapsed_s >= f.counter_reset_after_s
            and not self._reset_done
        ):
            self._reset_done = True
            self.energy_wh = self.export_wh = 0.0
        # grid frequency wanders a little around 50 Hz; voltage around 230 V
        t = when.timestamp()
        # in 10 mHz steps: what a 0.01 Hz register carries, so every read can be exact
        f_mhz = 50000 + 10 * round(2 * math.sin(t / 37.0))
        v_dv = 2300 + int(40 * math.sin(t / 211.0 + self.seed))
        st = Electrical(
            p_w=p,
            e_wh=int(self.energy_wh),
            e_exp_wh=int(self.export_wh),
            v_dv=v_dv,
            f_mhz=f_mhz,
            asleep=self.kind == "inverter" and p == 0 and self.is_night(when),
        )
        if f.freeze_after_s is not None and elapsed_s >= f.freeze_after_s:
            self._frozen = st
        return st
