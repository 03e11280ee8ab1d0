"""The community fund's allocation over destinations (pure).

Each member keeps a preference vector on chain (basis points per destination, summing to
10,000). The fund's allocation is the average of the vectors weighted by each member's
contribution: the kWh credited to them by settlement plus the hours they provided (HOUR
received in payments), valued in kWh at the exchange's reference rate. Contributions live
in the ledger's events, so the average is computed here, off chain, where it costs
nothing and anyone can recompute it from the same events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

TOTAL_BPS = 10_000
MAX_DESTINATIONS = 16


class FundError(ValueError):
    """Preferences that are not a valid vector of basis points."""


def pack_preferences(shares: Sequence[int]) -> int:
    """Basis points per destination, as the one word the governance contract keeps."""
    if len(shares) > MAX_DESTINATIONS:
        raise FundError(f"at most {MAX_DESTINATIONS} destinations, got {len(shares)}")
    if any(not 0 <= s <= TOTAL_BPS for s in shares) or sum(shares) != TOTAL_BPS:
        raise FundError(f"shares must be basis points summing to {TOTAL_BPS}, got {list(shares)} "
                        f"(sum {sum(shares)})")
    return sum(s << (16 * i) for i, s in enumerate(shares))


def unpack_preferences(packed: int, destinations: int = MAX_DESTINATIONS) -> list[int]:
    return [(packed >> (16 * i)) & 0xFFFF for i in range(destinations)]


def contribution_wh(credited_wh: int, hours_provided: int, rate: tuple[int, int]) -> Fraction:
    """kWh credited plus hours valued at `rate` = (hour base units, Wh they are worth)."""
    hour_amount, wh_amount = rate
    hours_value = Fraction(hours_provided * wh_amount, hour_amount) if hour_amount else Fraction(0)
    return Fraction(credited_wh) + hours_value


def fund_allocation(preferences: Mapping[str, Sequence[int]], contributions: Mapping[str, Fraction | int],
                    destinations: int) -> list[int]:
    """The contribution-weighted average of the members' vectors, in basis points summing to
    10,000 (largest remainders get the rounding). Members without a contribution weigh
    nothing; if nobody has one, every vector weighs the same. No preferences: all zeros."""
    vectors = {m: list(v)[:destinations] + [0] * max(0, destinations - len(v)) for m, v in preferences.items()}
    if not vectors:
        return [0] * destinations
    weights = {m: Fraction(max(contributions.get(m, 0), 0)) for m in vectors}
    if sum(weights.values()) == 0:
        weights = {m: Fraction(1) for m in vectors}
    total = sum(weights.values())
    exact = [sum(weights[m] * v[i] for m, v in vectors.items()) / total for i in range(destinations)]
    floors = [int(x) for x in exact]
    short = TOTAL_BPS - sum(floors)
    by_remainder = sorted(range(destinations), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in by_remainder[:short]:
        floors[i] += 1
    return floors
