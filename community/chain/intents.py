"""EIP-712 member intents and settlement calldata, as the ledger contract checks them.

The payment domain names the ledger (chain id and contract address), unlike the gateway
claim's chain-agnostic domain: a member's intent is only ever valid on its community's
ledger.

    EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
        name "Quartier Ledger", version "1"
    Payment(address from,address to,uint8 unit,uint256 amount,uint64 nonce,uint64 deadline,
            bytes32 memoHash)

`memoHash` is keccak256 of the memo's ciphertext, or 32 zero bytes without a memo.
Signatures go on chain in EIP-2098 compact form (r, yParity << 255 | s).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from coincurve import PrivateKey

from quartier.claim import PeriodClaim
from quartier.hashing import keccak256, to_checksum_address
from quartier.merkle import abi_word
from quartier.signing import sign_hash

LEDGER_NAME = "Quartier Ledger"
LEDGER_VERSION = "1"
DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
PAYMENT_TYPE = (
    b"Payment(address from,address to,uint8 unit,uint256 amount,uint64 nonce,uint64 deadline,"
    b"bytes32 memoHash)"
)
PAYMENT_TYPEHASH = keccak256(PAYMENT_TYPE)
ZERO32 = b"\x00" * 32


class IntentError(ValueError):
    """An intent or a signature that cannot be encoded for the ledger."""


def ledger_domain_separator(chain_id: int, ledger: str) -> bytes:
    return keccak256(
        keccak256(DOMAIN_TYPE) + keccak256(LEDGER_NAME.encode()) + keccak256(LEDGER_VERSION.encode())
        + abi_word(chain_id) + abi_word(bytes.fromhex(to_checksum_address(ledger)[2:]))
    )


def memo_hash(ciphertext: bytes) -> bytes:
    return keccak256(ciphertext) if ciphertext else ZERO32


@dataclass(frozen=True, slots=True)
class Payment:
    """A member's signed order to pay `amount` base units of `unit` to `to`."""

    sender: str
    to: str
    unit: int
    amount: int
    nonce: int
    deadline: int
    memo: bytes = b""  # ciphertext only: the ledger never sees a memo in clear

    def __post_init__(self) -> None:
        object.__setattr__(self, "sender", to_checksum_address(self.sender))
        object.__setattr__(self, "to", to_checksum_address(self.to))
        if not 0 < self.amount < 2**96:
            raise IntentError(f"payment amount {self.amount} is not in 1..2**96-1")
        if not 0 <= self.unit < 256:
            raise IntentError(f"unit {self.unit} is not a uint8")

    def struct_hash(self) -> bytes:
        return keccak256(
            PAYMENT_TYPEHASH
            + abi_word(bytes.fromhex(self.sender[2:]))
            + abi_word(bytes.fromhex(self.to[2:]))
            + abi_word(self.unit) + abi_word(self.amount) + abi_word(self.nonce)
            + abi_word(self.deadline) + memo_hash(self.memo)
        )

    def digest(self, chain_id: int, ledger: str) -> bytes:
        return keccak256(b"\x19\x01" + ledger_domain_separator(chain_id, ledger) + self.struct_hash())

    def sign(self, key: PrivateKey, chain_id: int, ledger: str) -> bytes:
        return sign_hash(key, self.digest(chain_id, ledger))


def compact_signature(signature: bytes) -> tuple[bytes, bytes]:
    """65-byte r || s || v (v 27/28 or 0/1) to EIP-2098 (r, vs)."""
    if len(signature) != 65:
        raise IntentError(f"a signature is 65 bytes (r, s, v), got {len(signature)}")
    v = signature[64]
    v = v - 27 if v >= 27 else v
    if v not in (0, 1):
        raise IntentError(f"signature v must be 27 or 28, got {signature[64]}")
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32], ((v << 255) | s).to_bytes(32, "big")


ClaimTuple = tuple[str, int, int, int, int, int, bytes, bytes, bytes]
EntryTuple = tuple[str, int, int]
DonationTuple = tuple[int, int, int]  # (order, index of the donor's first claim, wh)


@dataclass(frozen=True, slots=True)
class Entry:
    """A net balance change of one account in one unit for a settlement batch."""

    account: str
    unit: int
    amount: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "account", to_checksum_address(self.account))
        if not -(2**95) <= self.amount < 2**95:
            raise IntentError(f"entry amount {self.amount} for {self.account} does not fit int96")


