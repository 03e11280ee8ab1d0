"""Netting a period into one balance change per account and unit.

Inputs are per-member energy totals of the period (from the allocation), the standing
donation orders, and optionally demurrage rates with the balances they apply to. The
output is a list of movements (each with its reason, for statements) and the net entries
(one per account and unit, for the settlement batch). Every unit sums to zero.

KWH movements (1 unit = 1 Wh):
- ``allocation``: a Wh allocated from producer P to consumer C credits P and debits C.
- ``export``: a producer's export beyond the community (to the grid) is credited to it
  from the community fund account, which sells it to the grid.
- ``donation``: standing orders, executed after the energy movements, donor -> beneficiary.
  A share order gives `share_bp / 10000` of the donor's credited export of the period,
  rounded down; a fixed order gives `wh` per period. A donation is a gift of energy
  produced to pay for energy consumed: it never exceeds what the donor's export credited
  it this period (less its earlier orders), nor what the beneficiary received from local
  producers this period (less earlier donations to it). So no net credit or debit ever
  exceeds what the member's own meters signed, which the ledger contract enforces.
  Orders run in the order given. On chain, the donations ride in the period's batch
  beside the other entries (`Netting.chain_entries`, `Netting.donations`), and the ledger
  checks each against the donor's signed order (`StandingOrders`).
- ``demurrage``: per unit, `rate_ppm` parts per million of each positive opening balance
  per period, rounded down (in the member's favour), to the fund. The fund pays none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

KWH = "KWH"
FUND = "fund"
PPM = 1_000_000


class NettingError(ValueError):
    """Inputs that cannot be netted (unknown member in an order, impossible shares...)."""


@dataclass(frozen=True)
class MemberEnergy:
    """One member's energy over the period, Wh."""

    given: int = 0  # allocated to local consumers
    received: int = 0  # received from local producers
    to_grid: int = 0  # export beyond the community
    from_grid: int = 0
    self_consumed: int = 0

    @property
    def exported(self) -> int:
        return self.given + self.to_grid


@dataclass(frozen=True)
class StandingOrder:
    """Give energy every period: a fixed `wh`, or `share_bp` (1/100 %) of one's export."""

    donor: str
    beneficiary: str
    wh: int = 0
    share_bp: int = 0
    order_id: int = 0  # the order's id on chain (`StandingOrders`); 0 if it is not there

    def __post_init__(self) -> None:
        if (self.wh > 0) == (self.share_bp > 0) or self.wh < 0 or self.share_bp < 0:
            raise NettingError(
                f"order {self.donor}->{self.beneficiary}: set exactly one of wh or share_bp"
            )
        if self.share_bp > 10_000:
            raise NettingError(f"order {self.donor}->{self.beneficiary}: share above 100 %")
        if self.donor == self.beneficiary:
            raise NettingError(f"order {self.donor}->{self.beneficiary}: donor is beneficiary")


@dataclass(frozen=True)
class Movement:
    account: str
    unit: str
    amount: int  # signed: + credit, - debit
    reason: str  # allocation | export | donation | demurrage
    counterparty: str = ""


@dataclass(frozen=True)
class Entry:
    account: str
    unit: str
    amount: int


@dataclass(frozen=True)
class Donation:
    """A standing order executed in the period."""

    order: StandingOrder
    wh: int


@dataclass(frozen=True)
class Netting:
    movements: tuple[Movement, ...]
    entries: tuple[Entry, ...]  # sorted by (unit, account); zero changes omitted
    donations: tuple[Donation, ...] = ()

    @property
    def chain_entries(self) -> tuple[Entry, ...]:
        """The entries without the donations, which the ledger applies as such."""
        return net_entries(m for m in self.movements if m.reason != "donation")

    def entry(self, account: str, unit: str = KWH) -> int:
        return sum(e.amount for e in self.entries if e.account == account and e.unit == unit)


def demurrage_charge(balance: int, rate_ppm: int, periods: int = 1) -> int:
    """Demurrage on a positive balance over `periods`, compounded per period, each period
    rounded down. Lazy: an account untouched for n periods is charged for n at once."""
    if rate_ppm < 0 or rate_ppm > PPM:
        raise NettingError(f"demurrage rate {rate_ppm} ppm outside 0..{PPM}")
    charged = 0
    for _ in range(periods):
        if balance <= 0:
            break
        fee = balance * rate_ppm // PPM
        if fee == 0:
            break  # later periods charge nothing either: the balance no longer changes
        charged += fee
        balance -= fee
    return charged


def net_period(
    energy: Mapping[str, MemberEnergy],
    orders: Sequence[StandingOrder] = (),
    demurrage_ppm: Mapping[str, int] | None = None,
    opening: Mapping[tuple[str, str], int] | None = None,
    fund: str = FUND,
) -> Netting:
    """The movements and net entries of one period (see the module doc)."""
    if fund in energy:
        raise NettingError(f"the fund account {fund!r} cannot have metered energy")
    moves: list[Movement] = []
    for member in sorted(energy):
        e = energy[member]
        if e.given:
            moves.append(Movement(member, KWH, e.given, "allocation"))
        if e.received:
            moves.append(Movement(member, KWH, -e.received, "allocation"))
        if e.to_grid:
            moves.append(Movement(member, KWH, e.to_grid, "export", fund))
            moves.append(Movement(fund, KWH, -e.to_grid, "export", member))
    if sum(e.given for e in energy.values()) != sum(e.received for e in energy.values()):
        raise NettingError("allocations given and received do not match")

    remaining = {m: e.exported for m, e in energy.items()}
    uncovered = {m: e.received for m, e in energy.items()}
    donations: list[Donation] = []
    for order in orders:
        if order.donor not in energy:
            raise NettingError(f"order {order.donor}->{order.beneficiary}: unknown donor")
        if order.beneficiary not in energy:
            raise NettingError(f"order {order.donor}->{order.beneficiary}: unknown beneficiary")
        if order.beneficiary == fund:
            raise NettingError("donations to the fund are ordinary transfers, not orders")
        want = order.wh or energy[order.donor].exported * order.share_bp // 10_000
        wh = min(want, remaining[order.donor], uncovered[order.beneficiary])
        if wh > 0:
            remaining[order.donor] -= wh
            uncovered[order.beneficiary] -= wh
            moves.append(Movement(order.donor, KWH, -wh, "donation", order.beneficiary))
            moves.append(Movement(order.beneficiary, KWH, wh, "donation", order.donor))
            donations.append(Donation(order, wh))

    for unit, rate in sorted((demurrage_ppm or {}).items()):
        for (account, acc_unit), balance in sorted((opening or {}).items()):
            if acc_unit != unit or account == fund:
                continue
            fee = demurrage_charge(balance, rate)
            if fee:
                moves.append(Movement(account, unit, -fee, "demurrage", fund))
                moves.append(Movement(fund, unit, fee, "demurrage", account))

    return Netting(tuple(moves), net_entries(moves), tuple(donations))


def net_entries(moves: Iterable[Movement]) -> tuple[Entry, ...]:
    sums: dict[tuple[str, str], int] = {}
    for m in moves:
        sums[m.unit, m.account] = sums.get((m.unit, m.account), 0) + m.amount
    per_unit: dict[str, int] = {}
    for (unit, _), amount in sums.items():
        per_unit[unit] = per_unit.get(unit, 0) + amount
    broken = {u: s for u, s in per_unit.items() if s}
    if broken:
        raise NettingError(f"units not zero-sum: {broken}")
    return tuple(Entry(a, u, v) for (u, a), v in sorted(sums.items()) if v)
