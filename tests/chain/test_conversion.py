"""Conversion out on both backends: redemptions to the fund within monthly caps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from community.chain import devnet
from community.chain.conversion import ConversionClient, month_index
from community.chain.governance import GovernanceClient, Rules
from quartier.signing import address_of
from tests.chain.conftest import DAY, HOUR, KWH, Chain, key
from tests.chain.parts_support import fund, outsider, refused

REF = b"\x07" * 32  # the hash of the member's encrypted payout details


@pytest.fixture(scope="module")
def conv_module(chain_module: Chain) -> ConversionClient:
    conv = ConversionClient.deploy(chain_module.client)
    conv.set_caps(HOUR, 300, 500)
    return conv


@pytest.fixture
def conv(conv_module: ConversionClient, chain: Chain) -> Iterator[ConversionClient]:
    yield conv_module


def redeem(chain: Chain, conv: ConversionClient, who: int, amount: int, unit: int = HOUR):  # type: ignore[no-untyped-def]
    return conv.redeem(conv.sign_redemption(chain.members[who], chain.member(who), unit, amount, REF))


def test_a_redemption_moves_the_balance_to_the_fund_and_records_a_payment_order(
        chain: Chain, conv: ConversionClient) -> None:
    c = chain.client
    fund(chain, HOUR, {0: 1_000})
    fund_before = c.balance(HOUR, c.address)
    r = redeem(chain, conv, 0, 250)
    assert c.balance(HOUR, chain.member(0)) == 750 and c.balance(HOUR, c.address) == fund_before + 250
    month = month_index(chain.now())
    assert (r.member, r.unit, r.amount, r.month, r.payout_ref) == (chain.member(0), HOUR, 250, month, REF)
    assert conv.redeemed(HOUR, chain.member(0), month) == 250 == conv.redeemed(HOUR, None, month)
    assert conv.remaining(HOUR, chain.member(0)) == 50
    assert [x.tx_hash for x in conv.redemptions()] == [r.tx_hash]


def test_the_member_cap_refuses_with_the_amounts_and_reopens_next_month(chain: Chain, conv: ConversionClient) -> None:
    fund(chain, HOUR, {0: 1_000})
    redeem(chain, conv, 0, 200)
    with refused("AboveMemberCap") as exc:
        redeem(chain, conv, 0, 101)
    assert (exc.value.args_by_name["cap"], exc.value.args_by_name["redeemedAfter"]) == (300, 301)
    devnet.advance_time(chain.w3, 32 * DAY)
    redeem(chain, conv, 0, 300)


def test_the_global_cap_refuses_with_the_amounts(chain: Chain, conv: ConversionClient) -> None:
    fund(chain, HOUR, {0: 1_000, 1: 1_000})
    redeem(chain, conv, 0, 300)
    with refused("AboveGlobalCap") as exc:
        redeem(chain, conv, 1, 201)
    assert (exc.value.args_by_name["cap"], exc.value.args_by_name["redeemedAfter"]) == (500, 501)
    redeem(chain, conv, 1, 200)


def test_a_unit_without_caps_is_closed_and_floors_still_apply(chain: Chain, conv: ConversionClient) -> None:
    with refused("AboveMemberCap"):
        redeem(chain, conv, 0, 1, unit=KWH)
    chain.client.set_limits(HOUR, chain.member(2), 0, 5_000)
    with refused("BelowFloor"):  # nothing to redeem
        redeem(chain, conv, 2, 10)


def test_intent_refusals(chain: Chain, conv: ConversionClient) -> None:
    fund(chain, HOUR, {0: 1_000})
    signed = conv.sign_redemption(chain.members[0], chain.member(0), HOUR, 100, REF)
    with refused("BadIntentSignature"):
        conv.redeem(replace(signed, amount=300))
    with refused("BadIntentSignature"):
        conv.redeem(conv.sign_redemption(key(999), chain.member(0), HOUR, 100, REF))
    with refused("IntentExpired"):
        conv.redeem(conv.sign_redemption(chain.members[0], chain.member(0), HOUR, 100, REF, ttl=-1))
    conv.redeem(signed)
    with refused("BadNonce"):
        conv.redeem(signed)
    stranger = key(558)
    with refused("NotAMember"):
        conv.redeem(conv.sign_redemption(stranger, address_of(stranger), HOUR, 1, REF))
    with refused("ZeroAmount"):
        conv.redeem(conv.sign_redemption(chain.members[0], chain.member(0), HOUR, 0, REF))


def test_caps_are_set_by_governance_only(chain: Chain, conv: ConversionClient) -> None:
    stranger = ConversionClient(outsider(chain, key(4345)), conv.address)
    with refused("AccessControlUnauthorizedAccount"):
        stranger.set_caps(HOUR, 10**9, 10**9)
    gov = GovernanceClient.deploy_for(chain.client, conv)
    gov.set_rules(Rules(DAY, 0, 2, 5_000))
    call = gov.caps_call(conv, HOUR, 1_000, 2_000)
    pid = gov.propose(gov.sign_proposal(chain.members[0], chain.member(0), call, "raise the caps"))
    for who in (0, 1):
        gov.vote(gov.sign_vote(chain.members[who], chain.member(who), pid, True))
    devnet.advance_time(chain.w3, DAY + 1)
    gov.execute(pid, call)
    assert conv.caps(HOUR) == (1_000, 2_000)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 253_402_300_799))  # to 9999-12-31, as far as datetime goes
def test_the_contract_counts_calendar_months_as_python_does(conv_module: ConversionClient, ts: int) -> None:
    assert conv_module.call("monthOf", ts) == month_index(ts)
