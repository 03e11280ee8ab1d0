"""Governance on both backends: proposals, votes as intents, delayed execution, fund preferences."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from community.chain import devnet
from community.chain.exchange import ExchangeClient
from community.chain.fund import (
    FundError,
    contribution_wh,
    fund_allocation,
    pack_preferences,
    unpack_preferences,
)
from community.chain.governance import Call, GovernanceClient, Rules
from quartier.signing import address_of
from tests.chain.conftest import DAY, HOUR, KWH, Chain, key
from tests.chain.parts_support import outsider, refused

RULES = Rules(voting_period=DAY, execution_delay=3600, quorum=2, majority_bps=5_000)


@dataclass
class Gov:
    chain: Chain
    gov: GovernanceClient
    ex: ExchangeClient

    def propose(self, who: int, call: Call, text: str = "change") -> int:
        c = self.chain
        return self.gov.propose(self.gov.sign_proposal(c.members[who], c.member(who), call, text))

    def vote(self, who: int, proposal: int, support: bool) -> None:
        c = self.chain
        self.gov.vote(self.gov.sign_vote(c.members[who], c.member(who), proposal, support))

    def after_voting(self, proposal: int) -> None:
        info = self.gov.proposal(proposal)
        devnet.advance_time(self.chain.w3, info.executable_at - self.chain.now() + 1)


@pytest.fixture(scope="module")
def gov_module(chain_module: Chain) -> tuple[GovernanceClient, ExchangeClient]:
    ex = ExchangeClient.deploy(chain_module.client)
    ex.set_rate(HOUR, KWH, 100, 100_000)
    gov = GovernanceClient.deploy_for(chain_module.client, ex)
    gov.set_rules(RULES)
    for name in ("solar for the school", "repair café", "energy poverty"):
        gov.add_destination(name)
    return gov, ex


@pytest.fixture
def g(gov_module: tuple[GovernanceClient, ExchangeClient], chain: Chain) -> Iterator[Gov]:
    yield Gov(chain, *gov_module)


def test_a_passed_rate_change_is_executed_after_the_delay(g: Gov) -> None:
    call = g.gov.rate_call(g.ex, HOUR, KWH, 100, 120_000)
    pid = g.propose(0, call, "1 h = 120 kWh")
    for who, support in ((0, True), (1, True), (2, False)):
        g.vote(who, pid, support)
    info = g.gov.proposal(pid)
    assert (info.yes, info.no, info.passed, info.executed) == (2, 1, True, False)
    with refused("VotingOpen"):
        g.gov.execute(pid, call)
    devnet.advance_time(g.chain.w3, info.vote_end - g.chain.now() + 1)
    with refused("TooEarly"):
        g.gov.execute(pid, call)
    devnet.advance_time(g.chain.w3, RULES.execution_delay)
    g.gov.execute(pid, call)
    assert g.ex.rate(HOUR, KWH) == (100, 120_000)
    assert g.gov.proposal(pid).executed
    with refused("AlreadyExecuted"):
        g.gov.execute(pid, call)
    assert [p["description"] for p in g.gov.proposals()] == ["1 h = 120 kWh"]


def test_proposals_change_floors_demurrage_and_the_rules(g: Gov) -> None:
    unit = g.gov.unit_call(HOUR, -2_000, 8_000, 2_000_000)
    limits = g.gov.limits_call(HOUR, g.chain.member(3), -100, 100)
    rules = g.gov.rules_call(replace(RULES, quorum=3))
    pids = [g.propose(0, call) for call in (unit, limits, rules)]
    for pid in pids:
        g.vote(1, pid, True)
        g.vote(2, pid, True)
    g.after_voting(pids[-1])
    for pid, call in zip(pids, (unit, limits, rules), strict=True):
        g.gov.execute(pid, call)
    state = g.chain.client.unit_state(HOUR)
    assert (state["floor"], state["ceiling"], state["rate_ppb_per_day"]) == (-2_000, 8_000, 2_000_000)
    assert g.chain.client.limits(HOUR, g.chain.member(3)) == (-100, 100)
    assert g.gov.rules().quorum == 3


def test_quorum_and_majority_decide(g: Gov) -> None:
    call = g.gov.rate_call(g.ex, HOUR, KWH, 1, 1)
    lonely = g.propose(0, call)
    g.vote(0, lonely, True)  # one vote, quorum 2
    tied = g.propose(0, call)
    g.vote(0, tied, True)
    g.vote(1, tied, False)  # 50 % is not more than 50 %
    g.after_voting(tied)
    for pid, yes, no in ((lonely, 1, 0), (tied, 1, 1)):
        assert not g.gov.proposal(pid).passed
        with refused("NotPassed") as exc:
            g.gov.execute(pid, call)
        assert (exc.value.args_by_name["yes"], exc.value.args_by_name["no"]) == (yes, no)


def test_vote_refusals(g: Gov) -> None:
    c = g.chain
    pid = g.propose(0, g.gov.rate_call(g.ex, HOUR, KWH, 1, 1))
    v = g.gov.sign_vote(c.members[1], c.member(1), pid, True)
    g.gov.vote(v)
    with refused("BadNonce"):  # the same intent again
        g.gov.vote(v)
    with refused("AlreadyVoted"):
        g.vote(1, pid, False)
    with refused("BadIntentSignature"):  # the relayer cannot vote for a member
        g.gov.vote(replace(g.gov.sign_vote(key(999), c.member(2), pid, True)))
    forged = g.gov.sign_vote(c.members[2], c.member(2), pid, True)
    with refused("BadIntentSignature"):  # a yes turned into a no
        g.gov.vote(replace(forged, support=False))
    with refused("IntentExpired"):
        g.gov.vote(g.gov.sign_vote(c.members[2], c.member(2), pid, True, ttl=-1))
    stranger = key(555)
    with refused("NotEligible"):
        g.gov.vote(g.gov.sign_vote(stranger, address_of(stranger), pid, True))
    devnet.advance_time(c.w3, 10)
    c.client.register_member(address_of(stranger))  # joined after the proposal: cannot swing it
    with refused("NotEligible"):
        g.gov.vote(g.gov.sign_vote(stranger, address_of(stranger), pid, True))
    with refused("UnknownProposal"):
        g.vote(2, 99, True)
    devnet.advance_time(c.w3, RULES.voting_period + 1)
    with refused("VotingClosed"):
        g.vote(2, pid, True)


def test_proposal_refusals(g: Gov) -> None:
    c = g.chain
    call = g.gov.rate_call(g.ex, HOUR, KWH, 1, 1)
    stranger = key(556)
    with refused("NotAMember"):
        g.gov.propose(g.gov.sign_proposal(stranger, address_of(stranger), call, "x"))
    with refused("NotATarget"):
        g.propose(0, Call(c.member(3), b"\x12\x34"))
    signed = g.gov.sign_proposal(c.members[0], c.member(0), call, "honest text")
    with refused("BadIntentSignature"):  # description altered by the relayer
        g.gov.propose(replace(signed, description="other text"))
    with refused("UnknownProposal"):
        g.gov.proposal(42)


def test_execution_needs_the_voted_calldata_and_reports_a_failed_call(g: Gov) -> None:
    bad = g.gov.rate_call(g.ex, HOUR, HOUR, 1, 1)  # the exchange refuses it: BadRate
    pid = g.propose(0, bad)
    g.vote(0, pid, True)
    g.vote(1, pid, True)
    g.after_voting(pid)
    with refused("WrongCalldata"):
        g.gov.execute(pid, g.gov.rate_call(g.ex, HOUR, KWH, 1, 1))
    with refused("ExecutionFailed"):
        g.gov.execute(pid, bad)


def test_unauthorised_callers_are_refused(g: Gov) -> None:
    other = GovernanceClient(outsider(g.chain, key(4344)), g.gov.address)
    for call in (lambda: other.set_rules(RULES), lambda: other.set_target(g.chain.member(0)),
                 lambda: other.add_destination("mine"),
                 lambda: other.send("movePreferences", g.chain.member(0), g.chain.member(1))):
        with refused("AccessControlUnauthorizedAccount"):
            call()
    with refused("BadRules"):
        g.gov.set_rules(replace(RULES, quorum=0))
    with refused("BadRules"):
        g.gov.set_rules(replace(RULES, majority_bps=10_000))


def test_too_many_destinations_are_refused(g: Gov) -> None:
    for i in range(13):
        g.gov.add_destination(f"d{i}")
    with refused("TooManyDestinations"):
        g.gov.add_destination("one more")


def test_preferences_are_kept_on_chain_and_checked(g: Gov) -> None:
    c = g.chain
    g.gov.set_preferences(g.gov.sign_preferences(c.members[0], c.member(0), [5_000, 2_500, 2_500]))
    assert g.gov.preferences(c.member(0)) == [5_000, 2_500, 2_500]
    g.gov.set_preferences(g.gov.sign_preferences(c.members[0], c.member(0), [0, 0, 10_000]))  # revised
    assert g.gov.preferences(c.member(0)) == [0, 0, 10_000]
    signed = g.gov.sign_preferences(c.members[1], c.member(1), [10_000])
    with refused("BadIntentSignature"):  # a vector the member did not sign
        g.gov.set_preferences(replace(signed, shares=(9_000, 1_000)))
    bad_sum = g.gov.sign(c.members[1], "Preferences(address member,uint256 packed,uint64 nonce,uint64 deadline)",
                         (c.member(1), 9_999, g.gov.nonce(c.member(1)), g.gov.deadline(600)))
    with refused("BadPreferences"):
        g.gov.send("setPreferences", c.member(1), 9_999, g.gov.nonce(c.member(1)), g.gov.deadline(600), bad_sum)
    packed = 10_000 << (16 * 5)  # destination 5 does not exist
    sig = g.gov.sign(c.members[1], "Preferences(address member,uint256 packed,uint64 nonce,uint64 deadline)",
                     (c.member(1), packed, g.gov.nonce(c.member(1)), g.gov.deadline(600)))
    with refused("UnknownDestination"):
        g.gov.send("setPreferences", c.member(1), packed, g.gov.nonce(c.member(1)), g.gov.deadline(600), sig)
    stranger = key(557)
    with refused("NotAMember"):
        g.gov.set_preferences(g.gov.sign_preferences(stranger, address_of(stranger), [10_000]))


def test_the_fund_allocation_is_weighted_by_contribution(g: Gov) -> None:
    c = g.chain
    # Member 0 exports 3 kWh to member 1; member 2 provides 0.50 h to member 3.
    c.client.settle_batch(c.batch(c.day0, {0: (0, 3_000, 3_000), 1: (3_000, 0, -3_000)}))
    p = c.client.payment(c.member(3), c.member(2), "HOUR", 50)
    c.client.relay_payment(p, c.client.sign_payment(c.members[3], p))
    for who, shares in ((0, [10_000, 0, 0]), (2, [0, 10_000, 0]), (3, [0, 0, 10_000])):
        g.gov.set_preferences(g.gov.sign_preferences(c.members[who], c.member(who), shares))
    rate = g.ex.rate(HOUR, KWH)
    contributions = g.gov.contributions(rate)
    assert contributions[c.member(0)] == 3_000 and contributions[c.member(2)] == 50_000
    # 3 kWh against 50 kWh of hours; member 3 contributed nothing and weighs nothing.
    assert g.gov.fund_allocation(rate) == {"solar for the school": 566, "repair café": 9_434,
                                           "energy poverty": 0}


@given(st.lists(st.tuples(st.lists(st.integers(0, 10_000), min_size=3, max_size=3), st.integers(0, 10**9)),
                min_size=1, max_size=8))
def test_the_allocation_is_a_vector_of_basis_points_within_the_members_range(
        members: list[tuple[list[int], int]]) -> None:
    prefs, contribs = {}, {}
    for i, (raw, weight) in enumerate(members):
        total = sum(raw) or 1
        shares = [x * 10_000 // total for x in raw] if sum(raw) else [10_000, 0, 0]
        shares[0] += 10_000 - sum(shares)
        prefs[f"m{i}"], contribs[f"m{i}"] = shares, weight
        assert unpack_preferences(pack_preferences(shares), 3) == shares
    alloc = fund_allocation(prefs, contribs, 3)
    assert sum(alloc) == 10_000
    for d in range(3):
        assert min(v[d] for v in prefs.values()) - 1 <= alloc[d] <= max(v[d] for v in prefs.values()) + 1


def test_preference_vectors_are_checked_before_signing() -> None:
    with pytest.raises(FundError, match="summing to 10000"):
        pack_preferences([5_000, 4_999])
    with pytest.raises(FundError, match="at most 16"):
        pack_preferences([625] * 16 + [0])
    assert contribution_wh(1_000, 3, (100, 100_000)) == Fraction(4_000)
    assert fund_allocation({}, {}, 2) == [0, 0]
