"""Gas of on-chain settlement against the naive alternative, and of one member payment.

A daily batch for 100 members at 15-minute intervals (96 intervals), each member's claim
signed by its gateway and verified on chain, is measured in steady state (a second day,
after a first one settled every account); the naive alternative, one ERC-20 mint
transaction per member per interval, is measured on the same node in the same run (every
such mint to an account that already holds tokens costs the same gas, so a sample of 200
mints gives its exact figure). `transfer_gas` is one relayed member payment, a day after
both accounts were last touched, so demurrage is charged to both.

Runs on a local anvil (contracts/node_modules) when it is installed, on the in-process EVM
otherwise. Prints one JSON line last.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coincurve import PrivateKey

from community.chain import artifacts, devnet
from community.chain.client import ChainClient, UnitSpec
from community.chain.intents import Entry, build_batch
from quartier import merkle
from quartier.claim import IntervalValues, PeriodClaim, intervals_root, sign_claim
from quartier.signing import address_of

MEMBERS = 100
INTERVALS = 96
DAY = 86_400
COMMUNITY = "bench-community"
KWH_RATE_PPB_PER_DAY = 100_000  # 0.01 % a day: charges of a few Wh a day on these balances


def day_batch(day_start: int, gateways: list[PrivateKey], members: list[str], rng: random.Random) -> Any:
    """A realistic day: a third of the homes export, the rest import; net entries sum to 0."""
    claims = []
    entries = []
    all_leaves = []
    producers = set(range(0, MEMBERS, 3))
    credits = {i: rng.randint(8_000, 20_000) for i in producers}
    total = sum(credits.values())
    consumers = [i for i in range(MEMBERS) if i not in producers]
    debits = {i: total // len(consumers) for i in consumers}
    debits[consumers[0]] += total - sum(debits.values())
    for i, key in enumerate(gateways):
        exported = credits.get(i, 0)
        imported = debits.get(i, 0)
        ivs = [IntervalValues(day_start + k * 900, imported // INTERVALS, exported // INTERVALS, 0)
               for k in range(INTERVALS)]
        all_leaves += [iv.leaf() for iv in ivs]
        claim = PeriodClaim(COMMUNITY, address_of(key), day_start, day_start + DAY, 1 + i * 1000,
                            96 * 60 + i * 1000, imported, exported, exported + 3_000, intervals_root(ivs))
        claims.append((claim, sign_claim(key, claim)))
        entries.append(Entry(members[i], 0, exported - imported))
    members_of = {address_of(k): members[i] for i, k in enumerate(gateways)}
    return build_batch(merkle.root(all_leaves), claims, entries, members_of)


def main() -> None:
    node = None
    try:
        node = devnet.start()
        client = ChainClient(node.url, devnet.DEV_KEY)
        backend = "anvil"
    except devnet.AnvilError:
        client = ChainClient(None)
        backend = "in-process EVM"
    try:
        result = run(client)
        result["backend"] = backend
    finally:
        if node is not None:
            node.stop()
    print(json.dumps(result))


def run(client: ChainClient) -> dict[str, Any]:
    rng = random.Random(7)
    w3 = client.w3
    client.deploy(COMMUNITY, units=[UnitSpec("KWH", 3, floor=-1_000_000, rate_ppb_per_day=KWH_RATE_PPB_PER_DAY,
                                             metered=True)])
    member_keys = [PrivateKey(bytes([1 + i // 256, i % 256]) * 16) for i in range(MEMBERS)]
    gateway_keys = [PrivateKey(bytes([3 + i // 256, i % 256]) * 16) for i in range(MEMBERS)]
    members = [address_of(k) for k in member_keys]
    for i in range(MEMBERS):
        client.register_member(members[i])
        client.register_meter_point(f"PRM-{i:05d}", members[i])
        client.register_gateway(address_of(gateway_keys[i]), members[i], f"PRM-{i:05d}", active_from=1)

    now = int(w3.eth.get_block("latest")["timestamp"])
    day0 = now - now % DAY - 3 * DAY
    client.settle_batch(day_batch(day0, gateway_keys, members, rng))  # every account now non-zero
    devnet.advance_time(w3, DAY)
    tx = client.settle_batch(day_batch(day0 + DAY, gateway_keys, members, rng))
    settle_gas = int(w3.eth.get_transaction_receipt(tx)["gasUsed"])

    # One relayed payment between two producers, a day after their last touch.
    devnet.advance_time(w3, DAY)
    payment = client.payment(members[0], members[3], "KWH", 1_000)
    pay_tx = client.relay_payment(payment, client.sign_payment(member_keys[0], payment))
    pay_receipt = w3.eth.get_transaction_receipt(pay_tx)
    transfer_gas = int(pay_receipt["gasUsed"])
    (event,) = client.ledger.events.Transferred().process_receipt(pay_receipt)
    charges = (event["args"]["demurrage"] & (2**128 - 1), event["args"]["demurrage"] >> 128)
    assert all(c > 0 for c in charges), f"demurrage not charged to both accounts: {charges}"

    # The naive alternative on the same node: one ERC-20 mint per member per interval.
    art = artifacts.load("NaiveToken")
    receipt = client.transact(w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor())
    token = w3.eth.contract(address=receipt["contractAddress"], abi=art.abi)
    for m in members:  # first mints create the balances; steady state is what a day costs
        client.transact(token.functions.mint(m, 1))
    mint_gas = [int(client.transact(token.functions.mint(m, rng.randint(1, 500)))["gasUsed"])
                for _ in range(2) for m in members]
    naive = sum(mint_gas) / len(mint_gas)

    per = settle_gas / (MEMBERS * INTERVALS)
    return {
        "members": MEMBERS, "intervals": INTERVALS, "settle_gas": settle_gas,
        "transfer_demurrage": list(charges), "naive_mint_gas_samples": len(mint_gas),
        "ratio": round(naive / per, 1),
        "gas_per_member_interval": round(per, 1),
        "naive_gas_per_member_interval": round(naive, 1),
        "transfer_gas": transfer_gas,
    }


if __name__ == "__main__":
    main()
