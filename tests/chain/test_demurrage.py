"""Demurrage rounding: the pure model exhaustively, and random operation sequences on the
contract, which must match the model to the base unit and keep every unit zero-sum."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from community.chain import devnet
from community.chain.client import LedgerRevert
from community.chain.demurrage import DENOMINATOR, AccountState, charge, touch
from community.chain.intents import Entry
from tests.chain.conftest import DAY, HOUR, Chain

balances = st.integers(min_value=-(2**95), max_value=2**95 - 1)
rates = st.integers(min_value=0, max_value=2**32 - 1)
elapsed = st.integers(min_value=0, max_value=2**40 - 1)


@given(balances, rates, elapsed, st.integers(min_value=0, max_value=DENOMINATOR - 1))
def test_charge_rounds_down_and_never_exceeds_the_balance(b: int, r: int, t: int, dust: int) -> None:
    c = charge(b, r, t, dust)
    if b <= 0 or r == 0:
        assert c.amount == 0 and c.dust == dust
        return
    assert 0 <= c.amount <= b and 0 <= c.dust < DENOMINATOR
    if c.amount < b:  # exact: what was charged plus the dust carried is the whole due amount
        assert c.amount * DENOMINATOR + c.dust == b * r * t + dust


@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=1, max_value=10**5),
       st.lists(st.integers(min_value=0, max_value=40 * DAY), min_size=1, max_size=30))
def test_touching_often_charges_exactly_what_one_touch_would(balance: int, rate: int, gaps: list[int]) -> None:
    """For a constant balance (demurrage sent elsewhere and the balance topped back up), the
    sum of the charges over any touch schedule equals one charge over the whole time."""
    state, total, now = AccountState(balance, 0, 0), 0, 0
    for gap in gaps:
        now += gap
        state, c = touch(state, rate, now)
        total += c
        state = AccountState(balance, state.touched_at, state.dust)
    # rate <= 0.01 %/day over <= 1200 days: never the whole balance, so no cap applies.
    assert total == charge(balance, rate, now, 0).amount


def test_charge_at_the_extremes() -> None:
    assert charge(2**95 - 1, 2**32 - 1, 2**40 - 1, DENOMINATOR - 1).amount == 2**95 - 1
    assert charge(1, 1, 1, 0).amount == 0
    assert charge(1, 10**9, DAY, 0).amount == 1  # 100 % a day on 1 unit: all of it
    assert charge(10**9, 1, DAY - 1, 0).amount == 0  # just under one unit due: rounds down
    assert charge(10**9, 1, DAY, 0).amount == 1


ops = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 400), st.integers(0, 20 * DAY)),
    min_size=1, max_size=8)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_random_payment_sequences_match_the_model_and_stay_zero_sum(chain: Chain, sequence) -> None:  # type: ignore[no-untyped-def]
    c = chain.client
    w3 = c.w3
    snap = devnet.snapshot(w3)
    try:
        fund = c.address
        c.set_limits(HOUR, fund, -10**9, 10**9)
        start = {0: 1_500, 1: 900, 2: 3_000, 3: 10}
        entries = [Entry(chain.member(i), HOUR, a) for i, a in start.items()]
        entries.append(Entry(fund, HOUR, -sum(start.values())))
        c.settle_batch(chain.batch(chain.day0 - 7 * DAY, {}, extra=entries))
        accounts = [chain.member(i) for i in range(4)]
        model = {a: c.account_state(HOUR, a) for a in accounts}
        state = {a: AccountState(model[a].balance, model[a].touched_at, model[a].dust) for a in accounts}
        fund_balance = c.balance(HOUR, fund)
        owed = dict.fromkeys(accounts, 0)
        rate = int(c.unit_state(HOUR)["rate_ppb_per_day"])
        for payer, payee, amount, wait in sequence:
            if payer == payee:
                continue
            if wait:
                devnet.advance_time(w3, wait)
            p = c.payment(accounts[payer], accounts[payee], "HOUR", amount)
            try:
                tx = c.relay_payment(p, c.sign_payment(chain.members[payer], p))
            except LedgerRevert as exc:
                assert exc.name in ("BelowFloor", "AboveCeiling")
                continue
            now = int(w3.eth.get_block(w3.eth.get_transaction_receipt(tx)["blockNumber"])["timestamp"])
            a, b = accounts[payer], accounts[payee]
            state[a], c1 = touch(state[a], rate, now)
            state[b], c2 = touch(state[b], rate, now)
            state[a] = AccountState(state[a].balance - amount, now, state[a].dust)
            state[b] = AccountState(state[b].balance + amount, now, state[b].dust)
            owed[a] += c1
            owed[b] += c2
        for a in accounts:
            onchain = c.account_state(HOUR, a)
            assert (onchain.balance, onchain.touched_at, onchain.dust, onchain.owed) == (
                state[a].balance, state[a].touched_at, state[a].dust, owed[a])
        assert c.balance(HOUR, fund) == fund_balance
        stored = sum(c.account_state(HOUR, a).balance + c.account_state(HOUR, a).owed
                     for a in [*accounts, fund])
        assert stored + c.unit_state(HOUR)["pending"] == 0
        c.collect(HOUR, accounts)
        assert c.balance(HOUR, fund) == fund_balance + sum(owed.values())
    finally:
        devnet.revert(w3, snap)


def test_demurrage_never_pushes_below_the_floor_or_blocks_a_refund(chain: Chain) -> None:
    """A balance decays to zero at most, and a balance above a lowered ceiling may still pay."""
    c = chain.client
    c.set_limits(HOUR, c.address, -10**9, 10**9)
    c.settle_batch(chain.batch(chain.day0, {}, extra=[Entry(chain.member(0), HOUR, 4_000),
                                                      Entry(c.address, HOUR, -4_000)]))
    c.set_unit(HOUR, -1_000, 1_000, 1_000_000)
    p = c.payment(chain.member(0), chain.member(1), "HOUR", 500)
    c.relay_payment(p, c.sign_payment(chain.members[0], p))
    with pytest.raises(LedgerRevert):
        q = c.payment(chain.member(2), chain.member(0), "HOUR", 1)
        c.relay_payment(q, c.sign_payment(chain.members[2], q))
    c.set_unit(HOUR, -1_000, 5_000, 10**9)  # 100 % a day
    devnet.advance_time(c.w3, 3 * DAY)
    assert c.balance(HOUR, chain.member(0)) == 0
