"""Conversion out: members redeem balances to the fund within monthly caps.

    Redeem(address member,uint8 unit,uint256 amount,bytes32 payoutRef,uint64 nonce,uint64 deadline)
    domain "Quartier Conversion", version "1", chain id, the conversion contract's address

`payout_ref` is a 32-byte reference to the member's payment details kept off chain
(e.g. the hash of their encrypted IBAN record); each `Redeemed` event is a payment order
for the treasurer. Months are UTC calendar months, numbered year * 12 + month - 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from coincurve import PrivateKey

from community.chain.parts import Part, tx_hash
from quartier.hashing import to_checksum_address

REDEEM_TYPE = "Redeem(address member,uint8 unit,uint256 amount,bytes32 payoutRef,uint64 nonce,uint64 deadline)"
GLOBAL = "0x0000000000000000000000000000000000000000"


def month_index(ts: int) -> int:
    """The month of unix time `ts` (UTC) as the contract numbers it."""
    d = datetime.fromtimestamp(ts, UTC)
    return d.year * 12 + d.month - 1


@dataclass(frozen=True)
class SignedRedemption:
    member: str
    unit: int
    amount: int
    payout_ref: bytes
    nonce: int
    deadline: int
    signature: bytes


@dataclass(frozen=True)
class Redemption:
    tx_hash: str
    block: int
    member: str
    unit: int
    amount: int
    month: int
    payout_ref: bytes
    nonce: int


class ConversionClient(Part):
    ARTIFACT = "Conversion"
    DOMAIN_NAME = "Quartier Conversion"
    LEDGER_ROLES = ("OPERATOR_ROLE",)

    def set_caps(self, unit: int | str, member_monthly: int, global_monthly: int) -> str:
        return tx_hash(self.send("setCaps", self.client.unit_id(unit), member_monthly, global_monthly))

    def caps(self, unit: int | str) -> tuple[int, int]:
        """(per member per month, whole community per month), base units."""
        m, g = self.call("capsOf", self.client.unit_id(unit))
        return int(m), int(g)

    def redeemed(self, unit: int | str, member: str | None, month: int) -> int:
        """What `member` (None: everyone) redeemed in `month`."""
        who = to_checksum_address(member) if member else GLOBAL
        return int(self.call("redeemed", self.client.unit_id(unit), month, who))

    def remaining(self, unit: int | str, member: str, now: int | None = None) -> int:
        """How much `member` may still redeem this month, under both caps."""
        month = month_index(now if now is not None else self.deadline(0))
        member_cap, global_cap = self.caps(unit)
        return max(0, min(member_cap - self.redeemed(unit, member, month),
                          global_cap - self.redeemed(unit, None, month)))

    def sign_redemption(self, key: PrivateKey, member: str, unit: int | str, amount: int,
                        payout_ref: bytes, *, ttl: int = 3600, nonce: int | None = None) -> SignedRedemption:
        member = to_checksum_address(member)
        unit_id = self.client.unit_id(unit)
        nonce = self.nonce(member) if nonce is None else nonce
        deadline = self.deadline(ttl)
        sig = self.sign(key, REDEEM_TYPE, (member, unit_id, amount, payout_ref, nonce, deadline))
        return SignedRedemption(member, unit_id, amount, payout_ref, nonce, deadline, sig)

    def redeem(self, r: SignedRedemption) -> Redemption:
        receipt = self.send("redeem", r.member, r.unit, r.amount, r.payout_ref, r.nonce, r.deadline, r.signature)
        (ev,) = self.events(receipt, "Redeemed")
        return _redemption(ev)

    def redemptions(self, from_block: int = 0) -> list[Redemption]:
        """Every redemption since `from_block`: the treasurer's payment orders."""
        return [_redemption(ev) for ev in self.contract.events.Redeemed().get_logs(from_block=from_block)]


def _redemption(ev: Any) -> Redemption:
    a = ev["args"]
    return Redemption("0x" + bytes(ev["transactionHash"]).hex(), int(ev["blockNumber"]), str(a["member"]),
                      int(a["unit"]), int(a["amount"]), int(a["month"]), bytes(a["payoutRef"]), int(a["nonce"]))
