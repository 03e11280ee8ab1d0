"""A period's settlement batch, built from checked gateway claims: pure, no I/O.

Input: every gateway expected to report in the period, and the claims that passed the
ingest checks (signature, same totals and interval root as the stored readings) with
their interval values. A member is settled only if every one of its gateways has such a
claim; otherwise it is carried (recorded, neither credited nor debited, its meters'
energy left to the grid), because the ledger contract refuses any KWH credit or debit
that no gateway signature covers.

Output: the per-interval allocations (with flows), the netting, the contract's arguments
(entries sorted by (unit, account), claims grouped in the same order), and the period's
record tree whose root goes on chain. Leaves (quartier.merkle, OpenZeppelin-compatible):

- one per settled gateway: ``leaf(gateway address, claim intervalsRoot)``, so a proof
  links the gateway's signed interval values to the on-chain root;
- one per producing member and interval where it exported:
  ``leaf(keccak256(member id), intervalStart, givenWh, toGridWh, keccak256(flows))`` with
  flows the canonical JSON ``[[consumer id, wh], ...]`` in consumer order, so a
  certificate's "consumed locally by" is committed too.

The two kinds have different lengths (2 and 5 words), so one can never pass for the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from community.settlement.allocation import DEFAULT_KEY, Allocation, IntervalInput, allocate
from community.settlement.netting import (
    KWH,
    Entry,
    MemberEnergy,
    Netting,
    StandingOrder,
    net_period,
)
from quartier import merkle
from quartier.claim import IntervalValues, PeriodClaim, intervals_root
from quartier.hashing import keccak256

if TYPE_CHECKING:
    from community.chain.intents import Batch as ChainBatch


class BatchError(ValueError):
    """Inputs that cannot make a batch (a claim for another period, a root mismatch...)."""


@dataclass(frozen=True)
class GatewayPeriod:
    """A gateway's checked claim for the period and the interval values it covers."""

    gateway: str
    member: str
    meter_point: str
    claim: PeriodClaim
    signature: bytes
    intervals: tuple[IntervalValues, ...]


@dataclass(frozen=True)
class Batch:
    period_start: int
    period_end: int
    key: str
    settled: tuple[GatewayPeriod, ...]  # sorted by (member, gateway)
    carried: dict[str, str]  # member -> reason
    allocations: tuple[Allocation, ...]
    netting: Netting
    leaves: tuple[bytes, ...]
    leaf_index: dict[tuple[str, ...], int] = field(default_factory=dict)

    @property
    def root(self) -> bytes:
        return merkle.root(list(self.leaves))

    def proof(self, *key: str) -> list[bytes]:
        return merkle.proof(list(self.leaves), self.leaf_index[key])

    def energy(self) -> dict[str, MemberEnergy]:
        out: dict[str, dict[str, int]] = {}
        for a in self.allocations:
            for name in ("given", "received", "to_grid", "from_grid", "self_consumed"):
                for m, wh in getattr(a, name).items():
                    out.setdefault(m, {}).setdefault(name, 0)
                    out[m][name] += wh
        return {m: MemberEnergy(**v) for m, v in out.items()}


def flows_hash(flows: Sequence[tuple[str, int]]) -> bytes:
    return keccak256(json.dumps([[c, wh] for c, wh in flows], separators=(",", ":")).encode())


def member_hash(member: str) -> bytes:
    return keccak256(member.encode("utf-8"))


def gateway_leaf(gateway: str, claim_root: bytes) -> bytes:
    return merkle.leaf_hash(bytes.fromhex(gateway[2:]), claim_root)


def allocation_leaf(
    member: str, interval_start: int, given: int, to_grid: int, flows: Sequence[tuple[str, int]]
) -> bytes:
    return merkle.leaf_hash(member_hash(member), interval_start, given, to_grid, flows_hash(flows))


