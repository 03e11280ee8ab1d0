"""A member's statement for a billing period, from the period's settled data: pure, no I/O.

Input is `PeriodData` (what `community.bills.ledger` reads from SQL: each member's metered
energy, who gave how much to whom, the ledger movements and entries), output is a
`Statement` of integers (Wh, base units of each token, cents) that the PDF, the CSV and
the web page all render. Figures:

Consumption (Wh):
- ``community_wh``: received from neighbours' roofs (the allocation's flows to the member);
- ``grid_wh``: drawn from the public grid = metered import − import netted at the meter
  within an interval (own production, see below) − community_wh;
- ``consumed_wh`` = community_wh + grid_wh: everything drawn from the network.

Production (Wh):
- ``shared_wh``: given to neighbours (flows from the member);
- ``exported_wh``: exported beyond the community (flow to the grid);
- ``self_consumed_wh``: the rest of production, used at home: production − shared −
  exported. Production is the inverter's register where there is one; a home without a
  production meter is taken to have produced at least what it exported.

Self-sufficiency = (self_consumed + community) / (self_consumed + community + grid), in
basis points, rounded down.

Where the community energy came from: one line per neighbour whose roof gave some, with
its share; a neighbour is named only if it agreed (`bills_members.name_consent`),
otherwise it is "a neighbour". Shares are basis points by the largest-remainder rule, so
they sum to exactly 100 %.

Money: the member's own supplier price (cents per kWh) values community energy (what it
would have cost from the supplier: saved), grid energy (billed by the supplier), and the
energy shared and exported (earned, paid in crypto-kWh). Cents, rounded half up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

KWH = "KWH"
FUND = "fund"
GRID = "grid"
BP = 10_000


class BillsError(ValueError):
    """Input a statement or a run cannot be made from; the message says what to fix."""


# --- input ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Metered:
    """A member's metered energy over the billing period, Wh (all its settled gateways)."""

    imported: int = 0
    exported: int = 0
    produced: int = 0
    netted: int = 0  # sum over intervals of min(export, import): own production, netted

    def __add__(self, other: Metered) -> Metered:
        return Metered(
            self.imported + other.imported,
            self.exported + other.exported,
            self.produced + other.produced,
            self.netted + other.netted,
        )


@dataclass(frozen=True)
class Move:
    """One movement on an account: settlement's (per period) or the app's journal."""

    ts: int  # Unix seconds: period start, or the journal entry's time
    account: str
    unit: str
    amount: int  # base units, signed
    reason: str  # allocation | export | donation | demurrage | trade | ...
    counterparty: str = ""
    source: str = "settlement"  # settlement | app
    memo: str = ""


@dataclass(frozen=True)
class PeriodData:
    """Everything a billing period's statements are computed from."""

    start: int
    end: int
    periods: tuple[int, ...]  # starts of the settled periods included
    metered: Mapping[str, Metered]  # member -> metered energy
    flows: Mapping[tuple[str, str], int]  # (producer, consumer or "grid") -> Wh
    moves: tuple[Move, ...]  # of every account, in the billing period
    entries: Mapping[tuple[int, str, str], int]  # (period, account, unit) -> ledger entry
    opening: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (account, unit)
    names: Mapping[str, str] = field(default_factory=dict)  # member -> display name
    consent: frozenset[str] = frozenset()  # members who agreed to be named as a source
    carried: Mapping[str, int] = field(default_factory=dict)  # member -> periods carried
    members: tuple[str, ...] = ()  # everyone to bill (registered, or with any figure)
    chain_reconciled: bool = True  # every period's on-chain events matched SQL
    problems: tuple[str, ...] = ()  # found while loading (e.g. claims vs intervals)


# --- output ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    name: str | None  # None: "a neighbour" (did not agree to be named)
    wh: int
    share_bp: int


@dataclass(frozen=True)
class Line:
    """A token movement line: one reason on one unit, or one journal entry."""

    unit: str
    reason: str
    amount: int
    counterparty: str | None = None  # a name, or None for "a neighbour"
    date: str = ""  # YYYY-MM-DD for individual entries
    memo: str = ""


