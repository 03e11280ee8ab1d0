"""Fault injection shared by the simulators: what can go wrong on a real wire.

A `Faults` value is parsed once from the command line; `FaultDice` draws, per request or
per frame, from a seeded random generator so that a failing test can be replayed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Faults:
    timeout_rate: float = 0.0  # no answer at all (Modbus) / a frame not sent (serial)
    drop_rate: float = 0.0  # bytes dropped from an answer or a frame
    bad_checksum_rate: float = 0.0  # a corrupted checksum (TIC group, P1 CRC, RTU CRC)
    glitch_rate: float = 0.0  # one register/value replaced by garbage, checksum still valid
    exception_rate: float = 0.0  # Modbus exception response (device busy)
    counter_reset_after_s: float | None = None  # simulated seconds until counters restart at 0
    freeze_after_s: float | None = None  # simulated seconds until values stop changing
    sleep_at_night: bool = False  # inverter stops answering while the sun is down
    sf_change: bool = False  # scale factors change encoding between requests (same value)
    max_clients: int = 0  # 0 = unlimited; 1 = refuse a second TCP client

    def any(self) -> bool:
        return self != Faults()


class FaultDice:
    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self.rng = random.Random(seed ^ 0x5EED)

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def drop_bytes(self, data: bytes) -> bytes:
        """Remove one to a few bytes at random places (a noisy line, a UART overrun)."""
        if len(data) < 2:
            return b""
        out = bytearray(data)
        for _ in range(self.rng.randint(1, 3)):
            if len(out) > 1:
                del out[self.rng.randrange(len(out))]
        return bytes(out)
