"""Merkle trees and period claims, checked against eth_account's EIP-712 and by properties."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from quartier import claim as cl
from quartier import merkle
from quartier.keys import GatewayKey

KEY = GatewayKey.from_bytes(bytes(range(5, 37)))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 40), data=st.data())
def test_every_leaf_proves_and_others_do_not(n: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i, i * 7) for i in range(n)]
    root = merkle.root(leaves)
    i = data.draw(st.integers(0, n - 1))
    assert merkle.verify(merkle.proof(leaves, i), root, leaves[i])
    assert not merkle.verify(merkle.proof(leaves, i), root, merkle.leaf_hash(10**9, 0))


def test_claim_matches_eth_account_eip712() -> None:
    ivs = [cl.IntervalValues(1_800_000_000 + 900 * k, k, 2 * k, 3 * k) for k in range(96)]
    c = cl.PeriodClaim("demo", KEY.address, 1_800_000_000, 1_800_086_400, 1, 500,
                       sum(i.imported_wh for i in ivs), sum(i.exported_wh for i in ivs),
                       sum(i.produced_wh for i in ivs), cl.intervals_root(ivs))
    sig = cl.sign_claim(KEY.private, c)
    fields = [("community", "bytes32"), ("gateway", "address"), ("periodStart", "uint64"),
              ("periodEnd", "uint64"), ("firstSeq", "uint64"), ("lastSeq", "uint64"),
              ("importedWh", "uint64"), ("exportedWh", "uint64"), ("producedWh", "uint64"),
              ("intervalsRoot", "bytes32")]
    msg = encode_typed_data(full_message={
        "types": {"EIP712Domain": [{"name": "name", "type": "string"},
                                   {"name": "version", "type": "string"}],
                  "PeriodClaim": [{"name": n, "type": t} for n, t in fields]},
        "primaryType": "PeriodClaim",
        "domain": {"name": cl.DOMAIN_NAME, "version": cl.DOMAIN_VERSION},
        "message": {"community": cl.community_hash("demo"), "gateway": KEY.address,
                    "periodStart": c.period_start, "periodEnd": c.period_end,
                    "firstSeq": 1, "lastSeq": 500, "importedWh": c.imported_wh,
                    "exportedWh": c.exported_wh, "producedWh": c.produced_wh,
                    "intervalsRoot": c.intervals_root},
    })
    assert Account.recover_message(msg, signature=sig) == KEY.address
    cl.verify_claim(c, sig)
    again, sig2 = cl.decode_claim_message(cl.encode_claim_message(c, sig))
    assert again == c and sig2 == sig


def test_claim_with_changed_total_does_not_verify() -> None:
    c = cl.PeriodClaim("demo", KEY.address, 0, 900, 1, 1, 1, 2, 3, b"\0" * 32)
    sig = cl.sign_claim(KEY.private, c)
    forged = cl.PeriodClaim("demo", KEY.address, 0, 900, 1, 1, 1, 2000, 3, b"\0" * 32)
    with pytest.raises(cl.ClaimError, match="not by its gateway"):
        cl.verify_claim(forged, sig)


def test_claim_refuses_bad_fields() -> None:
    with pytest.raises(cl.ClaimError, match="uint64"):
        cl.PeriodClaim("demo", KEY.address, 0, 900, 1, 1, -1, 0, 0, b"\0" * 32)
    with pytest.raises(cl.ClaimError, match="period_end"):
        cl.PeriodClaim("demo", KEY.address, 900, 900, 1, 1, 0, 0, 0, b"\0" * 32)
