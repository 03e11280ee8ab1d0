"""Merkle trees compatible with OpenZeppelin's MerkleProof (sorted-pair keccak256).

Leaves are double-hashed, as OpenZeppelin's StandardMerkleTree does, so that a leaf can
never be confused with an internal node (second-preimage safety):
    leaf = keccak256(keccak256(abi.encode(values...)))
An internal node is keccak256 of its two children in ascending byte order; an odd node
at the end of a level is carried up unchanged. A proof is the list of siblings from the
leaf up, which `MerkleProof.verify(proof, root, leaf)` accepts on chain.
"""

from __future__ import annotations

from collections.abc import Sequence

from quartier.hashing import keccak256

EMPTY_ROOT = b"\x00" * 32


def abi_word(value: int | bytes) -> bytes:
    """One 32-byte ABI word: an unsigned or two's-complement integer, or bytes32/address."""
    if isinstance(value, bytes):
        if len(value) == 32:
            return value
        if len(value) == 20:
            return b"\x00" * 12 + value
        raise ValueError(f"cannot encode {len(value)} bytes as one ABI word")
    return (value % (1 << 256)).to_bytes(32, "big")


def leaf_hash(*values: int | bytes) -> bytes:
    return keccak256(keccak256(b"".join(abi_word(v) for v in values)))


def _node(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b) if a < b else keccak256(b + a)


def levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    level = list(leaves)
    out = [level]
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        out.append(nxt)
        level = nxt
    return out


def root(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    return levels(leaves)[-1][0]


def proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of {len(leaves)}")
    path = []
    for level in levels(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index //= 2
    return path


def verify(proof_nodes: Sequence[bytes], root_hash: bytes, leaf: bytes) -> bool:
    node = leaf
    for sibling in proof_nodes:
        node = _node(node, sibling)
    return node == root_hash
