"""Allocation of local exports to local imports in one settlement interval.

This is the reference implementation: plain Python integers, one interval at a time,
written to be read. `community.settlement.vectorised` computes the same numbers for a
whole day of many members at once; the tests compare the two.

Vocabulary (all values are integer Wh):

- Self-consumption is netted at the meter first: a member listed both as producer and as
  consumer in the interval keeps `min(export, import)` for itself, and only the rest of
  its export is offered to the community, only the rest of its import is asked of it.
- The pool is `P = sum(exports)` against `C = sum(imports)`; `min(P, C)` is allocated.
- Keys decide how much each consumer receives:
    * ``prorata`` (default): production x the consumer's share of total consumption,
      capped at its consumption; what capped consumers leave is shared again among the
      others (water-filling) until nothing is left.
    * ``static``: fixed percentages; a holder's share is capped at its consumption and
      unused shares go to the other holders pro rata to their percentages; what is left
      once every holder is covered goes pro rata to the remaining consumption.
    * ``priority``: each producer's export goes first to its own beneficiaries (producers
      in id order; one producer's beneficiaries pro rata to their import), then what is
      left of every export is pooled pro rata.
- Producers always give to the pool pro rata to their export (after priority gifts), so
  every producer exports the same fraction of its surplus to the grid.
- Flows (who gave to whom) split each consumer's receipt across producers in proportion
  to what each producer gave, with margins exact on both sides.

Remainder rule (the same everywhere): amounts are first rounded down; the Wh left over
go one each to the largest fractional remainders, ties broken by id in ascending string
order. So every share is within 1 Wh of its exact rational value, nobody receives more
than its cap, and the sums are exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

KEYS = ("prorata", "static", "priority")
DEFAULT_KEY = "prorata"
BASIS_POINTS = 10_000  # static percentages are held in 1/100 %
MAX_WH = 10**12  # 1 TWh in one interval: anything above is a unit error upstream


class AllocationError(ValueError):
    """Input the allocation cannot run on; `field` names the offending input field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class IntervalInput:
    """What the allocation needs for one interval, already validated."""

    interval: str | int | None
    producers: Mapping[str, int]  # export Wh as metered
    consumers: Mapping[str, int]  # import Wh as metered
    static_bp: Mapping[str, int] = field(default_factory=dict)  # consumer -> 1/100 %
    priorities: tuple[tuple[str, str], ...] = ()  # (producer, beneficiary)


@dataclass(frozen=True)
class Flow:
    producer: str
    consumer: str
    wh: int


@dataclass(frozen=True)
class Allocation:
    interval: str | int | None
    key: str
    self_consumed: dict[str, int]  # members listed on both sides
    given: dict[str, int]  # producer -> Wh allocated to local consumers
    received: dict[str, int]  # consumer -> Wh received from local producers
    to_grid: dict[str, int]  # producer -> export left for the public grid
    from_grid: dict[str, int]  # consumer -> import left for the public grid
    flows: tuple[Flow, ...]  # sorted by (producer, consumer), only positive

    def to_json(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "key": self.key,
            "allocations": [{"from": f.producer, "to": f.consumer, "wh": f.wh} for f in self.flows],
            "to_grid": dict(sorted(self.to_grid.items())),
            "from_grid": dict(sorted(self.from_grid.items())),
            "self_consumed": dict(sorted(self.self_consumed.items())),
        }


# --- parsing -------------------------------------------------------------------------


def _wh(value: object, field_name: str) -> int:
    # bool is an int subclass: refuse it explicitly, a `true` export is a bug upstream.
    if isinstance(value, bool) or not isinstance(value, int):
        raise AllocationError(field_name, f"must be an integer number of Wh, got {value!r}")
    if value < 0:
        raise AllocationError(field_name, f"must not be negative, got {value}")
    if value > MAX_WH:
        raise AllocationError(field_name, f"{value} Wh in one interval is not plausible")
    return value


def _id_map(raw: object, field_name: str) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise AllocationError(field_name, f"must be an object {{id: Wh}}, got {type(raw).__name__}")
    out: dict[str, int] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise AllocationError(field_name, f"ids must be non-empty strings, got {key!r}")
        out[key] = _wh(value, f"{field_name}.{key}")
    return out


