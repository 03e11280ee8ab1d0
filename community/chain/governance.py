"""Governance: proposals, one-member-one-vote, delayed execution, fund preferences.

    Propose(address proposer,address target,bytes32 dataHash,bytes32 descriptionHash,
            uint64 nonce,uint64 deadline)
    Vote(address voter,uint256 proposal,bool support,uint64 nonce,uint64 deadline)
    Preferences(address member,uint256 packed,uint64 nonce,uint64 deadline)
    domain "Quartier Governance", version "1", chain id, the governance contract's address

A proposal is one call to a community contract; `*_call` helpers build the common ones
(reference rates, unit floors/ceilings/demurrage, per-account limits, conversion caps,
voting rules). Members sign with their key (`sign_proposal`, `sign_vote`,
`sign_preferences`) and the relayer submits (`propose`, `vote`, `set_preferences`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from coincurve import PrivateKey

from community.chain import fund
from community.chain.parts import Part, tx_hash
from quartier.hashing import keccak256, to_checksum_address

PROPOSE_TYPE = ("Propose(address proposer,address target,bytes32 dataHash,bytes32 descriptionHash,"
                "uint64 nonce,uint64 deadline)")
VOTE_TYPE = "Vote(address voter,uint256 proposal,bool support,uint64 nonce,uint64 deadline)"
PREFERENCES_TYPE = "Preferences(address member,uint256 packed,uint64 nonce,uint64 deadline)"
KWH_UNIT, HOUR_UNIT = "KWH", "HOUR"


@dataclass(frozen=True)
class Call:
    """What a proposal does: one call to a community contract."""

    target: str
    data: bytes


@dataclass(frozen=True)
class SignedProposal:
    proposer: str
    call: Call
    description: str
    nonce: int
    deadline: int
    signature: bytes


@dataclass(frozen=True)
class SignedVote:
    voter: str
    proposal: int
    support: bool
    nonce: int
    deadline: int
    signature: bytes


@dataclass(frozen=True)
class SignedPreferences:
    member: str
    shares: tuple[int, ...]
    nonce: int
    deadline: int
    signature: bytes


@dataclass(frozen=True)
class Rules:
    voting_period: int
    execution_delay: int
    quorum: int
    majority_bps: int


@dataclass(frozen=True)
class ProposalInfo:
    proposal: int
    proposer: str
    target: str
    created_at: int
    vote_end: int
    yes: int
    no: int
    executed: bool
    data_hash: bytes
    executable_at: int
    passed: bool


class GovernanceClient(Part):
    ARTIFACT = "Governance"
    DOMAIN_NAME = "Quartier Governance"
    LEDGER_ROLES = ("GOVERNOR_ROLE",)

    @classmethod
    def deploy_for(cls, client: Any, *targets: Part) -> GovernanceClient:
        """Deploys governance, allows the ledger and `targets` as proposal targets and gives
        it the governor role on each of them."""
        gov = cls.deploy(client)
        gov.set_target(client.ledger_address)
        for part in targets:
            gov.set_target(part.address)
            part.grant_role("GOVERNOR_ROLE", gov.address)
        return gov

    # -- rules and targets (the governor role: the admin at first, then passed proposals) --

    def rules(self) -> Rules:
        return Rules(int(self.call("votingPeriod")), int(self.call("executionDelay")), int(self.call("quorum")),
                     int(self.call("majorityBps")))

    def set_rules(self, rules: Rules) -> str:
        return tx_hash(self.send("setRules", rules.voting_period, rules.execution_delay, rules.quorum,
                                 rules.majority_bps))

    def set_target(self, target: str, allowed: bool = True) -> str:
        return tx_hash(self.send("setTarget", to_checksum_address(target), allowed))

    def add_destination(self, name: str) -> int:
        (ev,) = self.events(self.send("addDestination", name), "DestinationAdded")
        return int(ev["args"]["destination"])

    def destinations(self) -> list[str]:
        return [str(self.call("destinationName", i)) for i in range(int(self.call("destinationCount")))]

    # -- proposal calls --

    def call_data(self, contract: Any, fn: str, *args: Any) -> Call:
        """A call to `fn` of a web3 contract (the ledger, or a part's `.contract`)."""
        data = contract.encode_abi(fn, args=list(args))
        return Call(str(contract.address), bytes.fromhex(data.removeprefix("0x")))

    def rate_call(self, exchange: Part, base: int | str, quote: int | str, base_amount: int,
                  quote_amount: int) -> Call:
        u = self.client.unit_id
        return self.call_data(exchange.contract, "setRate", u(base), u(quote), base_amount, quote_amount)

    def unit_call(self, unit: int | str, floor: int, ceiling: int, rate_ppb_per_day: int) -> Call:
        """Default floor, ceiling and demurrage rate of a unit."""
        return self.call_data(self.client.ledger, "setUnit", self.client.unit_id(unit), floor, ceiling,
                              rate_ppb_per_day)

    def limits_call(self, unit: int | str, account: str, floor: int, ceiling: int) -> Call:
        return self.call_data(self.client.ledger, "setLimits", self.client.unit_id(unit),
                              to_checksum_address(account), floor, ceiling)

    def caps_call(self, conversion: Part, unit: int | str, member_monthly: int, global_monthly: int) -> Call:
        return self.call_data(conversion.contract, "setCaps", self.client.unit_id(unit), member_monthly,
                              global_monthly)

    def rules_call(self, rules: Rules) -> Call:
        return self.call_data(self.contract, "setRules", rules.voting_period, rules.execution_delay,
                              rules.quorum, rules.majority_bps)

    # -- proposals and votes (member intents) --

    def sign_proposal(self, key: PrivateKey, proposer: str, call: Call, description: str, *,
                      ttl: int = 3600, nonce: int | None = None) -> SignedProposal:
        proposer = to_checksum_address(proposer)
        nonce = self.nonce(proposer) if nonce is None else nonce
        deadline = self.deadline(ttl)
        sig = self.sign(key, PROPOSE_TYPE, (proposer, call.target, keccak256(call.data),
                                            keccak256(description.encode()), nonce, deadline))
        return SignedProposal(proposer, call, description, nonce, deadline, sig)

    def propose(self, p: SignedProposal) -> int:
        receipt = self.send("propose", p.proposer, to_checksum_address(p.call.target), p.call.data, p.description,
                            p.nonce, p.deadline, p.signature)
        (ev,) = self.events(receipt, "Proposed")
        return int(ev["args"]["proposal"])

    def sign_vote(self, key: PrivateKey, voter: str, proposal: int, support: bool, *, ttl: int = 3600,
                  nonce: int | None = None) -> SignedVote:
        voter = to_checksum_address(voter)
        nonce = self.nonce(voter) if nonce is None else nonce
        deadline = self.deadline(ttl)
        sig = self.sign(key, VOTE_TYPE, (voter, proposal, support, nonce, deadline))
        return SignedVote(voter, proposal, support, nonce, deadline, sig)

    def vote(self, v: SignedVote) -> str:
        return tx_hash(self.send("vote", v.voter, v.proposal, v.support, v.nonce, v.deadline, v.signature))

    def execute(self, proposal: int, call: Call) -> str:
        """Anyone may execute a passed proposal after voting and the delay."""
        return tx_hash(self.send("execute", proposal, call.data))

    def proposal(self, proposal: int) -> ProposalInfo:
        proposer, target, created, end, yes, no, executed, data_hash = self.call("proposals", proposal)
        if created == 0:
            self.call("passed", proposal)  # raises UnknownProposal
        delay = int(self.call("executionDelay"))
        return ProposalInfo(proposal, str(proposer), str(target), int(created), int(end), int(yes), int(no),
                            bool(executed), bytes(data_hash), int(end) + delay,
                            bool(self.call("passed", proposal)))

    def proposals(self) -> list[dict[str, Any]]:
        """Every proposal with its call and description, from the events (for the app)."""
        out = []
        for log in self.contract.events.Proposed().get_logs(from_block=0):
            a = log["args"]
            info = self.proposal(int(a["proposal"]))
            out.append({"info": info, "call": Call(str(a["target"]), bytes(a["data"])),
                        "description": str(a["description"])})
        return out

    def has_voted(self, proposal: int, voter: str) -> bool:
        return bool(self.call("hasVoted", proposal, to_checksum_address(voter)))

    # -- fund preferences --

    def sign_preferences(self, key: PrivateKey, member: str, shares: Sequence[int], *, ttl: int = 3600,
                         nonce: int | None = None) -> SignedPreferences:
        member = to_checksum_address(member)
        packed = fund.pack_preferences(shares)
        nonce = self.nonce(member) if nonce is None else nonce
        deadline = self.deadline(ttl)
        sig = self.sign(key, PREFERENCES_TYPE, (member, packed, nonce, deadline))
        return SignedPreferences(member, tuple(shares), nonce, deadline, sig)

    def set_preferences(self, p: SignedPreferences) -> str:
        return tx_hash(self.send("setPreferences", p.member, fund.pack_preferences(p.shares), p.nonce,
                                 p.deadline, p.signature))

    def preferences(self, member: str) -> list[int]:
        packed = int(self.call("preferences", to_checksum_address(member)))
        return fund.unpack_preferences(packed, int(self.call("destinationCount")))

    def all_preferences(self) -> dict[str, list[int]]:
        """Every member's current vector, from `PreferencesSet` and `PreferencesMoved` events."""
        n = int(self.call("destinationCount"))
        logs = [*self.contract.events.PreferencesSet().get_logs(from_block=0),
                *self.contract.events.PreferencesMoved().get_logs(from_block=0)]
        logs.sort(key=lambda lg: (lg["blockNumber"], lg["logIndex"]))
        out: dict[str, list[int]] = {}
        for log in logs:
            a = log["args"]
            if log["event"] == "PreferencesMoved":
                out.pop(str(a["from"]), None)
            else:
                out[str(a["member"])] = fund.unpack_preferences(int(a["packed"]), n)
        return out

    def contributions(self, rate: tuple[int, int]) -> dict[str, Fraction]:
        """Each account's contribution in Wh from the ledger's events: KWH credited by
        settlement plus HOUR received in payments valued at `rate` (HOUR base units, Wh)."""
        ledger = self.client.ledger
        kwh, hour = self.client.unit_id(KWH_UNIT), self.client.unit_id(HOUR_UNIT)
        credited: dict[str, int] = defaultdict(int)
        hours: dict[str, int] = defaultdict(int)
        for log in ledger.events.Settled().get_logs(from_block=0):
            a = log["args"]
            if int(a["unit"]) == kwh and int(a["amount"]) > 0:
                credited[str(a["account"])] += int(a["amount"])
        for log in ledger.events.Transferred().get_logs(from_block=0):
            a = log["args"]
            if int(a["unitAndAmount"]) >> 248 == hour:
                hours[str(a["to"])] += int(a["unitAndAmount"]) & (2**96 - 1)
        # A replaced account's contribution follows it to its new address.
        for log in sorted(ledger.events.AccountReplaced().get_logs(from_block=0),
                          key=lambda lg: (lg["blockNumber"], lg["logIndex"])):
            old, new = str(log["args"]["from"]), str(log["args"]["to"])
            credited[new] += credited.pop(old, 0)
            hours[new] += hours.pop(old, 0)
        return {m: fund.contribution_wh(credited.get(m, 0), hours.get(m, 0), rate)
                for m in set(credited) | set(hours)}

    def fund_allocation(self, rate: tuple[int, int]) -> dict[str, int]:
        """The fund's allocation now: destination name -> basis points."""
        names = self.destinations()
        shares = fund.fund_allocation(self.all_preferences(), self.contributions(rate), len(names))
        return dict(zip(names, shares, strict=True))
