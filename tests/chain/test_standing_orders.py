"""Standing donation orders on both backends: members sign them, settlement executes them
inside the period's batch, and the ledger refuses any donation the donor did not order or
its claimed export does not cover."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.logs import DISCARD

from community.chain import devnet
from community.chain.client import ChainClient, LedgerRevert
from community.chain.intents import Donation, Entry, build_batch
from community.chain.orders import StandingOrdersClient
from quartier.signing import address_of
from tests.chain.conftest import DAY, HOUR, KWH, Chain, key


def refused(name: str) -> pytest.RaisesExc:  # type: ignore[name-defined]
    return pytest.raises(LedgerRevert, match=rf"refused: {name}\(")


@pytest.fixture
def orders(chain: Chain) -> StandingOrdersClient:
    return StandingOrdersClient.deploy_for(chain.client)


def order(chain: Chain, orders: StandingOrdersClient, donor: int, beneficiary: int, *, wh: int = 0,
          share_bp: int = 0) -> int:
    intent = orders.sign_set(chain.members[donor], chain.member(donor), chain.member(beneficiary), wh=wh,
                             share_bp=share_bp)
    return orders.set(intent)


# member 0 exports 1 000 Wh (all credited), members 1 and 2 import 600 and 400
FLOWS = {0: (0, 1_000, 1_000), 1: (600, 0, -600), 2: (400, 0, -400)}


def test_a_share_and_a_fixed_order_are_executed_in_the_batch(chain: Chain, orders: StandingOrdersClient) -> None:
    c = chain.client
    share = order(chain, orders, 0, 1, share_bp=2_500)
    fixed = order(chain, orders, 0, 2, wh=100)
    donations = [Donation(fixed, chain.member(0), 100), Donation(share, chain.member(0), 250)]
    tx = c.settle_batch(chain.batch(chain.day0, FLOWS, donations=donations))
    assert [c.balance(KWH, chain.member(i)) for i in range(3)] == [650, -350, -300]
    receipt = c.w3.eth.get_transaction_receipt(tx)
    events = c.ledger.events.Donated().process_receipt(receipt, errors=DISCARD)
    assert sorted((int(e["args"]["order"]), e["args"]["beneficiary"], int(e["args"]["unitAndAmount"]) & (2**96 - 1))
                  for e in events) == [(share, chain.member(1), 250), (fixed, chain.member(2), 100)]
    assert all(int(e["args"]["periodId"]) == chain.day0 for e in events)


def test_orders_are_signed_by_the_donor_and_cannot_be_replayed(chain: Chain, orders: StandingOrdersClient) -> None:
    intent = orders.sign_set(chain.members[0], chain.member(0), chain.member(1), wh=100)
    first = orders.set(intent)
    with refused("BadNonce"):
        orders.set(intent)
    forged = orders.sign_set(key(666), chain.member(0), chain.member(1), wh=100_000)
    with refused("BadIntentSignature"):
        orders.set(forged)
    unsigned = replace(forged, signature=b"")  # the relayer is not the donor
    with refused("BadIntentSignature"):
        orders.set(unsigned)
    assert [o.id for o in orders.active()] == [first]


def test_malformed_orders_are_refused(chain: Chain, orders: StandingOrdersClient) -> None:
    m = chain.members[0]
    with refused("BadOrder"):
        orders.set(orders.sign_set(m, chain.member(0), chain.member(1)))
    with refused("BadOrder"):
        orders.set(orders.sign_set(m, chain.member(0), chain.member(1), wh=10, share_bp=10))
    with refused("BadOrder"):
        orders.set(orders.sign_set(m, chain.member(0), chain.member(1), share_bp=10_001))
    with refused("SelfDonation"):
        orders.set(orders.sign_set(m, chain.member(0), chain.member(0), wh=10))
    stranger = key(4242)
    with refused("NotAMember"):
        orders.set(orders.sign_set(m, chain.member(0), address_of(stranger), wh=10))
    order(chain, orders, 0, 1, share_bp=6_000)
    with refused("SharesAbove100"):
        order(chain, orders, 0, 2, share_bp=4_001)
    order(chain, orders, 0, 2, share_bp=4_000)
    assert int(orders.call("sharedBpOf", chain.member(0))) == 10_000


def test_a_cancelled_order_gives_nothing(chain: Chain, orders: StandingOrdersClient) -> None:
    oid = order(chain, orders, 0, 1, wh=100)
    with refused("UnknownOrder"):  # only the donor cancels
        orders.cancel(orders.sign_cancel(chain.members[1], chain.member(1), oid))
    orders.cancel(orders.sign_cancel(chain.members[0], chain.member(0), oid))
    assert orders.active() == [] and not orders.order(oid).active
    with refused("OrderNotActive"):
        orders.cancel(orders.sign_cancel(chain.members[0], chain.member(0), oid))
    with refused("OrderNotActive"):
        chain.client.settle_batch(chain.batch(chain.day0, FLOWS, donations=[Donation(oid, chain.member(0), 50)]))
    with refused("UnknownOrder"):
        chain.client.settle_batch(chain.batch(chain.day0, FLOWS, donations=[Donation(99, chain.member(0), 50)]))
    assert not chain.client.is_settled(chain.day0)


def test_a_donation_above_its_order_is_refused(chain: Chain, orders: StandingOrdersClient) -> None:
    fixed = order(chain, orders, 0, 1, wh=100)
    share = order(chain, orders, 0, 2, share_bp=1_000)  # 10 % of 1 000 Wh claimed
    with pytest.raises(LedgerRevert) as err:
        chain.client.settle_batch(chain.batch(chain.day0, FLOWS, donations=[Donation(fixed, chain.member(0), 101)]))
    assert err.value.name == "DonationAboveOrder" and err.value.args_by_name["allowed"] == 100
    with pytest.raises(LedgerRevert) as err:
        chain.client.settle_batch(chain.batch(chain.day0, FLOWS, donations=[Donation(share, chain.member(0), 101)]))
    assert err.value.name == "DonationAboveOrder" and err.value.args_by_name["allowed"] == 100
    chain.client.settle_batch(chain.batch(chain.day0, FLOWS, donations=[Donation(share, chain.member(0), 100)]))
    assert chain.client.balance(KWH, chain.member(2)) == -300


def test_a_donor_never_gives_more_than_its_claimed_export(chain: Chain, orders: StandingOrdersClient) -> None:
    a = order(chain, orders, 0, 1, wh=700)
    b = order(chain, orders, 0, 2, wh=400)
    with pytest.raises(LedgerRevert) as err:
        chain.client.settle_batch(chain.batch(chain.day0, FLOWS, donations=[
            Donation(a, chain.member(0), 700), Donation(b, chain.member(0), 301)]))
    assert err.value.name == "DonationAboveExport"
    assert err.value.args_by_name["given"] == 1_001 and err.value.args_by_name["claimedExportWh"] == 1_000


def test_donations_must_name_their_donors_claims_in_order(chain: Chain, orders: StandingOrdersClient) -> None:
    c = chain.client
    a = order(chain, orders, 0, 1, wh=100)
    b = order(chain, orders, 0, 2, wh=100)
    good = chain.batch(chain.day0, FLOWS, donations=[Donation(a, chain.member(0), 10), Donation(b, chain.member(0), 10)])
    (da, db) = good.donations
    with refused("DonationsNotSorted"):
        c.settle_batch(replace(good, donations=(db, da)))
    with refused("DonationsNotSorted"):
        c.settle_batch(replace(good, donations=(da, da)))
    other = next(i for i, cl in enumerate(good.claims) if cl[0] != chain.gateway(0))
    with refused("DonationMismatch"):  # claims of another member: its export is not the donor's
        c.settle_batch(replace(good, donations=((a, other, 10),)))
    with refused("DonationWithoutClaims"):
        c.settle_batch(replace(good, donations=((a, len(good.claims), 10),)))
    c.settle_batch(good)
    assert c.balance(KWH, chain.member(0)) == 980


def test_a_donor_with_two_gateways_is_covered_from_the_first(chain: Chain, orders: StandingOrdersClient) -> None:
    c = chain.client
    extra_gw = key(2100)
    c.register_meter_point("PRM-0b", chain.member(0))
    c.register_gateway(address_of(extra_gw), chain.member(0), "PRM-0b", active_from=1)
    p = chain.day0
    claims = [chain.claim(0, p, 0, 600), chain.claim(1, p, 1_000, 0),
              chain.claim(0, p, 0, 400, signer=extra_gw, gateway=address_of(extra_gw))]
    oid = order(chain, orders, 0, 1, share_bp=5_000)
    entries = [Entry(chain.member(0), KWH, 1_000), Entry(chain.member(1), KWH, -1_000)]
    members_of = {chain.gateway(0): chain.member(0), chain.gateway(1): chain.member(1),
                  address_of(extra_gw): chain.member(0)}
    batch = build_batch(b"\x99" * 32, claims, entries, members_of, period_id=p, period_end=p + DAY,
                        donations=[Donation(oid, chain.member(0), 500)])
    gws = [cl[0] for cl in batch.claims]
    first = batch.donations[0][1]
    assert gws[first] in (chain.gateway(0), address_of(extra_gw)) and gws[first + 1] in (chain.gateway(0), address_of(extra_gw))
    with refused("DonationWithoutClaims"):  # the second claim of the run is not a start
        c.settle_batch(replace(batch, donations=((oid, first + 1, 500),)))
    c.settle_batch(batch)  # 50 % of 600 + 400 claimed
    assert c.balance(KWH, chain.member(1)) == -500


def test_donations_follow_the_ledgers_rules(chain: Chain, orders: StandingOrdersClient) -> None:
    c = chain.client
    oid = order(chain, orders, 0, 1, wh=1_000)
    c.freeze(chain.member(1), "dispute")
    with refused("AccountFrozen"):
        c.settle_batch(chain.batch(chain.day0, {0: (0, 1_000, 1_000), 2: (1_000, 0, -1_000)},
                                   donations=[Donation(oid, chain.member(0), 1_000)]))
    c.unfreeze(chain.member(1), "settled")
    # Member 0 already owes 49 500 Wh (floor -50 000): giving 1 000 more would breach it.
    c.settle_batch(chain.batch(chain.day0 - DAY, {0: (49_500, 0, -49_500), 2: (0, 49_500, 49_500)}))
    with pytest.raises(LedgerRevert) as err:
        c.settle_batch(chain.batch(chain.day0, {0: (0, 1_000, 0), 2: (0, 0, 0)},
                                   donations=[Donation(oid, chain.member(0), 1_000)]))
    assert err.value.name == "BelowFloor"


def test_without_an_orders_contract_no_donation_settles(chain: Chain) -> None:
    with refused("NoStandingOrders"):
        chain.client.settle_batch(chain.batch(chain.day0, FLOWS, donations=[Donation(1, chain.member(0), 1)]))


def test_a_donor_with_gas_sets_an_order_itself_and_outsiders_cannot_rewire(
        chain: Chain, orders: StandingOrdersClient) -> None:
    c = chain.client
    c.send_value(chain.member(0), 10**18)
    own = StandingOrdersClient(ChainClient(w3=c.w3, key=chain.members[0], ledger=c.ledger_address),
                               orders.address)
    oid = own.set(replace(own.sign_set(chain.members[0], chain.member(0), chain.member(1), wh=5),
                          signature=b""))  # no intent: the donor's own transaction is its consent
    assert orders.order(oid).donor == chain.member(0)
    outsider = ChainClient(w3=c.w3, key=chain.members[0], ledger=c.ledger_address)
    with refused("AccessControlUnauthorizedAccount"):
        outsider.transact(outsider._fn("setStandingOrders", chain.member(0)))
    with refused("NotRecovery"):
        own.send("migrate", chain.member(0), chain.member(1))
    assert c.call("standingOrders") == orders.address


def test_replaced_keys_keep_their_orders(chain: Chain, orders: StandingOrdersClient) -> None:
    c = chain.client
    oid = order(chain, orders, 0, 1, share_bp=3_000)
    new = key(5000)
    c.grant_role("RECOVERY_ROLE", c.address)
    orders.send("migrate", chain.member(0), address_of(new))
    o = orders.order(oid)
    assert o.donor == address_of(new) and o.beneficiary == chain.member(1)
    assert int(orders.call("sharedBpOf", address_of(new))) == 3_000
    with refused("UnknownOrder"):  # the old key no longer answers for it
        orders.cancel(orders.sign_cancel(chain.members[0], chain.member(0), oid))
    orders.cancel(orders.sign_cancel(new, address_of(new), oid))
    assert int(orders.call("sharedBpOf", address_of(new))) == 0


def test_hours_entries_and_donations_share_a_batch(chain: Chain, orders: StandingOrdersClient) -> None:
    c = chain.client
    oid = order(chain, orders, 0, 2, wh=200)
    hours = [Entry(chain.member(1), HOUR, 100), Entry(chain.member(3), HOUR, -100)]
    c.settle_batch(chain.batch(chain.day0, FLOWS, extra=hours, donations=[Donation(oid, chain.member(0), 200)]))
    assert c.balance(KWH, chain.member(2)) == -200 and c.balance(HOUR, chain.member(1)) == 100



periods = st.lists(st.tuples(st.integers(0, 2_000), st.integers(0, 800), st.integers(0, 800),
                             st.integers(1, 700), st.integers(1, 700)), min_size=1, max_size=5)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(periods, st.integers(1, 1_000), st.integers(1, 10_000))
def test_random_donations_match_the_model_and_keep_the_unit_at_zero(  # type: ignore[no-untyped-def]
        chain: Chain, sequence, fixed_wh: int, share_bp: int) -> None:
    c = chain.client
    snap = devnet.snapshot(c.w3)
    try:
        orders = StandingOrdersClient.deploy_for(c)
        fixed = order(chain, orders, 0, 1, wh=fixed_wh)
        share = order(chain, orders, 0, 2, share_bp=share_bp)
        fund = c.address
        model = {chain.member(i): 0 for i in range(3)} | {fund: 0}
        for n, (exported, i1, i2, d1, d2) in enumerate(sequence):
            p = chain.day0 - n * DAY
            flows = {0: (0, exported, exported), 1: (i1, 0, -i1), 2: (i2, 0, -i2)}
            grid = Entry(fund, KWH, i1 + i2 - exported)
            batch = chain.batch(p, flows, extra=[grid] if grid.amount else [],
                                donations=[Donation(fixed, chain.member(0), d1), Donation(share, chain.member(0), d2)])
            expected = None
            gifts = 0
            for wh, allowed in ((d1, fixed_wh), (d2, exported * share_bp // 10_000)):
                if wh > allowed:
                    expected = "DonationAboveOrder"
                    break
                gifts += wh
                if gifts > exported:
                    expected = "DonationAboveExport"
                    break
            if expected is not None:
                with refused(expected):
                    c.settle_batch(batch)
                continue
            c.settle_batch(batch)
            model[chain.member(0)] += exported - d1 - d2
            model[chain.member(1)] += d1 - i1
            model[chain.member(2)] += d2 - i2
            model[fund] += grid.amount
        assert {a: c.balance(KWH, a) for a in model} == model
        assert sum(model.values()) == 0
    finally:
        devnet.revert(c.w3, snap)