@dataclass(frozen=True)
class Statement:
    member: str
    name: str
    start: int
    end: int
    periods: int
    carried_periods: int
    consumed_wh: int
    community_wh: int
    grid_wh: int
    produced_wh: int
    self_consumed_wh: int
    shared_wh: int
    exported_wh: int
    self_sufficiency_bp: int
    sources: tuple[Source, ...]
    kwh: tuple[Line, ...]  # crypto-kWh by reason
    tokens: tuple[Line, ...]  # hours and goods, entry by entry
    balances: tuple[tuple[str, int, int], ...]  # (unit, opening, closing)
    demurrage: tuple[tuple[str, int], ...]  # (unit, charged) as a positive amount
    donations_given: tuple[Line, ...]
    donations_received: tuple[Line, ...]
    tariff_ct_kwh: str | None  # the member's supplier price, cents per kWh
    saved_cents: int | None  # community energy at the supplier's price
    grid_cost_cents: int | None
    earned_cents: int | None  # shared + exported at the supplier's price

    @property
    def total_consumption_wh(self) -> int:
        return self.consumed_wh + self.self_consumed_wh

    @property
    def month(self) -> str:
        return datetime.fromtimestamp(self.start, UTC).strftime("%Y-%m")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Statement:
        v = dict(d)
        v["sources"] = tuple(Source(**s) for s in d["sources"])
        for k in ("kwh", "tokens", "donations_given", "donations_received"):
            v[k] = tuple(Line(**x) for x in d[k])
        v["balances"] = tuple(tuple(b) for b in d["balances"])
        v["demurrage"] = tuple(tuple(x) for x in d["demurrage"])
        return cls(**v)

    def canonical(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()


# Energy figures a correction may change, and that runs add up.
ENERGY_FIELDS = (
    "consumed_wh",
    "community_wh",
    "grid_wh",
    "produced_wh",
    "self_consumed_wh",
    "shared_wh",
    "exported_wh",
)
MONEY_FIELDS = ("saved_cents", "grid_cost_cents", "earned_cents")


# --- computation ----------------------------------------------------------------------


def parse_tariff(text: str | None) -> Decimal | None:
    """A supplier price in cents per kWh, e.g. "25.16"; None if not configured."""
    if text is None or str(text).strip() == "":
        return None
    try:
        value = Decimal(str(text).strip().replace(",", "."))
    except InvalidOperation:
        raise BillsError(f"tariff {text!r}: expected cents per kWh, e.g. 25.16") from None
    if not value.is_finite() or value < 0 or value > 10_000:
        raise BillsError(f"tariff {text!r}: expected cents per kWh between 0 and 10000")
    return value


def cents(wh: int, tariff: Decimal) -> int:
    """Wh at `tariff` cents per kWh, in cents rounded half up."""
    return int((Decimal(wh) * tariff / 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def shares_bp(amounts: Sequence[int]) -> list[int]:
    """Basis points of each amount in their total, largest remainder: sums to 10000."""
    total = sum(amounts)
    if total <= 0:
        return [0] * len(amounts)
    floors = [a * BP // total for a in amounts]
    rest = BP - sum(floors)
    order = sorted(range(len(amounts)), key=lambda i: (-(amounts[i] * BP % total), i))
    for i in order[:rest]:
        floors[i] += 1
    return floors


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _kwh_key(m: Move) -> str:
    if m.reason == "allocation":
        return "shared" if m.amount > 0 else "community"
    if m.reason == "donation":
        return "donation_received" if m.amount > 0 else "donation_given"
    return m.reason


KWH_ORDER = ("shared", "export", "community", "donation_given", "donation_received",
             "demurrage", "trade")


def member_statement(
    data: PeriodData, member: str, tariff_ct_kwh: str | None = None
) -> Statement:
    """The statement of `member` over `data`'s period (see the module doc)."""
    met = data.metered.get(member, Metered())
    community = shared = to_grid = 0
    by_producer: dict[str, int] = {}
    for (producer, consumer), wh in data.flows.items():
        if consumer == member and producer != member:
            community += wh
            by_producer[producer] = by_producer.get(producer, 0) + wh
        elif producer == member and consumer == GRID:
            to_grid += wh
        elif producer == member and consumer != member:
            shared += wh
    grid = met.imported - met.netted - community
    produced = max(met.produced, met.exported)
    self_consumed = produced - shared - to_grid
    consumed = community + grid
    total = consumed + self_consumed
    sufficiency = (self_consumed + community) * BP // total if total > 0 else 0

    def label(other: str) -> str | None:
        return data.names.get(other, other) if other in data.consent else None

    # Sources: largest first; anonymous neighbours after the named ones of equal size,
    # never in an order that would tell them apart.
    srcs = sorted(by_producer.items(), key=lambda kv: (-kv[1], kv[0] not in data.consent))
    bps = shares_bp([wh for _, wh in srcs])
    sources = tuple(Source(label(p), wh, bp) for (p, wh), bp in zip(srcs, bps, strict=True))

    mine = [m for m in data.moves if m.account == member]
    kwh_sums: dict[str, int] = {}
    tokens: list[Line] = []
    given: dict[str, int] = {}
    received: dict[str, int] = {}
    demurrage: dict[str, int] = {}
    for m in mine:
        if m.reason == "demurrage":
            demurrage[m.unit] = demurrage.get(m.unit, 0) - m.amount
        if m.unit == KWH:
            key = _kwh_key(m)
            kwh_sums[key] = kwh_sums.get(key, 0) + m.amount
            if key == "donation_given":
                given[m.counterparty] = given.get(m.counterparty, 0) - m.amount
            elif key == "donation_received":
                received[m.counterparty] = received.get(m.counterparty, 0) + m.amount
        else:
            other = m.counterparty
            name = None if other in ("", FUND) else data.names.get(other, other)
            tokens.append(Line(m.unit, m.reason, m.amount, name, _date(m.ts), m.memo))
    rank = {k: i for i, k in enumerate(KWH_ORDER)}
    kwh = tuple(
        Line(KWH, k, v)
        for k, v in sorted(kwh_sums.items(), key=lambda kv: (rank.get(kv[0], 99), kv[0]))
    )
    units = sorted({u for (a, u) in data.opening if a == member} | {m.unit for m in mine} | {KWH})
    balances = tuple(
        (
            u,
            data.opening.get((member, u), 0),
            data.opening.get((member, u), 0) + sum(m.amount for m in mine if m.unit == u),
        )
        for u in units
    )
    tokens.sort(key=lambda x: (x.date, x.unit, x.reason))

    tariff = parse_tariff(tariff_ct_kwh)
    return Statement(
        member=member,
        name=data.names.get(member, member),
        start=data.start,
        end=data.end,
        periods=len(data.periods),
        carried_periods=data.carried.get(member, 0),
        consumed_wh=consumed,
        community_wh=community,
        grid_wh=grid,
        produced_wh=produced,
        self_consumed_wh=self_consumed,
        shared_wh=shared,
        exported_wh=to_grid,
        self_sufficiency_bp=sufficiency,
        sources=sources,
        kwh=kwh,
        tokens=tuple(tokens),
        balances=balances,
        demurrage=tuple(sorted(demurrage.items())),
        donations_given=tuple(
            Line(KWH, "donation", wh, data.names.get(b, b)) for b, wh in sorted(given.items())
        ),
        donations_received=tuple(
            Line(KWH, "donation", wh, label(d)) for d, wh in sorted(received.items())
        ),
        tariff_ct_kwh=None if tariff is None else str(tariff),
        saved_cents=None if tariff is None else cents(community, tariff),
        grid_cost_cents=None if tariff is None else cents(grid, tariff),
        earned_cents=None if tariff is None else cents(shared + to_grid, tariff),
    )


def statements(
    data: PeriodData, tariffs: Mapping[str, str | None] | None = None
) -> list[Statement]:
    """One statement per member to bill, in member id order."""
    tariffs = tariffs or {}
    return [member_statement(data, m, tariffs.get(m)) for m in sorted(set(data.members))]


# --- totals and reconciliation --------------------------------------------------------


def totals(stmts: Iterable[Statement]) -> dict[str, int]:
    """The community totals: the sum of every statement's energy figures."""
    out = {"members": 0, **{f: 0 for f in ENERGY_FIELDS}}
    for s in stmts:
        out["members"] += 1
        for f in ENERGY_FIELDS:
            out[f] += getattr(s, f)
    return out


def reconcile(data: PeriodData, stmts: Sequence[Statement]) -> list[str]:
    """Every way the statements disagree with the ledger, to the Wh; empty if none.

    Checked: each member's crypto-kWh movements carry exactly the energy of its statement
    (shared = allocation credits, community = allocation debits, exported = export
    credits); metered export = netted + shared + exported; no negative figure; each
    period's movements add up to its ledger entries, account by account, and every unit
    sums to zero; every period was reconciled with the chain; energy received in the
    community equals energy shared."""
    problems = list(data.problems)
    if not data.chain_reconciled:
        problems.append("a period's on-chain events do not match its SQL entries")
    for s in stmts:
        kwh = {line.reason: line.amount for line in s.kwh}
        met = data.metered.get(s.member, Metered())
        checks = (
            ("shared", kwh.get("shared", 0), s.shared_wh),
            ("community", -kwh.get("community", 0), s.community_wh),
            ("export", kwh.get("export", 0), s.exported_wh),
            ("metered export", met.exported, met.netted + s.shared_wh + s.exported_wh),
        )
        for what, ledger, figure in checks:
            if ledger != figure:
                problems.append(f"{s.member}: {what} {figure} Wh on the statement, {ledger} Wh in the ledger")
        for f in ENERGY_FIELDS:
            if getattr(s, f) < 0:
                problems.append(f"{s.member}: {f} is negative ({getattr(s, f)})")
    sums: dict[tuple[int, str, str], int] = {}
    for m in data.moves:
        if m.source == "settlement":
            k = (m.ts, m.account, m.unit)
            sums[k] = sums.get(k, 0) + m.amount
    nonzero = {k: v for k, v in sums.items() if v}
    if nonzero != {k: v for k, v in data.entries.items() if v}:
        diff = sorted(set(nonzero.items()) ^ {(k, v) for k, v in data.entries.items() if v})
        problems.append(f"movements do not add up to the ledger entries: {diff[:3]}")
    per_unit: dict[tuple[int, str], int] = {}
    for (period, _, unit), v in data.entries.items():
        per_unit[period, unit] = per_unit.get((period, unit), 0) + v
    for (period, unit), v in sorted(per_unit.items()):
        if v:
            problems.append(f"period {period}: {unit} entries sum to {v}, not 0")
    given = sum(s.shared_wh for s in stmts)
    got = sum(s.community_wh for s in stmts)
    if given != got:
        problems.append(f"neighbours received {got} Wh but producers shared {given} Wh")
    return problems
