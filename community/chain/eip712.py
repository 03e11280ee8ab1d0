"""EIP-712 typed data for the community's contracts beside the ledger (pure).

Each contract has its own domain (name, version "1", chain id, address), so an intent
signed for the exchange is worthless to governance and on any other chain. The types
used are static (address, uintN, bool, bytes32), each one ABI word; the struct hash is
keccak256(typehash ‖ words).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coincurve import PrivateKey

from community.chain.intents import DOMAIN_TYPE
from quartier.hashing import keccak256, to_checksum_address
from quartier.merkle import abi_word
from quartier.signing import sign_hash

Value = int | bool | str | bytes


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    chain_id: int
    contract: str
    version: str = "1"

    def separator(self) -> bytes:
        return keccak256(
            keccak256(DOMAIN_TYPE) + keccak256(self.name.encode()) + keccak256(self.version.encode())
            + abi_word(self.chain_id) + word(self.contract))


def word(value: Value) -> bytes:
    """One ABI word: an address as a 0x string, an integer or bool, or bytes32."""
    if isinstance(value, str):
        return abi_word(bytes.fromhex(to_checksum_address(value)[2:]))
    if isinstance(value, bool):
        return abi_word(int(value))
    return abi_word(value)


def struct_hash(type_string: str, values: Sequence[Value]) -> bytes:
    return keccak256(keccak256(type_string.encode()) + b"".join(word(v) for v in values))


def digest(domain: Domain, type_string: str, values: Sequence[Value]) -> bytes:
    return keccak256(b"\x19\x01" + domain.separator() + struct_hash(type_string, values))


def sign(key: PrivateKey, domain: Domain, type_string: str, values: Sequence[Value]) -> bytes:
    """65 bytes r ‖ s ‖ v, as the contracts' `bytes sig` arguments take them."""
    return sign_hash(key, digest(domain, type_string, values))
