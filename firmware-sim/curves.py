"""Where the simulated watts come from: sun position, clouds, a household's day.

Pure functions of (time, seed): the same seed gives the same day, so a test can replay it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

# Paris, by default: the simulated plant has to be somewhere.
DEFAULT_LATITUDE = 48.85
DEFAULT_LONGITUDE = 2.35


def sun_elevation_deg(when: datetime, latitude: float, longitude: float) -> float:
    """Solar elevation (degrees) from the usual declination / hour-angle approximation.

    Cooper's declination formula and local solar time from longitude (equation of time
    ignored: at most ±16 minutes, irrelevant for a load curve).
    """
    when = when.astimezone(UTC)
    doy = when.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)
    hours = when.hour + when.minute / 60 + when.second / 3600
    solar_time = hours + longitude / 15
    hour_angle = math.radians(15 * (solar_time - 12))
    lat = math.radians(latitude)
    sin_el = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_el))))


def clear_sky_irradiance(elevation_deg: float) -> float:
    """Global horizontal-ish irradiance on the panels, W/m², for a clear sky.

    Air mass grows as the sun gets low; 1000 W/m² at zenith is the STC reference.
    """
    if elevation_deg <= 0:
        return 0.0
    s = math.sin(math.radians(elevation_deg))
    air_mass = 1 / (s + 0.50572 * (elevation_deg + 6.07995) ** -1.6364)  # Kasten & Young
    return 1000.0 * 1.1 * s * 0.7 ** (air_mass**0.678) / 0.7**1.0


@dataclass(frozen=True)
class Clouds:
    """A smooth, seeded cloudiness factor in [0.15, 1] (1 = clear)."""

    seed: int
    waves: tuple[tuple[float, float, float], ...] = field(default=())

    @classmethod
    def from_seed(cls, seed: int) -> Clouds:
        rng = random.Random(seed)
        waves = tuple(
            (rng.uniform(600, 7200), rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 1.0))
            for _ in range(5)
        )
        return cls(seed, waves)

    def factor(self, t: float) -> float:
        if not self.waves:
            return 1.0
        total = sum(w for _, _, w in self.waves)
        x = sum(w * math.sin(2 * math.pi * t / p + ph) for p, ph, w in self.waves) / total
        # x in [-1, 1]; most of the time clear-ish, sometimes a thick cloud
        return max(0.15, min(1.0, 0.75 + 0.45 * x))


def pv_power_w(
    when: datetime,
    peak_w: int,
    clouds: Clouds,
    latitude: float = DEFAULT_LATITUDE,
    longitude: float = DEFAULT_LONGITUDE,
) -> int:
    """AC power of a plant of `peak_w` Wp: irradiance × clouds × 90 % inverter efficiency."""
    g = clear_sky_irradiance(sun_elevation_deg(when, latitude, longitude))
    if g <= 0:
        return 0
    p = peak_w * g / 1000 * clouds.factor(when.timestamp()) * 0.9
    return max(0, min(peak_w, int(p)))


def household_load_w(when: datetime, seed: int) -> int:
    """A household's consumption: base load, fridge cycles, morning and evening peaks."""
    local_h = (when.astimezone(UTC).hour + 1) % 24 + when.minute / 60  # CET, roughly
    base = 180
    fridge = 90 if int(when.timestamp() // 900 + seed) % 3 == 0 else 0
    morning = 900 * math.exp(-(((local_h - 7.5) / 0.8) ** 2))
    noon = 500 * math.exp(-(((local_h - 12.5) / 0.7) ** 2))
    evening = 1600 * math.exp(-(((local_h - 19.5) / 1.5) ** 2))
    rng = random.Random(seed * 1_000_003 + int(when.timestamp() // 60))
    spike = rng.choice((0, 0, 0, 0, 0, 0, 0, 1200, 2000))  # kettle, oven…
    return int(base + fridge + morning + noon + evening + spike)
