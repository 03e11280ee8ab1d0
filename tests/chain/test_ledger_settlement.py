"""Settlement batches on both backends: the happy path, idempotency, every revert."""

from __future__ import annotations

from dataclasses import replace

import pytest

from community.chain.client import ChainClient, LedgerRevert, Submission
from community.chain.intents import Entry, compact_signature
from quartier.signing import address_of
from tests.chain.conftest import DAY, HOUR, KWH, Chain, key


def refused(name: str) -> pytest.RaisesExc:  # type: ignore[name-defined]
    return pytest.raises(LedgerRevert, match=rf"ledger refused: {name}\(")


def test_settles_a_period_with_claims_verified(chain: Chain) -> None:
    c = chain.client
    p = chain.day0
    tx = c.settle_batch(chain.batch(p, {0: (0, 5_000, 5_000), 1: (3_000, 0, -3_000), 2: (2_500, 0, -2_000)}))
    assert [c.balance(KWH, chain.member(i)) for i in range(3)] == [5_000, -3_000, -2_000]
    assert c.is_settled(p)
    info = c.period(p)
    assert info is not None and info.intervals_root == b"\x99" * 32 and info.period_end == p + DAY
    assert info.claims == 3 and info.entries == 3
    assert c.intervals_root(p) == b"\x99" * 32 and c.intervals_root(p + DAY) is None
    assert c.settlement_tx(p) == tx


def test_resubmitting_a_settled_period_is_a_no_op(chain: Chain) -> None:
    c = chain.client
    batch = chain.batch(chain.day0, {0: (0, 1_000, 1_000), 1: (1_000, 0, -1_000)})
    tx = c.settle_batch(batch)
    height = c.w3.eth.block_number
    assert c.settle_batch(batch) == tx
    # Another client (a restarted server without its journal) also sees it settled.
    other = ChainClient(w3=c.w3, key=c._key, ledger=c.ledger_address)
    assert other.settle_batch(batch) == tx
    assert c.w3.eth.block_number == height
    assert c.balance(KWH, chain.member(0)) == 1_000


def test_a_crash_between_send_and_receipt_is_reconciled_with_the_same_transaction(chain: Chain) -> None:
    c = chain.client
    batch = chain.batch(chain.day0, {0: (0, 700, 700), 1: (700, 0, -700)})
    # What a crash right after journaling leaves: the signed transaction, never broadcast.
    call = c._fn("settle", batch.period_id, batch.period_end, batch.intervals_root, list(batch.claims),
                 list(batch.entries), [])
    tx_hash, raw = c._sign(c._build(call))
    c.journal.put(Submission(c.ledger_address, batch.period_id, tx_hash, raw, "sent"))
    assert c.settle_batch(batch) == tx_hash
    assert c.settle_batch(batch) == tx_hash
    assert c.balance(KWH, chain.member(0)) == 700


def test_period_settled_twice_is_refused_by_the_contract(chain: Chain) -> None:
    c = chain.client
    batch = chain.batch(chain.day0, {0: (0, 10, 10), 1: (10, 0, -10)})
    c.settle_batch(batch)
    with refused("PeriodAlreadySettled"):
        c.transact(c._fn("settle", batch.period_id, batch.period_end, batch.intervals_root,
                         list(batch.claims), list(batch.entries), []))


def test_forged_claim_is_refused(chain: Chain) -> None:
    p = chain.day0
    forged = chain.claim(0, p, 0, 9_000, signer=key(666))
    with refused("ClaimSignatureInvalid"):
        chain.client.settle_batch(chain.batch(p, {0: (0, 9_000, 9_000), 1: (9_000, 0, -9_000)},
                                              claims=[forged, chain.claim(1, p, 9_000, 0)]))
    assert not chain.client.is_settled(p)


