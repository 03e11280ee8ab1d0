"""Interval energy from cumulative registers: the numbers settlement and claims rely on.

Pure and shared: the gateway signs its period claim with `gateway_period`, and the
community server checks that claim by running the very same function on the readings it
stored, so both sides must compute bit-for-bit the same integers.

Method (docs/ingest.md):
- Each cumulative register (`e_imp_wh`, `e_exp_wh`, `e_prod_wh`) of each device is a
  piecewise-linear curve through its samples. Its value at an interval boundary `t` is
  interpolated between the samples just before and just after it, rounded down with
  integer arithmetic only: `v0 + (v1 - v0) * (t - t0) // (t1 - t0)`. Before the first
  sample the curve holds the first value, after the last it holds the last value.
- The energy of an interval is the difference of the curve at its two boundaries, so the
  intervals telescope: their sum is exactly the register difference over the span, and
  never negative, whatever the reading times.
- A counter that goes down without a flagged meter replacement is a glitch: the sample
  is ignored for that register. A meter replacement (flag `meter_replaced`, or a new
  `meter` id) starts a new segment; the energy between the old meter's last sample and
  the new meter's first one is unknown and counted nowhere (intervals say `partial`).
- Readings flagged `counter_backwards` or `implausible` by the gateway carry no energy.
- Quality per interval: `measured` (samples at most one interval apart across it),
  `interpolated` (a gap longer than one interval was bridged), `partial` (samples cover
  only part of it), `missing` (none covers it).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from quartier import claim as claim_mod
from quartier.claim import IntervalValues, PeriodClaim
from quartier.reading import Reading

ENERGY_REGISTERS = ("e_imp_wh", "e_exp_wh", "e_prod_wh")
DEFAULT_STEP_S = 900  # 15 minutes, the settlement interval of French collective self-consumption

MEASURED = "measured"
INTERPOLATED = "interpolated"
PARTIAL = "partial"
MISSING = "missing"
QUALITIES = (MEASURED, INTERPOLATED, PARTIAL, MISSING)  # best to worst
_RANK = {q: i for i, q in enumerate(QUALITIES)}

# Flags after which a reading's registers are not trusted for energy.
NO_ENERGY_FLAGS = frozenset({"counter_backwards", "implausible"})
REPLACEMENT_FLAG = "meter_replaced"


class IntervalError(ValueError):
    """Interval parameters that cannot describe a period (e.g. a step that does not divide it)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """Cumulative register values of one device at one time; `segment` numbers its meter."""

    ts_ms: int
    registers: Mapping[str, int]
    segment: int = 0


@dataclass(frozen=True, slots=True)
class IntervalEnergy:
    start: int  # Unix seconds
    imported_wh: int
    exported_wh: int
    produced_wh: int
    quality: str

    def values(self) -> IntervalValues:
        return IntervalValues(self.start, self.imported_wh, self.exported_wh, self.produced_wh)


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    """What a gateway claims for a period, computed from its readings."""

    first_seq: int
    last_seq: int
    imported_wh: int
    exported_wh: int
    produced_wh: int
    intervals: tuple[IntervalEnergy, ...]
    root: bytes = field(default=b"")

    def claim(self, community: str, gateway: str, period_start: int, period_end: int) -> PeriodClaim:
        return PeriodClaim(
            community=community,
            gateway=gateway,
            period_start=period_start,
            period_end=period_end,
            first_seq=self.first_seq,
            last_seq=self.last_seq,
            imported_wh=self.imported_wh,
            exported_wh=self.exported_wh,
            produced_wh=self.produced_wh,
            intervals_root=self.root,
        )


def boundaries(start_s: int, end_s: int, step_s: int = DEFAULT_STEP_S) -> list[int]:
    if step_s <= 0:
        raise IntervalError(f"interval step must be positive, got {step_s} s")
    if end_s <= start_s:
        raise IntervalError(f"interval span [{start_s}, {end_s}) is empty")
    if (end_s - start_s) % step_s:
        raise IntervalError(
            f"span of {end_s - start_s} s from {start_s} is not a whole number of {step_s} s intervals"
        )
    return list(range(start_s, end_s + 1, step_s))