@dataclass(frozen=True, slots=True)
class Donation:
    """A standing order executed in a batch: `wh` from its donor (an account address)."""

    order: int
    donor: str
    wh: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "donor", to_checksum_address(self.donor))
        if not 0 < self.wh < 2**96:
            raise IntentError(f"donation of order {self.order}: {self.wh} Wh is not a positive uint96")


@dataclass(frozen=True, slots=True)
class Batch:
    """A period's settlement as the contract takes it: entries sorted by (unit, account),
    claims grouped by member in the same order and by gateway within a member."""

    period_id: int
    period_end: int
    intervals_root: bytes
    claims: tuple[ClaimTuple, ...]
    entries: tuple[EntryTuple, ...]
    donations: tuple[DonationTuple, ...] = ()


def build_batch(
    intervals_root: bytes,
    claims: Sequence[tuple[PeriodClaim, bytes]],
    entries: Sequence[Entry],
    members_of: dict[str, str],
    *,
    metered_unit: int = 0,
    period_id: int | None = None,
    period_end: int | None = None,
    donations: Sequence[Donation] = (),
) -> Batch:
    """Orders entries and claims the way `settle` matches them in one pass, and the
    donations by (donor, order), each pointing at its donor's first claim.

    `members_of` maps each claim's gateway to its member. Every claim must share the
    batch's period. A member with claims but no entry in the metered unit gets a zero
    entry there, since the contract refuses a claim that matches no entry.
    """
    if len(intervals_root) != 32:
        raise IntentError("intervals_root must be 32 bytes")
    starts = {c.period_start for c, _ in claims}
    ends = {c.period_end for c, _ in claims}
    if period_id is None:
        if len(starts) != 1:
            raise IntentError("give period_id: the claims do not name one period")
        period_id = starts.pop()
    if period_end is None:
        if len(ends) != 1:
            raise IntentError("give period_end: the claims do not name one period end")
        period_end = ends.pop()
    for c, _ in claims:
        if (c.period_start, c.period_end) != (period_id, period_end):
            raise IntentError(
                f"claim of {c.gateway} is for {c.period_start}..{c.period_end}, "
                f"not the batch period {period_id}..{period_end}")
    have = {(e.unit, e.account) for e in entries}
    extra = []
    for c, _ in claims:
        member = to_checksum_address(members_of.get(c.gateway, c.gateway))
        if (metered_unit, member) not in have:
            have.add((metered_unit, member))
            extra.append(Entry(member, metered_unit, 0))
    sorted_entries = sorted([*entries, *extra], key=lambda e: (e.unit, int(e.account, 16)))
    for a, b in itertools.pairwise(sorted_entries):
        if (a.unit, a.account) == (b.unit, b.account):
            raise IntentError(f"two entries for {a.account} in unit {a.unit}: net them first")

    def claim_key(item: tuple[PeriodClaim, bytes]) -> tuple[int, int]:
        c = item[0]
        try:
            member = members_of[c.gateway]
        except KeyError:
            raise IntentError(f"gateway {c.gateway} has no member") from None
        return int(member, 16), int(c.gateway, 16)

    claim_tuples: list[ClaimTuple] = []
    for c, sig in sorted(claims, key=claim_key):
        r, vs = compact_signature(sig)
        claim_tuples.append((c.gateway, c.first_seq, c.last_seq, c.imported_wh, c.exported_wh,
                             c.produced_wh, c.intervals_root, r, vs))
    first_claim: dict[str, int] = {}
    for i, ct in enumerate(claim_tuples):
        first_claim.setdefault(to_checksum_address(members_of[ct[0]]), i)
    donation_tuples: list[DonationTuple] = []
    for d in sorted(donations, key=lambda d: (int(d.donor, 16), d.order)):
        if d.donor not in first_claim:
            raise IntentError(f"donation of order {d.order}: donor {d.donor} has no claim in the batch")
        if donation_tuples and donation_tuples[-1][0] == d.order:
            raise IntentError(f"order {d.order} is executed twice in the batch")
        donation_tuples.append((d.order, first_claim[d.donor], d.wh))
    return Batch(period_id, period_end, intervals_root, tuple(claim_tuples),
                 tuple((e.account, e.unit, e.amount) for e in sorted_entries), tuple(donation_tuples))
