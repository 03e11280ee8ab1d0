"""The allocation of `allocation.py` for a whole period of many members at once.

Arrays are (intervals x members) of int64 Wh, columns in ascending member id so that the
remainder rule's tie-break by id is the tie-break by column. Every step is the exact
integer algorithm of the reference implementation, only run on all intervals together;
the tests check that both give identical numbers. Flows (who gave to whom) are not
computed here: settlement needs per-member totals, and flows for a given interval come
from `allocation.allocate` on demand.

int64 is exact as long as `Wh x weight` stays below 2**62; larger inputs (a TWh-scale
interval) go through the reference implementation instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from community.settlement.allocation import (
    DEFAULT_KEY,
    KEYS,
    AllocationError,
    IntervalInput,
    allocate,
)

Wh = npt.NDArray[np.int64]
_SAFE = 2**62


@dataclass(frozen=True)
class PeriodAllocation:
    """Per interval and member: the allocation's outcome (all (T, N) int64)."""

    members: tuple[str, ...]
    self_consumed: Wh
    given: Wh
    received: Wh
    to_grid: Wh
    from_grid: Wh

    def totals(self) -> dict[str, dict[str, int]]:
        sums = {
            name: getattr(self, name).sum(axis=0)
            for name in ("given", "received", "to_grid", "from_grid", "self_consumed")
        }
        return {
            m: {name: int(col[j]) for name, col in sums.items()} for j, m in enumerate(self.members)
        }


def largest_remainder_rows(total: Wh, weights: Wh) -> Wh:
    """Row-wise `allocation.largest_remainder`: split total[t] pro rata to weights[t]."""
    wsum = weights.sum(axis=1)
    safe = np.where(wsum > 0, wsum, 1)
    prod = total[:, None] * weights
    out = prod // safe[:, None]
    frac = prod % safe[:, None]
    short = np.where(wsum > 0, total - out.sum(axis=1), 0)
    if short.any():
        # rank by descending remainder; a stable sort keeps ascending id among ties;
        # zero-weight columns (key -1) rank after every weighted one.
        key = np.where(weights > 0, frac, -1)
        order = np.argsort(-key, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(np.arange(order.shape[1]), order.shape), 1)
        out += rank < short[:, None]
    return out


def waterfill_rows(total: Wh, demand: Wh, weights: Wh) -> Wh:
    """Row-wise `allocation.waterfill`."""
    given = np.zeros_like(demand)
    left = total.copy()
    active = (demand > 0) & (weights > 0)
    rows = np.flatnonzero((left > 0) & active.any(axis=1))
    while rows.size:
        d, w, a = demand[rows], weights[rows], active[rows]
        g, lft = given[rows], left[rows]
        rem = d - g
        wa = np.where(a, w, 0)
        wsum = wa.sum(axis=1)
        capped = a & (lft[:, None] * wa >= rem * wsum[:, None])
        has_cap = capped.any(axis=1)
        g = g + np.where(capped, rem, 0)
        lft = lft - np.where(capped, rem, 0).sum(axis=1)
        a = a & ~capped
        done = ~has_cap
        if done.any():
            g[done] += largest_remainder_rows(lft[done], wa[done])
            lft[done] = 0
        given[rows], left[rows], active[rows] = g, lft, a
        keep = (lft > 0) & a.any(axis=1)
        rows = rows[keep]
    return given


def _fits(*bounds: int) -> bool:
    prod = 1
    for b in bounds:
        prod *= max(int(b), 1)
    return prod < _SAFE


def allocate_period(
    members: Sequence[str],
    exports: Wh,
    imports: Wh,
    key: str = DEFAULT_KEY,
    static_bp: Mapping[str, int] | None = None,
    priorities: Sequence[tuple[str, str]] = (),
) -> PeriodAllocation:
    """Allocate every interval of a period. `exports`/`imports` are (T, N) metered Wh,
    column j belonging to `members[j]`; self-consumption is netted here."""
    if key not in KEYS:
        raise AllocationError("key", f"unknown key {key!r}, expected one of {', '.join(KEYS)}")
    exports = np.asarray(exports, dtype=np.int64)
    imports = np.asarray(imports, dtype=np.int64)
    if exports.shape != imports.shape or exports.ndim != 2 or exports.shape[1] != len(members):
        raise AllocationError("exports", "exports and imports must both be (intervals, members)")
    if (exports < 0).any() or (imports < 0).any():
        raise AllocationError("exports", "energy must not be negative")
    order = np.argsort(np.array(members, dtype=object), kind="stable")
    ids = tuple(members[j] for j in order)
    if len(set(ids)) != len(ids):
        raise AllocationError("members", "duplicate member id")
    exp, imp = exports[:, order], imports[:, order]
    bp = np.array([(static_bp or {}).get(m, 0) for m in ids], dtype=np.int64)

    own = np.minimum(exp, imp)
    exp, imp = exp - own, imp - own
    pool, need = exp.sum(axis=1), imp.sum(axis=1)
    for p, c in priorities:
        if p not in ids or c not in ids:
            raise AllocationError("priorities", f"({p!r}, {c!r}) names an unknown member")
    top = max(int(imp.max(initial=0)), int(exp.max(initial=0)), int(bp.max(initial=0)))
    vector_ok = (
        key != "priority"
        and _fits(pool.max(initial=0), top, 2)
        and _fits(top, max(int(need.max(initial=0)), int(bp.sum())), 2)
    )
    if not vector_ok:
        return _by_reference(ids, exp + own, imp + own, key, static_bp or {}, priorities)

    if key == "static":
        weights = np.broadcast_to(bp, imp.shape)
        taken = waterfill_rows(pool, imp, weights)
        still = imp - taken
        taken = taken + waterfill_rows(pool - taken.sum(axis=1), still, still)
    else:
        taken = waterfill_rows(pool, imp, imp)
    given = largest_remainder_rows(taken.sum(axis=1), exp)
    return PeriodAllocation(
        members=ids,
        self_consumed=own,
        given=given,
        received=taken,
        to_grid=exp - given,
        from_grid=imp - taken,
    )


def _by_reference(
    ids: tuple[str, ...],
    exports: Wh,
    imports: Wh,
    key: str,
    static_bp: Mapping[str, int],
    priorities: Sequence[tuple[str, str]],
) -> PeriodAllocation:
    shape = exports.shape
    out = {n: np.zeros(shape, dtype=np.int64) for n in ("own", "given", "recv", "tog", "fromg")}
    col = {m: j for j, m in enumerate(ids)}
    for t in range(shape[0]):
        data = IntervalInput(
            interval=t,
            producers={m: int(exports[t, j]) for j, m in enumerate(ids)},
            consumers={m: int(imports[t, j]) for j, m in enumerate(ids)},
            static_bp=dict(static_bp),
            priorities=tuple(priorities),
        )
        a = allocate(data, key)
        for name, values in (
            ("own", a.self_consumed),
            ("given", a.given),
            ("recv", a.received),
            ("tog", a.to_grid),
            ("fromg", a.from_grid),
        ):
            for m, wh in values.items():
                out[name][t, col[m]] = wh
    return PeriodAllocation(ids, out["own"], out["given"], out["recv"], out["tog"], out["fromg"])
