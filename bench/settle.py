"""Seconds to allocate and net one day (96 x 15-minute intervals) of a community.

A synthetic day: a third of the members have panels (3-9 kWp, a clear-sky bell between
06:00 and 20:00 with clouds), everyone has a household load (base, morning and evening
peaks, noise). Meters see both export and import within an interval, so self-consumption
netting is exercised. One member in fifty has a standing donation order.

Timed: the prorata allocation of every interval (`allocate_period`), the per-member
totals, and the netting into ledger entries (`net_period`). Best of five runs.
Prints one JSON line last: {"members_1000_s": ..., "members_10000_s": ...}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from community.settlement.netting import MemberEnergy, StandingOrder, net_period
from community.settlement.vectorised import allocate_period

INTERVALS = 96


def synthetic_day(n: int, seed: int = 7) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    members = [f"m{i:05d}" for i in range(n)]
    t = np.arange(INTERVALS) / 4.0  # hours
    sun = np.clip(np.sin((t - 6.0) / 14.0 * np.pi), 0, None)  # 06:00-20:00
    kwp = np.where(np.arange(n) % 3 == 0, rng.uniform(3, 9, n), 0.0)
    clouds = rng.uniform(0.5, 1.0, (INTERVALS, n))
    produced = (250.0 * kwp[None, :] * sun[:, None] * clouds).astype(np.int64)  # Wh / 15 min
    peaks = np.exp(-((t - 7.5) ** 2) / 2) + 1.5 * np.exp(-((t - 19.5) ** 2) / 3)
    load = (rng.uniform(40, 120, n)[None, :] * (1 + peaks[:, None])).astype(np.int64)
    load += rng.integers(0, 60, (INTERVALS, n))
    # within 15 minutes a meter both exports (sunny minutes) and imports (a kettle)
    burst = rng.integers(0, 40, (INTERVALS, n)) * (produced > 0)
    exports = np.maximum(produced - load, 0) + burst
    imports = np.maximum(load - produced, 0) + burst
    return members, exports, imports


def settle_day(members: list[str], exports: np.ndarray, imports: np.ndarray) -> int:
    period = allocate_period(members, exports, imports, "prorata")
    totals = period.totals()
    energy = {m: MemberEnergy(**row) for m, row in totals.items()}
    orders = [
        StandingOrder(members[i], members[i + 1], share_bp=500)
        for i in range(0, len(members) - 1, 150)  # donors are producers (i % 3 == 0)
    ] + [
        StandingOrder(members[i], members[i + 2], wh=1000) for i in range(75, len(members) - 2, 150)
    ]
    netting = net_period(energy, orders)
    return len(netting.entries)


def timed(n: int, repeat: int = 5) -> float:
    members, exports, imports = synthetic_day(n)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        entries = settle_day(members, exports, imports)
        best = min(best, time.perf_counter() - start)
    print(f"{n} members: {entries} entries, {best:.3f} s", file=sys.stderr)
    return best


def main() -> None:
    timed(200, repeat=1)  # warm-up: imports, numpy kernels
    result = {"members_1000_s": round(timed(1000), 4), "members_10000_s": round(timed(10000), 4)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
