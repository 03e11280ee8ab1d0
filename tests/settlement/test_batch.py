"""Building a period's batch from checked claims (pure)."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey
from eth_account import Account

from community.settlement.batch import (
    BatchError,
    GatewayPeriod,
    allocation_leaf,
    build_batch,
    chain_batch,
    gateway_leaf,
)
from community.settlement.netting import FUND, KWH, StandingOrder
from quartier import merkle
from quartier.claim import IntervalValues, PeriodClaim, intervals_root, sign_claim
from quartier.signing import address_of

START = 1_717_200_000  # 2024-06-01T00:00:00Z
STEP = 900
END = START + 4 * STEP  # a short period of four intervals keeps the numbers readable


def gateway(member: str, key: PrivateKey, exports: list[int], imports: list[int]) -> GatewayPeriod:
    ivs = tuple(
        IntervalValues(START + k * STEP, imports[k], exports[k], exports[k] + 10) for k in range(4)
    )
    gw = address_of(key)
    claim = PeriodClaim(
        community="test",
        gateway=gw,
        period_start=START,
        period_end=END,
        first_seq=1,
        last_seq=50,
        imported_wh=sum(imports),
        exported_wh=sum(exports),
        produced_wh=sum(iv.produced_wh for iv in ivs),
        intervals_root=intervals_root(list(ivs)),
    )
    return GatewayPeriod(gw, member, f"mp-{member}", claim, sign_claim(key, claim), ivs)


KEYS = {m: PrivateKey(bytes([i + 1]) * 32) for i, m in enumerate(["alice", "bob", "carol", "dave"])}


def neighbourhood() -> tuple[dict[str, list[str]], list[GatewayPeriod]]:
    g = {
        "alice": gateway("alice", KEYS["alice"], [300, 300, 0, 0], [0, 0, 100, 100]),
        "bob": gateway("bob", KEYS["bob"], [0, 0, 0, 0], [100, 200, 100, 0]),
        "carol": gateway("carol", KEYS["carol"], [0, 0, 0, 0], [100, 200, 0, 0]),
        "dave": gateway("dave", KEYS["dave"], [0] * 4, [50] * 4),
    }
    expected = {m: [x.gateway] for m, x in g.items()}
    return expected, [g["alice"], g["bob"], g["carol"]]  # dave's claim never came


def test_batch_by_hand() -> None:
    expected, claims = neighbourhood()
    batch = build_batch(START, END, expected, claims)
    assert batch.carried == {"dave": f"no valid claim from {expected['dave'][0]}"}
    # interval 0: alice 300 for bob 100 + carol 100 -> 100 each, 100 to the grid
    # interval 1: alice 300 for bob 200 + carol 200 -> 150 each
    # intervals 2-3: alice imports from the grid
    e = {x.account: x.amount for x in batch.netting.entries if x.unit == KWH}
    assert e == {"alice": 600, "bob": -250, "carol": -250, FUND: -100}
    assert "dave" not in {m.account for m in batch.netting.movements}
    a0 = batch.allocations[0]
    assert {(f.producer, f.consumer, f.wh) for f in a0.flows} == {
        ("alice", "bob", 100),
        ("alice", "carol", 100),
    }
    # the record tree: every leaf proves to the root
    root = batch.root
    leaf = gateway_leaf(claims[0].gateway, claims[0].claim.intervals_root)
    assert merkle.verify(batch.proof("gateway", claims[0].gateway), root, leaf)
    leaf = allocation_leaf("alice", START, 200, 100, [("bob", 100), ("carol", 100)])
    assert merkle.verify(batch.proof("allocation", "alice", str(START)), root, leaf)
    tampered = allocation_leaf("alice", START, 200, 100, [("bob", 101), ("carol", 99)])
    assert not merkle.verify(batch.proof("allocation", "alice", str(START)), root, tampered)


def test_batch_is_deterministic() -> None:
    expected, claims = neighbourhood()
    a = build_batch(START, END, expected, claims)
    b = build_batch(START, END, expected, list(reversed(claims)))
    assert a.root == b.root and a.netting == b.netting


def test_donation_needs_both_settled() -> None:
    expected, claims = neighbourhood()
    orders = [StandingOrder("alice", "bob", wh=50), StandingOrder("alice", "dave", wh=50)]
    batch = build_batch(START, END, expected, claims, orders=orders)
    e = {x.account: x.amount for x in batch.netting.entries}
    assert e["bob"] == -200 and e["alice"] == 550


def test_contract_order_and_compact_signatures() -> None:
    expected, claims = neighbourhood()
    batch = build_batch(START, END, expected, claims)
    accounts = {m: Account.from_key(bytes([0x40 + i]) * 32).address for i, m in enumerate(KEYS)}
    fund_address = "0x" + "ff" * 20
    cb = chain_batch(batch, accounts, {KWH: 1}, fund_address)
    keys = [(unit, int(addr, 16)) for addr, unit, _ in cb.entries]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert sum(amount for _, _, amount in cb.entries) == 0
    # claims follow the entries' member order
    owner = {accounts[g.member]: g.gateway for g in claims}
    assert [c[0] for c in cb.claims] == [owner[a] for a, _, _ in cb.entries if a in owner]
    # the compact signature is the same signature
    for c, g in zip(
        cb.claims, sorted(claims, key=lambda g: int(accounts[g.member], 16)), strict=True
    ):
        r, vs = c[7], c[8]
        v = int.from_bytes(vs, "big") >> 255
        s = int.from_bytes(vs, "big") & ((1 << 255) - 1)
        assert r + s.to_bytes(32, "big") + bytes([v + 27]) == g.signature
    assert cb.intervals_root == batch.root and cb.period_id == START


def test_zero_entry_for_a_member_with_a_claim_and_no_change() -> None:
    expected, claims = neighbourhood()
    idle = gateway("erin", PrivateKey(b"\x09" * 32), [0] * 4, [0] * 4)
    expected["erin"] = [idle.gateway]
    batch = build_batch(START, END, expected, [*claims, idle])
    accounts = {
        m: Account.from_key(bytes([0x40 + i]) * 32).address for i, m in enumerate([*KEYS, "erin"])
    }
    cb = chain_batch(batch, accounts, {KWH: 1}, "0x" + "ff" * 20)
    assert (accounts["erin"], 1, 0) in cb.entries
    assert idle.gateway in [c[0] for c in cb.claims]


def test_rejects_inconsistent_claims() -> None:
    expected, claims = neighbourhood()
    bad = claims[0]
    other = GatewayPeriod(
        bad.gateway,
        bad.member,
        bad.meter_point,
        bad.claim,
        bad.signature,
        (IntervalValues(START, 0, 999, 0), *bad.intervals[1:]),
    )
    with pytest.raises(BatchError, match="do not match its claim's root"):
        build_batch(START, END, expected, [other, *claims[1:]])
    with pytest.raises(BatchError, match="not \\["):
        build_batch(START + STEP, END + STEP, expected, claims)
    with pytest.raises(BatchError, match="two claims"):
        build_batch(START, END, expected, [*claims, claims[0]])