def percent_to_bp(value: object, field_name: str) -> int:
    """A percentage (number, at most two decimals) as integer basis points."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise AllocationError(field_name, f"must be a percentage number, got {value!r}")
    try:
        scaled = Decimal(str(value)) * 100
    except InvalidOperation:
        raise AllocationError(field_name, f"must be a percentage number, got {value!r}") from None
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise AllocationError(field_name, f"at most two decimals, got {value!r}")
    bp = int(scaled)
    if not 0 <= bp <= BASIS_POINTS:
        raise AllocationError(field_name, f"must be between 0 and 100, got {value!r}")
    return bp


def parse_input(doc: object, key: str = DEFAULT_KEY) -> IntervalInput:
    """Validate the JSON document of `quartier allocate`; errors name the field."""
    if key not in KEYS:
        raise AllocationError("key", f"unknown key {key!r}, expected one of {', '.join(KEYS)}")
    if not isinstance(doc, dict):
        raise AllocationError("input", "must be a JSON object")
    unknown = sorted(set(doc) - {"interval", "producers", "consumers", "static", "donations"})
    if unknown:
        raise AllocationError(unknown[0], "unknown field")
    interval = doc.get("interval")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, str | int)):
        raise AllocationError("interval", f"must be a string or an integer, got {interval!r}")
    for name in ("producers", "consumers"):
        if name not in doc:
            raise AllocationError(name, "missing")
    producers = _id_map(doc["producers"], "producers")
    consumers = _id_map(doc["consumers"], "consumers")

    static_bp: dict[str, int] = {}
    raw_static = doc.get("static")
    if key == "static" and raw_static is None:
        raise AllocationError("static", "required with --key static")
    if raw_static is not None:
        if not isinstance(raw_static, dict):
            raise AllocationError("static", "must be an object {consumer id: percent}")
        for cid, pct in raw_static.items():
            if cid not in consumers:
                raise AllocationError(f"static.{cid}", "not a consumer of this interval")
            static_bp[cid] = percent_to_bp(pct, f"static.{cid}")
        total = sum(static_bp.values())
        if total > BASIS_POINTS:
            raise AllocationError("static", f"percentages sum to {total / 100:g} %, above 100 %")

    priorities: list[tuple[str, str]] = []
    raw_donations = doc.get("donations", [])
    if not isinstance(raw_donations, list):
        raise AllocationError("donations", "must be a list of {from, to}")
    for i, item in enumerate(raw_donations):
        where = f"donations[{i}]"
        if not isinstance(item, dict) or set(item) - {"from", "to"}:
            raise AllocationError(where, 'must be an object {"from": id, "to": id}')
        giver, taker = item.get("from"), item.get("to")
        if giver not in producers:
            raise AllocationError(f"{where}.from", f"{giver!r} is not a producer")
        if taker not in consumers:
            raise AllocationError(f"{where}.to", f"{taker!r} is not a consumer")
        if giver == taker:
            raise AllocationError(where, "a member cannot donate to itself")
        assert isinstance(giver, str) and isinstance(taker, str)
        if (giver, taker) not in priorities:
            priorities.append((giver, taker))
    return IntervalInput(interval, producers, consumers, static_bp, tuple(priorities))


# --- integer building blocks ---------------------------------------------------------


def largest_remainder(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split `total` in proportion to positive `weights`: floor, then +1 Wh to the largest
    fractional remainders, ties by id. Every share is within 1 of the exact value."""
    ids = sorted(i for i, w in weights.items() if w > 0)
    out = dict.fromkeys(weights, 0)
    if total == 0 or not ids:
        return out
    wsum = sum(weights[i] for i in ids)
    rem: dict[str, int] = {}
    for i in ids:
        out[i], rem[i] = divmod(total * weights[i], wsum)
    short = total - sum(out[i] for i in ids)
    for i in sorted(ids, key=lambda i: (-rem[i], i))[:short]:
        out[i] += 1
    return out


def waterfill(total: int, demand: Mapping[str, int], weights: Mapping[str, int]) -> dict[str, int]:
    """Share up to `total` Wh pro rata to `weights`, nobody above its `demand`.

    Whoever would get its whole demand or more is served in full and leaves; the rest is
    shared again among the others, until nobody is capped: then the remainder rule splits
    what is left. Members with zero weight receive nothing. Returns what each receives;
    `total - sum(result)` is what nobody could take."""
    given = dict.fromkeys(demand, 0)
    active = sorted(i for i in demand if demand[i] > 0 and weights.get(i, 0) > 0)
    left = total
    while left > 0 and active:
        wsum = sum(weights[i] for i in active)
        # exact test of left * w / wsum >= remaining demand, without fractions
        capped = [i for i in active if left * weights[i] >= (demand[i] - given[i]) * wsum]
        if capped:
            for i in capped:
                left -= demand[i] - given[i]
                given[i] = demand[i]
            active = [i for i in active if given[i] < demand[i]]
            continue
        for i, share in largest_remainder(left, {i: weights[i] for i in active}).items():
            given[i] += share
        left = 0
    return given


