"""Doubtful values, flagged in the signed reading rather than dropped (docs/protocol.md).

Pure: one `Plausibility` per device sees each measurement in turn and returns the flags
the reading must carry.

- `stale`: the measurement registers are identical for `stale_polls` polls in a row while
  the device reports non-zero power (a frozen meter or a hung Modbus gateway answers
  with its last values forever).
- `counter_backwards`: a cumulative energy register went down without a new meter id.
- `implausible`: a register grew faster than `rated_power_w` allows over the elapsed time
  (with a margin), e.g. a register read in kWh one time and Wh the next.
- `meter_replaced`: the meter id (serial, ADCO...) changed; a new segment starts and the
  counters are not compared across it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENERGY_REGISTERS = ("e_imp_wh", "e_exp_wh", "e_prod_wh")
DEFAULT_STALE_POLLS = 10
# Allowed excess over rated power: clocks, rounding of registers in whole Wh or kWh.
RATE_MARGIN = 1.5
RATE_SLACK_WH = 10


@dataclass
class Plausibility:
    stale_polls: int = DEFAULT_STALE_POLLS
    rated_power_w: int | None = None
    _last_values: dict[str, int] | None = None
    _same: int = 0
    _meter: str | None = None
    _last_energy: dict[str, tuple[int, int]] = field(default_factory=dict)  # reg -> (ts, v)

    def check(self, ts_ms: int, values: dict[str, int],
              meter: str | None = None) -> tuple[str, ...]:
        flags: set[str] = set()
        if meter is not None and self._meter is not None and meter != self._meter:
            flags.add("meter_replaced")
            self._last_energy.clear()
        if meter is not None:
            self._meter = meter

        if values == self._last_values:
            self._same += 1
        else:
            self._same = 0
        self._last_values = dict(values)
        if self._same >= self.stale_polls and values.get("p_w", 0) != 0:
            flags.add("stale")

        for reg in ENERGY_REGISTERS:
            v = values.get(reg)
            if v is None:
                continue
            last = self._last_energy.get(reg)
            if last is not None:
                t0, v0 = last
                if v < v0:
                    flags.add("counter_backwards")
                elif self.rated_power_w is not None and ts_ms > t0:
                    limit = self.rated_power_w * (ts_ms - t0) / 3_600_000 * RATE_MARGIN
                    if v - v0 > limit + RATE_SLACK_WH:
                        flags.add("implausible")
            # The new value is the reference either way: a jump or a reset is flagged
            # once, at the reading where it happens, not on every reading after it.
            self._last_energy[reg] = (ts_ms, v)
        return tuple(sorted(flags))
