"""keccak256 and Ethereum addresses, the primitives the reading format and claims share."""

from __future__ import annotations

import functools
from collections.abc import Callable


def _keccak_function() -> Callable[[bytes], bytes]:
    # Ethereum's Keccak-256 (the pre-standard padding), not hashlib's SHA3. Hashed twice
    # per reading on the gateway and at ingest: safe-pysha3 does one in ~1.5 us where
    # pycryptodome's wrapper takes ~5 us. Both give the same digest (tests check).
    try:
        import sha3  # type: ignore[import-not-found]
    except ImportError:
        from Crypto.Hash import keccak as _keccak

        return lambda data: _keccak.new(data=data, digest_bits=256).digest()
    keccak_256 = sha3.keccak_256
    return lambda data: keccak_256(data).digest()  # type: ignore[no-any-return]


keccak256: Callable[[bytes], bytes] = _keccak_function()


@functools.lru_cache(maxsize=4096)
def to_checksum_address(raw: bytes | str) -> str:
    """EIP-55 mixed-case address for 20 raw bytes or a hex string."""
    if isinstance(raw, str):
        hex_lower = raw.lower().removeprefix("0x")
        if len(hex_lower) != 40 or any(c not in "0123456789abcdef" for c in hex_lower):
            raise ValueError(f"not a 20-byte hex address: {raw!r}")
    else:
        if len(raw) != 20:
            raise ValueError(f"an address is 20 bytes, got {len(raw)}")
        hex_lower = raw.hex()
    digest = keccak256(hex_lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c for i, c in enumerate(hex_lower)
    )


def is_checksum_address(value: str) -> bool:
    try:
        return to_checksum_address(value) == value
    except ValueError:
        return False


def address_of_public_key(uncompressed: bytes) -> str:
    """Address of a 65-byte uncompressed secp256k1 public key (0x04 || X || Y)."""
    return to_checksum_address(keccak256(uncompressed[1:])[12:])