def split_flows(
    given: Mapping[str, int], received: Mapping[str, int]
) -> dict[tuple[str, str], int]:
    """Who gave to whom: cell (p, c) is `given[p] * received[c] / total`, rounded so that
    every row sums to `given[p]` and every column to `received[c]` exactly.

    Cells are rounded down, then each producer (in id order) places the Wh its row is
    short one each on the consumers still the most short (ties: larger fractional part,
    then id). Placing each row's units on the columns with the largest remaining need is
    Ryser's construction: it always completes, and every cell ends within 1 Wh of its
    exact value."""
    total = sum(given.values())
    if total != sum(received.values()):
        raise ValueError(f"given {total} Wh but received {sum(received.values())} Wh")
    producers = sorted(p for p, v in given.items() if v > 0)
    consumers = sorted(c for c, v in received.items() if v > 0)
    cells: dict[tuple[str, str], int] = {}
    frac: dict[tuple[str, str], int] = {}
    col_short = {c: received[c] for c in consumers}
    row_short = {}
    for p in producers:
        row = 0
        for c in consumers:
            cells[p, c], frac[p, c] = divmod(given[p] * received[c], total)
            row += cells[p, c]
            col_short[c] -= cells[p, c]
        row_short[p] = given[p] - row
    for p in producers:
        ranked = sorted(consumers, key=lambda c: (-col_short[c], -frac[p, c], c))
        for c in ranked[: row_short[p]]:
            if col_short[c] <= 0:  # cannot happen (Ryser); guard against a silent error
                raise AssertionError("flow rounding failed to complete")
            cells[p, c] += 1
            col_short[c] -= 1
    return {pc: wh for pc, wh in cells.items() if wh > 0}


# --- the keys ------------------------------------------------------------------------


def net_at_meter(
    producers: Mapping[str, int], consumers: Mapping[str, int]
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(self-consumed, export offered, import asked) after netting each meter."""
    own = {m: min(producers[m], consumers[m]) for m in producers if m in consumers}
    exports = {p: e - own.get(p, 0) for p, e in producers.items()}
    imports = {c: i - own.get(c, 0) for c, i in consumers.items()}
    return own, exports, imports


def allocate(data: IntervalInput, key: str = DEFAULT_KEY) -> Allocation:
    if key not in KEYS:
        raise AllocationError("key", f"unknown key {key!r}, expected one of {', '.join(KEYS)}")
    own, exports, imports = net_at_meter(data.producers, data.consumers)
    direct: dict[tuple[str, str], int] = {}
    received = dict.fromkeys(imports, 0)
    offered = dict(exports)

    if key == "priority":
        beneficiaries: dict[str, list[str]] = {}
        for p, c in data.priorities:
            beneficiaries.setdefault(p, []).append(c)
        for p in sorted(beneficiaries):
            need = {c: imports[c] - received[c] for c in beneficiaries[p]}
            gifts = waterfill(offered[p], need, need)
            for c, wh in gifts.items():
                if wh:
                    direct[p, c] = wh
                    received[c] += wh
                    offered[p] -= wh

    pool = sum(offered.values())
    need = {c: imports[c] - received[c] for c in imports}
    if key == "static":
        taken = waterfill(pool, need, data.static_bp)
        still = {c: need[c] - taken[c] for c in need}
        extra = waterfill(pool - sum(taken.values()), still, still)
        taken = {c: taken[c] + extra[c] for c in need}
    else:
        taken = waterfill(pool, need, need)
    allocated = sum(taken.values())
    # a producer's contribution never exceeds its offer since allocated <= pool
    contributed = largest_remainder(allocated, offered)

    flows = dict(direct)
    for pc, wh in split_flows(contributed, taken).items():
        flows[pc] = flows.get(pc, 0) + wh
    given = {p: exports[p] - offered[p] + contributed[p] for p in exports}
    received = {c: received[c] + taken[c] for c in imports}
    return Allocation(
        interval=data.interval,
        key=key,
        self_consumed=own,
        given=given,
        received=received,
        to_grid={p: exports[p] - given[p] for p in exports},
        from_grid={c: imports[c] - received[c] for c in imports},
        flows=tuple(Flow(p, c, wh) for (p, c), wh in sorted(flows.items())),
    )


def totals(allocations: Iterable[Allocation]) -> dict[str, dict[str, int]]:
    """Per member sums over intervals: given, received, to_grid, from_grid, self_consumed."""
    out: dict[str, dict[str, int]] = {}
    for a in allocations:
        for name in ("given", "received", "to_grid", "from_grid", "self_consumed"):
            for member, wh in getattr(a, name).items():
                row = out.setdefault(
                    member,
                    dict.fromkeys(
                        ("given", "received", "to_grid", "from_grid", "self_consumed"), 0
                    ),
                )
                row[name] += wh
    return out
