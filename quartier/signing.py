"""EIP-191 personal_sign and recovery with coincurve (libsecp256k1).

coincurve is used on the hot paths (gateway signing, ingest recovery): it is about six
times faster than eth_account's helpers, which the tests use as the independent verifier.
"""

from __future__ import annotations

from coincurve import PrivateKey, PublicKey

from quartier.hashing import address_of_public_key, keccak256

# secp256k1 group order; signatures with s > n/2 are malleable twins (EIP-2) and refused.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2


class SignatureError(ValueError):
    """A signature that is malformed or does not recover to a key."""


def personal_message_hash(message: bytes) -> bytes:
    """keccak256("\\x19Ethereum Signed Message:\\n" + len(message) + message)."""
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)


def sign_hash(key: PrivateKey, digest: bytes) -> bytes:
    """65 bytes r || s || v with v in {27, 28}; libsecp256k1 always gives low s."""
    sig = key.sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


def sign_personal(key: PrivateKey, message: bytes) -> bytes:
    return sign_hash(key, personal_message_hash(message))


def recover_hash(digest: bytes, signature: bytes) -> str:
    """The EIP-55 address whose key made `signature` over the 32-byte `digest`."""
    if len(signature) != 65:
        raise SignatureError(f"a signature is 65 bytes (r, s, v), got {len(signature)}")
    v = signature[64]
    if v in (27, 28):
        v -= 27
    if v not in (0, 1):
        raise SignatureError(f"signature v must be 27 or 28, got {signature[64]}")
    s = int.from_bytes(signature[32:64], "big")
    if s == 0 or s > _HALF_N:
        raise SignatureError("signature s is zero or in the upper half of the curve order (EIP-2)")
    try:
        pub = PublicKey.from_signature_and_message(signature[:64] + bytes([v]), digest, hasher=None)
    except Exception as exc:  # coincurve raises a bare Exception on invalid points
        raise SignatureError(f"signature does not recover to a public key: {exc}") from None
    return address_of_public_key(pub.format(compressed=False))


def recover_personal(message: bytes, signature: bytes) -> str:
    return recover_hash(personal_message_hash(message), signature)


def address_of(key: PrivateKey) -> str:
    return address_of_public_key(key.public_key.format(compressed=False))