def build_batch(
    period_start: int,
    period_end: int,
    expected: Mapping[str, Sequence[str]],
    claims: Sequence[GatewayPeriod],
    *,
    key: str = DEFAULT_KEY,
    static_bp: Mapping[str, int] | None = None,
    priorities: Sequence[tuple[str, str]] = (),
    orders: Sequence[StandingOrder] = (),
    fund: str = "fund",
) -> Batch:
    """`expected`: member -> the gateways that must claim for it to be settled."""
    by_gateway: dict[str, GatewayPeriod] = {}
    for g in claims:
        c = g.claim
        if (c.period_start, c.period_end) != (period_start, period_end):
            raise BatchError(
                f"claim of {g.gateway} is for [{c.period_start}, {c.period_end}), "
                f"not [{period_start}, {period_end})"
            )
        if c.gateway != g.gateway:
            raise BatchError(f"claim of {c.gateway} filed under gateway {g.gateway}")
        if intervals_root(list(g.intervals)) != c.intervals_root:
            raise BatchError(f"interval values of {g.gateway} do not match its claim's root")
        if (
            sum(iv.exported_wh for iv in g.intervals) != c.exported_wh
            or sum(iv.imported_wh for iv in g.intervals) != c.imported_wh
        ):
            raise BatchError(f"interval values of {g.gateway} do not add up to its claim")
        if g.gateway in by_gateway:
            raise BatchError(f"two claims for gateway {g.gateway}")
        by_gateway[g.gateway] = g

    carried: dict[str, str] = {}
    settled: list[GatewayPeriod] = []
    for member in sorted(expected):
        gws = sorted(expected[member])
        missing = [gw for gw in gws if gw not in by_gateway]
        wrong = [gw for gw in gws if gw in by_gateway and by_gateway[gw].member != member]
        if wrong:
            raise BatchError(f"claim of {wrong[0]} names member {by_gateway[wrong[0]].member}")
        if not gws:
            carried[member] = "no gateway"
        elif missing:
            carried[member] = "no valid claim from " + ", ".join(missing)
        else:
            settled.extend(by_gateway[gw] for gw in gws)
    stray = sorted(set(by_gateway) - {g.gateway for g in settled})
    for gw in stray:
        if by_gateway[gw].member not in expected:
            raise BatchError(f"claim of {gw} for unknown member {by_gateway[gw].member}")

    starts = sorted({iv.start for g in settled for iv in g.intervals})
    exports: dict[int, dict[str, int]] = {t: {} for t in starts}
    imports: dict[int, dict[str, int]] = {t: {} for t in starts}
    for g in settled:
        for iv in g.intervals:
            ex, im = exports[iv.start], imports[iv.start]
            ex[g.member] = ex.get(g.member, 0) + iv.exported_wh
            im[g.member] = im.get(g.member, 0) + iv.imported_wh
    settled_members = {g.member for g in settled}
    static = {m: bp for m, bp in (static_bp or {}).items() if m in settled_members}
    prio = tuple((p, c) for p, c in priorities if p in settled_members and c in settled_members)
    allocations = []
    for t in starts:
        ex = {m: wh for m, wh in exports[t].items() if wh > 0}
        im = dict(imports[t])
        data = IntervalInput(
            t,
            ex,
            im,
            static,
            tuple((p, c) for p, c in prio if p in ex and c in im),
        )
        allocations.append(allocate(data, key))

    energy: dict[str, MemberEnergy] = {m: MemberEnergy() for m in settled_members}
    tot: dict[str, dict[str, int]] = {m: {} for m in settled_members}
    for a in allocations:
        for name in ("given", "received", "to_grid", "from_grid", "self_consumed"):
            for m, wh in getattr(a, name).items():
                tot[m][name] = tot[m].get(name, 0) + wh
    energy = {m: MemberEnergy(**v) for m, v in tot.items()}
    live_orders = [
        o for o in orders if o.donor in settled_members and o.beneficiary in settled_members
    ]
    netting = net_period(energy, live_orders, fund=fund)

    leaves: list[bytes] = []
    index: dict[tuple[str, ...], int] = {}
    for g in settled:
        index["gateway", g.gateway] = len(leaves)
        leaves.append(gateway_leaf(g.gateway, g.claim.intervals_root))
    for a in allocations:
        for m in sorted(a.given):
            if a.given[m] or a.to_grid[m]:
                fl = [(f.consumer, f.wh) for f in a.flows if f.producer == m]
                index["allocation", m, str(a.interval)] = len(leaves)
                leaves.append(
                    allocation_leaf(m, int(a.interval or 0), a.given[m], a.to_grid[m], fl)
                )
    return Batch(
        period_start,
        period_end,
        key,
        tuple(settled),
        carried,
        tuple(allocations),
        netting,
        tuple(leaves),
        index,
    )


def chain_batch(
    batch: Batch,
    accounts: Mapping[str, str],
    units: Mapping[str, int],
    fund_address: str,
    fund: str = "fund",
) -> ChainBatch:
    """The contract's `settle` arguments: member ids mapped to account addresses, units to
    ids, then ordered by the chain client (entries by (unit, address), each member's
    claims at its metered entry, zero entries for members with claims and no change,
    donations by (donor, order) apart from the entries)."""
    from community.chain import intents

    def account(member: str) -> str:
        if member == fund:
            return fund_address
        if member not in accounts:
            raise BatchError(f"member {member!r} has no account address")
        return accounts[member]

    entries = []
    for e in batch.netting.chain_entries:
        if e.unit not in units:
            raise BatchError(f"unit {e.unit!r} is not on the ledger")
        entries.append(intents.Entry(account(e.account), units[e.unit], e.amount))
    donations = []
    for d in batch.netting.donations:
        o = d.order
        if not o.order_id:
            raise BatchError(f"standing order {o.donor} -> {o.beneficiary} is not on chain")
        donations.append(intents.Donation(o.order_id, account(o.donor), d.wh))
    return intents.build_batch(
        batch.root,
        [(g.claim, g.signature) for g in batch.settled],
        entries,
        {g.gateway: account(g.member) for g in batch.settled},
        metered_unit=units[KWH],
        period_id=batch.period_start,
        period_end=batch.period_end,
        donations=donations,
    )


def entries_by_account(entries: Sequence[Entry]) -> dict[tuple[str, str], int]:
    return {(e.account, e.unit): e.amount for e in entries}