def _curve(points: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sort, drop samples below an earlier value (glitches), keep one value per time."""
    points.sort()
    ts: list[int] = []
    vs: list[int] = []
    for t, v in points:
        if vs and v < vs[-1]:
            continue
        if ts and ts[-1] == t:
            vs[-1] = v  # same time: keep the highest value (points are sorted by value)
            continue
        ts.append(t)
        vs.append(v)
    return ts, vs


def _value_at(ts: list[int], vs: list[int], t: int) -> int:
    i = bisect_right(ts, t)  # ts[i-1] <= t < ts[i]
    if i == 0:
        return vs[0]
    if i == len(ts) or ts[i - 1] == t:
        return vs[i - 1]
    t0, t1, v0, v1 = ts[i - 1], ts[i], vs[i - 1], vs[i]
    return v0 + (v1 - v0) * (t - t0) // (t1 - t0)


def _quality(ts: list[int], a: int, b: int, step_ms: int) -> str:
    if b <= ts[0] or a >= ts[-1]:
        return MISSING
    if a < ts[0] or b > ts[-1]:
        return PARTIAL
    # Consecutive sample pairs whose span overlaps [a, b].
    lo = max(bisect_right(ts, a) - 1, 0)
    hi = min(bisect_left(ts, b), len(ts) - 1)
    for i in range(lo, hi):
        if ts[i + 1] - ts[i] > step_ms:
            return INTERPOLATED
    return MEASURED


def interval_energy(
    samples: Iterable[Sample], start_s: int, end_s: int, step_s: int = DEFAULT_STEP_S
) -> list[IntervalEnergy]:
    """Energy per interval of [start_s, end_s) for one device's samples."""
    bounds = boundaries(start_s, end_s, step_s)
    n = len(bounds) - 1
    step_ms = step_s * 1000
    # (register, segment) -> points
    curves: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for s in samples:
        for reg in ENERGY_REGISTERS:
            v = s.registers.get(reg)
            if v is not None:
                curves.setdefault((reg, s.segment), []).append((s.ts_ms, v))
    energy = {reg: [0] * n for reg in ENERGY_REGISTERS}
    # Per register: best quality over segments; over registers: the worst.
    reg_quality: dict[str, list[int]] = {}
    for (reg, _segment), points in sorted(curves.items()):
        ts, vs = _curve(points)
        values = [_value_at(ts, vs, b * 1000) for b in bounds]
        acc = energy[reg]
        best = reg_quality.setdefault(reg, [_RANK[MISSING]] * n)
        for k in range(n):
            acc[k] += values[k + 1] - values[k]
            q = _RANK[_quality(ts, bounds[k] * 1000, bounds[k + 1] * 1000, step_ms)]
            if q < best[k]:
                best[k] = q
    out = []
    for k in range(n):
        ranks = [r[k] for r in reg_quality.values()]
        quality = QUALITIES[max(ranks)] if ranks else MISSING
        out.append(
            IntervalEnergy(
                bounds[k], energy["e_imp_wh"][k], energy["e_exp_wh"][k], energy["e_prod_wh"][k],
                quality,
            )
        )
    return out


def to_interval_values(intervals: Iterable[IntervalEnergy]) -> list[IntervalValues]:
    return [iv.values() for iv in intervals]


def sum_intervals(per_device: Sequence[Sequence[IntervalEnergy]]) -> list[IntervalEnergy]:
    """Add several devices' intervals (same boundaries); quality is the worst of them."""
    if not per_device:
        raise IntervalError("no devices to add up")
    out = []
    for column in zip(*per_device, strict=True):
        starts = {iv.start for iv in column}
        if len(starts) != 1:
            raise IntervalError(f"devices' intervals do not line up: starts {sorted(starts)}")
        out.append(
            IntervalEnergy(
                column[0].start,
                sum(iv.imported_wh for iv in column),
                sum(iv.exported_wh for iv in column),
                sum(iv.produced_wh for iv in column),
                QUALITIES[max(_RANK[iv.quality] for iv in column)],
            )
        )
    return out


def samples_from_readings(readings: Iterable[Reading]) -> dict[str, list[Sample]]:
    """Samples per device, in chain order, with meter segments numbered.

    A new segment starts at a reading flagged `meter_replaced` or whose `meter` id differs
    from the device's previous one. Readings flagged as untrustworthy carry no energy.
    """
    by_dev: dict[str, list[Reading]] = {}
    for r in readings:
        by_dev.setdefault(r.dev, []).append(r)
    out: dict[str, list[Sample]] = {}
    for dev, rs in sorted(by_dev.items()):
        rs.sort(key=lambda r: r.seq)
        segment = 0
        meter: str | None = None
        samples = []
        for i, r in enumerate(rs):
            replaced = REPLACEMENT_FLAG in r.flags or (
                r.meter is not None and meter is not None and r.meter != meter
            )
            if replaced and i > 0:
                segment += 1
            if r.meter is not None:
                meter = r.meter
            if NO_ENERGY_FLAGS.intersection(r.flags):
                continue
            regs = {k: r.m[k] for k in ENERGY_REGISTERS if k in r.m}
            if regs:
                samples.append(Sample(r.ts, regs, segment))
        out[dev] = samples
    return out


def select_period_readings(
    readings: Iterable[Reading], period_start: int, period_end: int
) -> list[Reading]:
    """The readings a claim for [period_start, period_end) covers: a contiguous seq range.

    Per device, from its last reading at or before the start to its first reading at or
    after the end (or its last one so far); the claim's first and last seq are the
    smallest and largest of those, and every reading in between is included, so that the
    community server can select exactly the same readings by seq.
    """
    rs = sorted(readings, key=lambda r: r.seq)
    start_ms, end_ms = period_start * 1000, period_end * 1000
    lo: int | None = None
    hi: int | None = None
    by_dev: dict[str, list[Reading]] = {}
    for r in rs:
        if any(k in r.m for k in ENERGY_REGISTERS):
            by_dev.setdefault(r.dev, []).append(r)
    for dev_rs in by_dev.values():
        if dev_rs[-1].ts <= start_ms or dev_rs[0].ts >= end_ms:
            continue  # nothing of this device inside the period: it adds no energy
        first = dev_rs[0]
        for r in dev_rs:
            if r.ts > start_ms:
                break
            first = r
        last = next((r for r in dev_rs if r.ts >= end_ms), dev_rs[-1])
        lo = first.seq if lo is None else min(lo, first.seq)
        hi = last.seq if hi is None else max(hi, last.seq)
    if lo is None or hi is None:
        return []
    return [r for r in rs if lo <= r.seq <= hi]


def gateway_period(
    readings: Iterable[Reading], period_start: int, period_end: int, step_s: int = DEFAULT_STEP_S
) -> PeriodTotals:
    """A gateway's totals and interval root for a period, summed over its devices.

    `readings` must be every reading of the gateway with seq in the claim's range (see
    `select_period_readings`); the result depends on nothing else.
    """
    rs = list(readings)
    if not rs:
        raise IntervalError(f"no readings for the period starting {period_start}")
    per_dev = samples_from_readings(rs)
    bounds = boundaries(period_start, period_end, step_s)
    if per_dev:
        intervals = sum_intervals(
            [interval_energy(s, period_start, period_end, step_s) for s in per_dev.values()]
        )
    else:
        intervals = [IntervalEnergy(b, 0, 0, 0, MISSING) for b in bounds[:-1]]
    return PeriodTotals(
        first_seq=min(r.seq for r in rs),
        last_seq=max(r.seq for r in rs),
        imported_wh=sum(iv.imported_wh for iv in intervals),
        exported_wh=sum(iv.exported_wh for iv in intervals),
        produced_wh=sum(iv.produced_wh for iv in intervals),
        intervals=tuple(intervals),
        root=claim_mod.intervals_root(to_interval_values(intervals)),
    )
