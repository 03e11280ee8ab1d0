"""The demo's neighbourhood: which homes, which devices, on which simulated day. Pure."""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from typing import Literal

MeterKind = Literal["tic-historique", "tic-standard", "p1", "sunspec-meter"]

FIRST_NAMES = (
    "Alice", "Bruno", "Chloé", "David", "Emma", "Farid", "Giulia", "Hugo", "Inès", "Jules",
    "Karim", "Léa", "Marc", "Nadia", "Olivier", "Pauline", "Quentin", "Rose", "Samir", "Théo",
)


@dataclass(frozen=True)
class Home:
    index: int
    member: str  # login / member id, e.g. "alice"
    name: str
    meter_point: str  # a 14-digit PRM, as on a Linky
    producer: bool
    meter: MeterKind
    seed: int

    @property
    def key(self) -> str:
        return f"home{self.index:02d}"


@dataclass(frozen=True)
class DemoPlan:
    homes: tuple[Home, ...]
    origin_ms: int  # simulated time at which the demo day starts (UTC midnight)
    hours: int
    speed: float  # simulated seconds per wall second
    poll_s: float  # wall seconds between polls of a device

    @property
    def end_ms(self) -> int:
        return self.origin_ms + self.hours * 3_600_000

    @property
    def wall_seconds(self) -> float:
        return self.hours * 3600 / self.speed

    @property
    def producers(self) -> tuple[Home, ...]:
        return tuple(h for h in self.homes if h.producer)


# A sunny day at the start of summer: the demo shows production. Midnight UTC.
DEMO_DAY = (2026, 6, 21)
# Speed 0 means "as fast as the machine can": a day in about 40 wall seconds, with a poll
# every 0.3 s (~11 simulated minutes, so every 15-minute interval holds a reading).
FAST_SPEED = 2160.0
FAST_POLL_S = 0.3


def plan(homes: int, hours: int, speed: float, seed: int = 7) -> DemoPlan:
    if homes < 2:
        raise ValueError("a neighbourhood needs at least 2 homes (a producer and a consumer)")
    if not 1 <= hours <= 24 * 7:
        raise ValueError("hours must be between 1 and 168")
    rng = random.Random(seed)
    meters: tuple[MeterKind, ...] = ("tic-standard", "p1", "tic-historique")
    out = []
    for i in range(homes):
        producer = i % 2 == 0  # half the homes have panels; home 0 always does
        meter: MeterKind = "sunspec-meter" if producer else meters[(i // 2) % len(meters)]
        first = FIRST_NAMES[i % len(FIRST_NAMES)]
        login = first.lower().replace("é", "e").replace("è", "e").replace("ï", "i").replace("é", "e")
        login = login if i < len(FIRST_NAMES) else f"{login}{i // len(FIRST_NAMES)}"
        out.append(Home(index=i, member=login, name=first, meter_point=f"2{rng.randrange(10**13):013d}",
                        producer=producer, meter=meter, seed=seed * 1000 + i))
    # A whole day starts at midnight; a shorter window is centred on midday, when the
    # panels produce and the neighbours share.
    start_hour = 0 if hours >= 24 else max(0, 12 - (hours + 1) // 2)
    origin_ms = calendar.timegm((*DEMO_DAY, start_hour, 0, 0)) * 1000
    if speed == 0:
        return DemoPlan(tuple(out), origin_ms, hours, FAST_SPEED, FAST_POLL_S)
    # One reading every ~8 simulated minutes whatever the speed, but not faster than 4/s.
    poll_s = max(0.25, min(5.0, 480.0 / speed))
    return DemoPlan(tuple(out), origin_ms, hours, speed, poll_s)
