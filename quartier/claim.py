"""The gateway's period claim: signed totals that the ledger contract checks on chain.

EIP-712 typed data, so that wallets, eth_account and Solidity (OpenZeppelin ECDSA) all
verify the same bytes. The domain is chain-agnostic — only a name and a version — so a
gateway on a Pi signs without knowing the community's chain; the claim names its
community (keccak256 of the community id) and period instead, and the contract refuses
a period settled twice.

    EIP712Domain(string name,string version)       name "Quartier Period Claim", version "1"
    PeriodClaim(bytes32 community,address gateway,uint64 periodStart,uint64 periodEnd,
                uint64 firstSeq,uint64 lastSeq,uint64 importedWh,uint64 exportedWh,
                uint64 producedWh,bytes32 intervalsRoot)

`intervalsRoot` is the Merkle root (quartier.merkle) of the gateway's interval values in
period order, each leaf `abi.encode(uint64 intervalStart, uint64 importedWh,
uint64 exportedWh, uint64 producedWh)` with intervalStart in Unix seconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from coincurve import PrivateKey

from quartier import merkle
from quartier.hashing import keccak256, to_checksum_address
from quartier.signing import SignatureError, recover_hash, sign_hash

DOMAIN_NAME = "Quartier Period Claim"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = b"EIP712Domain(string name,string version)"
CLAIM_TYPE = (
    b"PeriodClaim(bytes32 community,address gateway,uint64 periodStart,uint64 periodEnd,"
    b"uint64 firstSeq,uint64 lastSeq,uint64 importedWh,uint64 exportedWh,uint64 producedWh,"
    b"bytes32 intervalsRoot)"
)
DOMAIN_SEPARATOR = keccak256(
    keccak256(DOMAIN_TYPE) + keccak256(DOMAIN_NAME.encode()) + keccak256(DOMAIN_VERSION.encode())
)
CLAIM_TYPEHASH = keccak256(CLAIM_TYPE)
UINT64_MAX = 2**64 - 1


class ClaimError(ValueError):
    """A claim that is malformed or whose signature does not match its gateway."""


def community_hash(community: str) -> bytes:
    return keccak256(community.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class IntervalValues:
    """A gateway's own energy in one interval, from its cumulative registers."""

    start: int  # Unix seconds
    imported_wh: int
    exported_wh: int
    produced_wh: int

    def leaf(self) -> bytes:
        return merkle.leaf_hash(self.start, self.imported_wh, self.exported_wh, self.produced_wh)


def intervals_root(intervals: Sequence[IntervalValues]) -> bytes:
    return merkle.root([iv.leaf() for iv in intervals])


@dataclass(frozen=True, slots=True)
class PeriodClaim:
    community: str
    gateway: str
    period_start: int
    period_end: int
    first_seq: int
    last_seq: int
    imported_wh: int
    exported_wh: int
    produced_wh: int
    intervals_root: bytes

    def __post_init__(self) -> None:
        for name in ("period_start", "period_end", "first_seq", "last_seq",
                     "imported_wh", "exported_wh", "produced_wh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT64_MAX:
                raise ClaimError(f"claim field {name}: {value!r} is not a uint64")
        if self.period_end <= self.period_start:
            raise ClaimError("claim period_end must be after period_start")
        if self.last_seq < self.first_seq:
            raise ClaimError("claim last_seq is before first_seq")
        if len(self.intervals_root) != 32:
            raise ClaimError("claim intervals_root must be 32 bytes")
        object.__setattr__(self, "gateway", to_checksum_address(self.gateway))

    def struct_hash(self) -> bytes:
        return keccak256(
            CLAIM_TYPEHASH
            + merkle.abi_word(community_hash(self.community))
            + merkle.abi_word(bytes.fromhex(self.gateway[2:]))
            + b"".join(merkle.abi_word(v) for v in (
                self.period_start, self.period_end, self.first_seq, self.last_seq,
                self.imported_wh, self.exported_wh, self.produced_wh))
            + self.intervals_root
        )

    def digest(self) -> bytes:
        return keccak256(b"\x19\x01" + DOMAIN_SEPARATOR + self.struct_hash())

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["intervals_root"] = "0x" + self.intervals_root.hex()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> PeriodClaim:
        try:
            fields = dict(d)
            fields["intervals_root"] = bytes.fromhex(str(d["intervals_root"]).removeprefix("0x"))
            return cls(**fields)  # type: ignore[arg-type]
        except (TypeError, ValueError, KeyError) as exc:
            raise ClaimError(f"malformed claim: {exc}") from None


def sign_claim(key: PrivateKey, claim: PeriodClaim) -> bytes:
    return sign_hash(key, claim.digest())


def recover_claim(claim: PeriodClaim, signature: bytes) -> str:
    try:
        return recover_hash(claim.digest(), signature)
    except SignatureError as exc:
        raise ClaimError(f"claim of {claim.gateway} for period {claim.period_start}: {exc}") from None


def verify_claim(claim: PeriodClaim, signature: bytes) -> None:
    signer = recover_claim(claim, signature)
    if signer != claim.gateway:
        raise ClaimError(
            f"claim for period {claim.period_start} is signed by {signer}, not by its gateway "
            f"{claim.gateway}"
        )


def encode_claim_message(claim: PeriodClaim, signature: bytes) -> bytes:
    """The `/claim` MQTT payload: the claim's fields and its signature."""
    d = claim.as_dict()
    d["sig"] = "0x" + signature.hex()
    return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()


def decode_claim_message(payload: bytes | str) -> tuple[PeriodClaim, bytes]:
    try:
        d = json.loads(payload)
        sig = bytes.fromhex(str(d.pop("sig")).removeprefix("0x"))
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise ClaimError(f"malformed claim message: {exc}") from None
    if not isinstance(d, dict):
        raise ClaimError("malformed claim message: not an object")
    return PeriodClaim.from_dict(d), sig