def test_claim_by_a_revoked_gateway_is_refused(chain: Chain) -> None:
    p = chain.day0
    chain.client.revoke_gateway(chain.gateway(0), at=p + 3600)  # compromised during the day
    with refused("GatewayNotActive"):
        chain.client.settle_batch(chain.batch(p, {0: (0, 100, 100), 1: (100, 0, -100)}))
    # The day before is still covered, and the lookup tells a verifier when it was trusted.
    chain.client.settle_batch(chain.batch(p - DAY, {0: (0, 100, 100), 1: (100, 0, -100)}))
    assert chain.client.gateway_at(chain.gateway(0), p).active
    assert not chain.client.gateway_at(chain.gateway(0), p + 3600).active
    assert chain.client.gateway_at(chain.gateway(0), p).member == chain.member(0)


def test_claim_from_an_unregistered_gateway_matches_no_member(chain: Chain) -> None:
    p = chain.day0
    stranger = key(777)
    batch = chain.batch(p, {0: (0, 100, 100), 1: (100, 0, -100)})
    extra = chain.claim(0, p, 0, 100, signer=stranger, gateway=address_of(stranger))
    r, vs = compact_signature(extra[1])
    c = extra[0]
    rogue = (c.gateway, c.first_seq, c.last_seq, c.imported_wh, c.exported_wh, c.produced_wh,
             c.intervals_root, r, vs)
    with refused("UnmatchedClaim"):
        chain.client.settle_batch(replace(batch, claims=(*batch.claims, rogue)))


def test_credit_above_the_claimed_export_is_refused(chain: Chain) -> None:
    with pytest.raises(LedgerRevert) as err:
        chain.client.settle_batch(chain.batch(chain.day0, {0: (0, 1_000, 1_001), 1: (1_001, 0, -1_001)}))
    assert err.value.name == "CreditAboveClaims"
    assert err.value.args_by_name["credit"] == 1_001 and err.value.args_by_name["claimedExportWh"] == 1_000


def test_debit_above_the_claimed_import_is_refused(chain: Chain) -> None:
    with refused("DebitAboveClaims"):
        chain.client.settle_batch(chain.batch(chain.day0, {0: (0, 1_000, 1_000), 1: (999, 0, -1_000)}))


def test_credit_without_any_claim_is_refused(chain: Chain) -> None:
    batch = chain.batch(chain.day0, {1: (500, 0, -500)}, extra=[Entry(chain.member(3), KWH, 500)])
    with refused("CreditAboveClaims"):
        chain.client.settle_batch(batch)


def test_the_fund_pays_certified_exports_without_a_claim_of_its_own(chain: Chain) -> None:
    fund = chain.client.address
    batch = chain.batch(chain.day0, {0: (0, 800, 800)}, extra=[Entry(fund, KWH, -800)])
    chain.client.settle_batch(batch)
    assert chain.client.balance(KWH, fund) == -800


def test_non_zero_sum_batch_is_refused(chain: Chain) -> None:
    with refused("NotZeroSum"):
        chain.client.settle_batch(chain.batch(chain.day0, {0: (0, 1_000, 1_000), 1: (1_000, 0, -900)}))


def test_unsorted_or_duplicate_entries_are_refused(chain: Chain) -> None:
    hours = [Entry(chain.member(2), HOUR, 50), Entry(chain.member(3), HOUR, -50)]
    batch = chain.batch(chain.day0, {0: (0, 100, 100), 1: (100, 0, -100)}, extra=hours)
    kwh, hour = batch.entries[:2], batch.entries[2:]
    with refused("EntriesNotSorted"):
        chain.client.settle_batch(replace(batch, entries=(*kwh, *hour[::-1])))
    with refused("EntriesNotSorted"):
        chain.client.settle_batch(replace(batch, entries=(*kwh, hour[0], *hour)))
    with refused("EntriesNotSorted"):
        chain.client.settle_batch(replace(batch, entries=(*hour, *kwh)))


