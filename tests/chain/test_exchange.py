"""The exchange on both backends: reference rates, trades on a signed offer, every refusal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from community.chain import devnet
from community.chain.exchange import ExchangeClient, Offer
from tests.chain.conftest import HOUR, KWH, Chain, key
from tests.chain.parts_support import fund, outsider, refused

# 1.00 h (100 base units) = 100 kWh (100,000 Wh): one base unit of HOUR is 1,000 Wh.
RATE = (HOUR, KWH, 100, 100_000)


@pytest.fixture(scope="module")
def exchange_module(chain_module: Chain) -> ExchangeClient:
    ex = ExchangeClient.deploy(chain_module.client)
    ex.set_rate(*RATE)
    return ex


@pytest.fixture
def ex(exchange_module: ExchangeClient, chain: Chain) -> Iterator[ExchangeClient]:
    yield exchange_module


def signed_trade(chain: Chain, ex: ExchangeClient, maker: int, taker: int, give: int, amount: int,
                 want: int, **kw: int) -> tuple[Offer, bytes, str, int, bytes]:
    o = ex.offer(chain.member(maker), give, amount, want, **kw)
    deadline = ex.deadline(600)
    return (o, ex.sign_offer(chain.members[maker], o), chain.member(taker), deadline,
            ex.sign_take(chain.members[taker], chain.member(taker), o, deadline))


def test_a_trade_moves_both_legs_at_the_reference_rate(chain: Chain, ex: ExchangeClient) -> None:
    c = chain.client
    trade = ex.take(*signed_trade(chain, ex, 0, 1, KWH, 5_000, HOUR))
    assert trade.price == 5  # 5 kWh for 0.05 h
    assert c.balance(KWH, chain.member(0)) == -5_000 and c.balance(KWH, chain.member(1)) == 5_000
    assert c.balance(HOUR, chain.member(1)) == -5 and c.balance(HOUR, chain.member(0)) == 5
    assert ex.is_used(chain.member(0), trade.nonce) and trade.maker == chain.member(0)
    assert c.w3.eth.get_balance(chain.member(0)) == 0 == c.w3.eth.get_balance(chain.member(1))


def test_rates_go_both_ways_and_quote_refuses_inexact_prices(chain: Chain, ex: ExchangeClient) -> None:
    assert ex.rate(HOUR, KWH) == (100, 100_000) and ex.rate(KWH, HOUR) == (100_000, 100)
    assert ex.quote(HOUR, 3, KWH) == 3_000 and ex.quote(KWH, 2_000, HOUR) == 2
    with refused("InexactTrade"):
        ex.quote(KWH, 500, HOUR)
    ex.set_rate(HOUR, KWH, 0, 0)
    with refused("NoRate"):
        ex.quote(HOUR, 1, KWH)


def test_bad_rates_are_refused(chain: Chain, ex: ExchangeClient) -> None:
    with refused("BadRate"):
        ex.set_rate(HOUR, HOUR, 1, 1)
    with refused("BadRate"):
        ex.set_rate(HOUR, KWH, 0, 5)


def test_the_offer_digest_is_standard_eip712(chain: Chain, ex: ExchangeClient) -> None:
    o = ex.offer(chain.member(0), KWH, 1_000, HOUR)
    typed = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"},
                             {"name": "verifyingContract", "type": "address"}],
            "Offer": [{"name": "maker", "type": "address"}, {"name": "give", "type": "uint8"},
                      {"name": "amount", "type": "uint256"}, {"name": "want", "type": "uint8"},
                      {"name": "nonce", "type": "uint64"}, {"name": "deadline", "type": "uint64"}],
        },
        "primaryType": "Offer",
        "domain": {"name": "Quartier Exchange", "version": "1", "chainId": chain.client.chain_id,
                   "verifyingContract": ex.address},
        "message": {"maker": o.maker, "give": o.give, "amount": o.amount, "want": o.want, "nonce": o.nonce,
                    "deadline": o.deadline},
    }
    signed = Account.sign_message(encode_typed_data(full_message=typed), chain.members[0].secret)
    assert bytes(signed.message_hash) == ex.offer_digest(o) == bytes(ex.call("offerDigest", o.values()))


def test_a_leg_below_a_floor_refuses_the_whole_trade_with_the_amounts(chain: Chain, ex: ExchangeClient) -> None:
    c = chain.client
    with refused("BelowFloor") as exc:  # the maker's leg: KWH floor -50,000
        ex.take(*signed_trade(chain, ex, 0, 1, KWH, 60_000, HOUR))
    assert exc.value.args_by_name["floor"] == -50_000 and exc.value.args_by_name["balanceAfter"] == -60_000
    c.set_limits(HOUR, chain.member(1), 0, 5_000)
    with refused("BelowFloor") as exc:  # the taker's leg: HOUR floor 0
        ex.take(*signed_trade(chain, ex, 0, 1, KWH, 7_000, HOUR))
    got = exc.value.args_by_name
    assert (got["unit"], got["account"].lower(), got["floor"], got["balanceAfter"]) == (
        HOUR, chain.member(1).lower(), 0, -7)
    assert c.balance(KWH, chain.member(0)) == 0 == c.balance(KWH, chain.member(1))  # nothing moved


def test_a_leg_above_a_ceiling_is_refused_with_the_amounts(chain: Chain, ex: ExchangeClient) -> None:
    fund(chain, HOUR, {0: 4_998})
    with refused("AboveCeiling") as exc:  # the maker receives 5 h-cents on top of 49.98 h: ceiling 50 h
        ex.take(*signed_trade(chain, ex, 0, 1, KWH, 5_000, HOUR))
    assert exc.value.args_by_name["ceiling"] == 5_000 and exc.value.args_by_name["balanceAfter"] == 5_003


def test_an_offer_is_taken_once(chain: Chain, ex: ExchangeClient) -> None:
    args = signed_trade(chain, ex, 0, 1, KWH, 1_000, HOUR)
    ex.take(*args)
    with refused("OfferAlreadyUsed"):
        ex.take(*args)
    o = args[0]
    other_taker_deadline = ex.deadline(600)
    with refused("OfferAlreadyUsed"):
        ex.take(o, args[1], chain.member(2), other_taker_deadline,
                ex.sign_take(chain.members[2], chain.member(2), o, other_taker_deadline))


def test_a_cancelled_offer_cannot_be_taken(chain: Chain, ex: ExchangeClient) -> None:
    args = signed_trade(chain, ex, 0, 1, KWH, 1_000, HOUR)
    o = args[0]
    d = ex.deadline(600)
    with refused("BadIntentSignature"):  # only the maker cancels
        ex.cancel_offer(o.maker, o.nonce, d, ex.sign_cancel(chain.members[1], o.maker, o.nonce, d))
    ex.cancel_offer(o.maker, o.nonce, d, ex.sign_cancel(chain.members[0], o.maker, o.nonce, d))
    with refused("OfferAlreadyUsed"):
        ex.take(*args)
    with refused("OfferAlreadyUsed"):
        ex.cancel_offer(o.maker, o.nonce, d, ex.sign_cancel(chain.members[0], o.maker, o.nonce, d))


def test_forged_and_altered_intents_are_refused(chain: Chain, ex: ExchangeClient) -> None:
    o, msig, taker, td, tsig = signed_trade(chain, ex, 0, 1, KWH, 1_000, HOUR)
    with refused("BadIntentSignature"):  # the offer signed by someone else
        ex.take(o, ex.sign_offer(key(999), o), taker, td, tsig)
    with refused("BadIntentSignature"):  # a larger amount than the maker signed
        ex.take(replace(o, amount=2_000), msig, taker, td, tsig)
    with refused("BadIntentSignature"):  # the taker's consent forged
        ex.take(o, msig, taker, td, ex.sign_take(key(999), taker, o, td))
    with refused("BadIntentSignature"):  # consent to take a different offer
        other = replace(o, nonce=o.nonce + 1)
        ex.take(o, msig, taker, td, ex.sign_take(chain.members[1], taker, other, td))


def test_expired_offers_and_takes_are_refused(chain: Chain, ex: ExchangeClient) -> None:
    o, msig, taker, td, _ = signed_trade(chain, ex, 0, 1, KWH, 1_000, HOUR)
    now = chain.now()
    stale = ex.offer(chain.member(0), KWH, 1_000, HOUR, deadline=now - 1)
    with refused("IntentExpired"):
        ex.take(stale, ex.sign_offer(chain.members[0], stale), taker, td,
                ex.sign_take(chain.members[1], taker, stale, td))
    with refused("IntentExpired"):
        ex.take(o, msig, taker, now - 1, ex.sign_take(chain.members[1], taker, o, now - 1))
    devnet.advance_time(chain.w3, 8 * 86_400)  # past the offer's week
    with refused("IntentExpired"):
        ex.take(o, msig, taker, ex.deadline(600), ex.sign_take(chain.members[1], taker, o, ex.deadline(600)))


def test_self_trade_zero_amount_and_missing_rate_are_refused(chain: Chain, ex: ExchangeClient) -> None:
    with refused("SelfTrade"):
        ex.take(*signed_trade(chain, ex, 0, 0, KWH, 1_000, HOUR))
    with refused("ZeroAmount"):
        ex.take(*signed_trade(chain, ex, 0, 1, KWH, 0, HOUR))
    with refused("NoRate"):
        ex.take(*signed_trade(chain, ex, 0, 1, KWH, 1_000, KWH))
    with refused("InexactTrade"):
        ex.take(*signed_trade(chain, ex, 0, 1, KWH, 1_500, HOUR))


def test_paused_ledger_and_frozen_accounts_refuse_trades(chain: Chain, ex: ExchangeClient) -> None:
    c = chain.client
    c.freeze(chain.member(1), "investigation")
    with refused("AccountFrozen"):
        ex.take(*signed_trade(chain, ex, 0, 1, KWH, 1_000, HOUR))
    c.unfreeze(chain.member(1), "done")
    c.pause("incident")
    with refused("LedgerPaused"):
        ex.take(*signed_trade(chain, ex, 0, 1, KWH, 1_000, HOUR))


def test_unauthorised_callers_are_refused(chain: Chain, ex: ExchangeClient) -> None:
    other = outsider(chain, key(4343))
    stranger = ExchangeClient(other, ex.address)
    with refused("AccessControlUnauthorizedAccount"):
        stranger.set_rate(HOUR, KWH, 1, 1)
    with refused("AccessControlUnauthorizedAccount"):  # only operators move balances
        other.transact(other.ledger.functions.move(HOUR, chain.member(0), chain.member(1), 1))


def test_the_ledger_refuses_an_empty_move(chain: Chain, ex: ExchangeClient) -> None:
    c = chain.client
    c.grant_role("OPERATOR_ROLE", c.address)
    for args in ((HOUR, chain.member(0), chain.member(1), 0), (HOUR, chain.member(0), chain.member(0), 1)):
        with refused("NotMovable"):
            c.transact(c.ledger.functions.move(*args))
