"""Relayed member payments on both backends: intents, limits, board controls, memos."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3.logs import DISCARD

from community.chain import devnet
from community.chain.client import LedgerRevert
from community.chain.demurrage import charge
from community.chain.intents import Entry
from quartier.signing import address_of
from tests.chain.conftest import DAY, HOUR, Chain, key


def refused(name: str):  # type: ignore[no-untyped-def]
    return pytest.raises(LedgerRevert, match=rf"ledger refused: {name}\(")


def fund_hours(chain: Chain, amounts: dict[int, int]) -> None:
    """Gives members HOUR balances through a settlement batch (hours are not metered)."""
    entries = [Entry(chain.member(i), HOUR, a) for i, a in amounts.items()]
    entries.append(Entry(chain.client.address, HOUR, -sum(amounts.values())))
    chain.client.set_limits(HOUR, chain.client.address, -10**9, 10**9)
    chain.client.settle_batch(chain.batch(chain.day0 - 5 * DAY, {}, extra=entries))


def test_a_relayed_payment_moves_hours_and_the_relayer_pays_gas(chain: Chain) -> None:
    fund_hours(chain, {0: 1_000})
    c = chain.client
    p = c.payment(chain.member(0), chain.member(1), "HOUR", 250)
    c.relay_payment(p, c.sign_payment(chain.members[0], p))
    assert c.balance(HOUR, chain.member(0)) == 750 and c.balance(HOUR, chain.member(1)) == 250
    assert c.nonce_of(HOUR, chain.member(0)) == 1
    assert c.w3.eth.get_balance(chain.member(0)) == 0  # the member holds no coin for gas


def test_the_intent_digest_is_standard_eip712(chain: Chain) -> None:
    """eth_account, an independent implementation, signs the same digest the contract checks."""
    c = chain.client
    p = c.payment(chain.member(0), chain.member(1), "HOUR", 5, memo=b"\x01\x02")
    typed = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"},
                             {"name": "verifyingContract", "type": "address"}],
            "Payment": [{"name": "from", "type": "address"}, {"name": "to", "type": "address"},
                        {"name": "unit", "type": "uint8"}, {"name": "amount", "type": "uint256"},
                        {"name": "nonce", "type": "uint64"}, {"name": "deadline", "type": "uint64"},
                        {"name": "memoHash", "type": "bytes32"}],
        },
        "primaryType": "Payment",
        "domain": {"name": "Quartier Ledger", "version": "1", "chainId": c.chain_id,
                   "verifyingContract": c.ledger_address},
        "message": {"from": p.sender, "to": p.to, "unit": p.unit, "amount": p.amount, "nonce": p.nonce,
                    "deadline": p.deadline, "memoHash": c.w3.keccak(b"\x01\x02")},
    }
    signed = Account.sign_message(encode_typed_data(full_message=typed), chain.members[0].secret)
    assert bytes(signed.message_hash) == p.digest(c.chain_id, c.ledger_address)
    assert bytes(c.call("paymentDigest", p.sender, p.to, p.unit, p.amount, p.nonce, p.deadline,
                        c.w3.keccak(b"\x01\x02"))) == bytes(signed.message_hash)


def test_forged_intent_is_refused(chain: Chain) -> None:
    fund_hours(chain, {0: 1_000})
    c = chain.client
    p = c.payment(chain.member(0), chain.member(2), "HOUR", 100)
    with refused("BadIntentSignature"):
        c.relay_payment(p, c.sign_payment(key(999), p))  # the relayer's own forgery
    signed = c.sign_payment(chain.members[0], p)
    with refused("BadIntentSignature"):
        c.relay_payment(replace(p, amount=900), signed)  # altered amount
    with refused("BadIntentSignature"):
        c.relay_payment(replace(p, to=chain.member(3)), signed)  # altered payee


def test_replayed_intent_is_refused(chain: Chain) -> None:
    fund_hours(chain, {0: 1_000})
    c = chain.client
    p = c.payment(chain.member(0), chain.member(1), "HOUR", 100)
    sig = c.sign_payment(chain.members[0], p)
    c.relay_payment(p, sig)
    with refused("BadNonce"):
        c.relay_payment(p, sig)
    assert c.balance(HOUR, chain.member(0)) == 900


def test_expired_intent_is_refused(chain: Chain) -> None:
    fund_hours(chain, {0: 1_000})
    c = chain.client
    p = c.payment(chain.member(0), chain.member(1), "HOUR", 100, ttl=60)
    sig = c.sign_payment(chain.members[0], p)
    devnet.advance_time(c.w3, 120)
    with refused("IntentExpired"):
        c.relay_payment(p, sig)


def test_payment_below_the_floor_is_refused_with_the_amounts(chain: Chain) -> None:
    c = chain.client
    p = c.payment(chain.member(0), chain.member(1), "HOUR", 1_200)
    with pytest.raises(LedgerRevert) as err:
        c.relay_payment(p, c.sign_payment(chain.members[0], p))
    assert err.value.name == "BelowFloor"
    assert err.value.args_by_name["floor"] == -1_000 and err.value.args_by_name["balanceAfter"] == -1_200


def test_payment_above_the_ceiling_is_refused_with_the_amounts(chain: Chain) -> None:
    fund_hours(chain, {0: 4_000, 1: 4_500})
    c = chain.client
    p = c.payment(chain.member(0), chain.member(1), "HOUR", 600)
    with pytest.raises(LedgerRevert) as err:
        c.relay_payment(p, c.sign_payment(chain.members[0], p))
    assert err.value.name == "AboveCeiling"
    assert err.value.args_by_name["ceiling"] == 5_000 and err.value.args_by_name["balanceAfter"] == 5_100


def test_a_non_member_cannot_go_into_debt(chain: Chain) -> None:
    stranger = key(321)
    c = chain.client
    p = c.payment(address_of(stranger), chain.member(1), "HOUR", 1)
    with pytest.raises(LedgerRevert) as err:
        c.relay_payment(p, c.sign_payment(stranger, p))
    assert err.value.name == "BelowFloor" and err.value.args_by_name["floor"] == 0


def test_paused_ledger_refuses_every_payment_until_resumed(chain: Chain) -> None:
    fund_hours(chain, {0: 1_000})
    c = chain.client
    c.pause("suspected key theft")
    p = c.payment(chain.member(0), chain.member(1), "HOUR", 10)
    sig = c.sign_payment(chain.members[0], p)
    with refused("LedgerPaused"):
        c.relay_payment(p, sig)
    with refused("LedgerPaused"):
        c.pause("twice")
    c.resume("keys rotated")
    c.relay_payment(p, sig)
    assert c.balance(HOUR, chain.member(1)) == 10


def test_frozen_account_can_neither_pay_nor_be_paid(chain: Chain) -> None:
    fund_hours(chain, {0: 1_000, 1: 1_000})
    c = chain.client
    c.freeze(chain.member(1), "replacement of a lost phone pending")
    assert c.is_frozen(chain.member(1))
    p = c.payment(chain.member(0), chain.member(1), "HOUR", 10)
    with refused("AccountFrozen"):
        c.relay_payment(p, c.sign_payment(chain.members[0], p))
    q = c.payment(chain.member(1), chain.member(0), "HOUR", 10)
    with refused("AccountFrozen"):
        c.relay_payment(q, c.sign_payment(chain.members[1], q))
    c.unfreeze(chain.member(1), "identity confirmed")
    c.relay_payment(q, c.sign_payment(chain.members[1], q))
    with refused("NotFrozen"):
        c.unfreeze(chain.member(1), "again")


def test_memo_travels_only_as_ciphertext(chain: Chain) -> None:
    fund_hours(chain, {0: 1_000})
    c = chain.client
    plaintext = b"garden help, Saturday 3 hours, thank you Mireille"
    ciphertext = os.urandom(12) + AESGCM(AESGCM.generate_key(bit_length=128)).encrypt(b"\0" * 12, plaintext, None)
    p = c.payment(chain.member(0), chain.member(1), "HOUR", 300, memo=ciphertext)
    tx = c.relay_payment(p, c.sign_payment(chain.members[0], p))
    receipt = c.w3.eth.get_transaction_receipt(tx)
    (memo,) = c.ledger.events.Memo().process_receipt(receipt, errors=DISCARD)
    assert memo["args"]["ciphertext"] == ciphertext
    calldata = bytes(c.w3.eth.get_transaction(tx)["input"])
    logs = b"".join(bytes(log["data"]) for log in receipt["logs"])
    for needle in (plaintext, b"Mireille", b"garden"):
        assert needle not in calldata and needle not in logs


def test_demurrage_is_charged_lazily_to_both_parties_and_goes_to_the_fund(chain: Chain) -> None:
    fund_hours(chain, {0: 2_000, 1: 3_000})
    c = chain.client
    before = {i: c.account_state(HOUR, chain.member(i)) for i in (0, 1)}
    fund_before = c.balance(HOUR, c.address)
    devnet.advance_time(c.w3, 30 * DAY)
    p = c.payment(chain.member(0), chain.member(1), "HOUR", 100)
    tx = c.relay_payment(p, c.sign_payment(chain.members[0], p))
    now = int(c.w3.eth.get_block(c.w3.eth.get_transaction_receipt(tx)["blockNumber"])["timestamp"])
    expected = {i: charge(before[i].balance, 1_000_000, now - before[i].touched_at, before[i].dust)
                for i in (0, 1)}
    assert all(e.amount > 0 for e in expected.values())
    assert c.balance(HOUR, chain.member(0)) == 2_000 - expected[0].amount - 100
    assert c.balance(HOUR, chain.member(1)) == 3_000 - expected[1].amount + 100
    assert c.account_state(HOUR, chain.member(0)).dust == expected[0].dust
    # The charges stay owed in the parties' own words until collected into the fund.
    assert [c.account_state(HOUR, chain.member(i)).owed for i in (0, 1)] == [expected[0].amount,
                                                                               expected[1].amount]
    assert c.balance(HOUR, c.address) == fund_before
    c.collect(HOUR, [chain.member(0), chain.member(1)])
    assert c.balance(HOUR, c.address) == fund_before + expected[0].amount + expected[1].amount
    assert [c.account_state(HOUR, chain.member(i)).owed for i in (0, 1)] == [0, 0]