def test_a_claim_counted_twice_is_refused(chain: Chain) -> None:
    batch = chain.batch(chain.day0, {0: (0, 100, 200), 1: (200, 0, -200)})
    first = batch.claims[0]
    with refused("ClaimsNotSorted"):
        chain.client.settle_batch(replace(batch, claims=(first, *batch.claims)))


def test_settlement_below_the_floor_is_refused_with_the_amounts(chain: Chain) -> None:
    with pytest.raises(LedgerRevert) as err:
        chain.client.settle_batch(chain.batch(chain.day0, {0: (0, 60_000, 60_000), 1: (60_000, 0, -60_000)}))
    assert err.value.name == "BelowFloor"
    assert err.value.args_by_name["floor"] == -50_000 and err.value.args_by_name["balanceAfter"] == -60_000


def test_settlement_above_a_ceiling_is_refused_with_the_amounts(chain: Chain) -> None:
    chain.client.set_limits(KWH, chain.member(0), -1_000, 2_000)
    assert chain.client.limits(KWH, chain.member(0)) == (-1_000, 2_000)
    with pytest.raises(LedgerRevert) as err:
        chain.client.settle_batch(chain.batch(chain.day0, {0: (0, 2_500, 2_500), 1: (2_500, 0, -2_500)}))
    assert err.value.name == "AboveCeiling"
    assert err.value.args_by_name["ceiling"] == 2_000 and err.value.args_by_name["balanceAfter"] == 2_500


def test_frozen_account_is_not_settled(chain: Chain) -> None:
    chain.client.freeze(chain.member(1), "identity check after a reported theft")
    with refused("AccountFrozen"):
        chain.client.settle_batch(chain.batch(chain.day0, {0: (0, 100, 100), 1: (100, 0, -100)}))


def test_paused_ledger_settles_nothing_until_resumed(chain: Chain) -> None:
    batch = chain.batch(chain.day0, {0: (0, 100, 100), 1: (100, 0, -100)})
    chain.client.pause("meter firmware incident")
    assert chain.client.is_paused()
    with refused("LedgerPaused"):
        chain.client.settle_batch(batch)
    chain.client.resume("firmware fixed")
    chain.client.settle_batch(batch)
    assert chain.client.balance(KWH, chain.member(0)) == 100


def test_unauthorised_callers_are_refused(chain: Chain) -> None:
    chain.client.send_value(address_of(key(4242)), 10**18)
    outsider = ChainClient(w3=chain.w3, key=key(4242), ledger=chain.client.ledger_address)
    batch = chain.batch(chain.day0, {0: (0, 100, 100), 1: (100, 0, -100)})
    for call in (
        lambda: outsider.settle_batch(batch),
        lambda: outsider.register_member(address_of(key(5))),
        lambda: outsider.register_gateway(address_of(key(6)), chain.member(0), "PRM-0"),
        lambda: outsider.revoke_gateway(chain.gateway(0)),
        lambda: outsider.pause("no"),
        lambda: outsider.freeze(chain.member(0), "no"),
        lambda: outsider.set_limits(KWH, chain.member(0), -1, 1),
        lambda: outsider.set_unit(KWH, -1, 1, 0),
    ):
        with refused("AccessControlUnauthorizedAccount"):
            call()


def test_registry_refusals(chain: Chain) -> None:
    c = chain.client
    with refused("AlreadyMember"):
        c.register_member(chain.member(0))
    with refused("GatewayAlreadyRegistered"):
        c.register_gateway(chain.gateway(0), chain.member(0), "PRM-0")
    with refused("MeterPointNotOwned"):
        c.register_gateway(address_of(key(31)), chain.member(0), "PRM-1")
    with refused("NotAMember"):
        c.register_meter_point("PRM-X", address_of(key(32)))
    c.revoke_gateway(chain.gateway(3))
    with refused("GatewayAlreadyRevoked"):
        c.revoke_gateway(chain.gateway(3))
    with refused("UnknownGateway"):
        c.revoke_gateway(address_of(key(33)))
