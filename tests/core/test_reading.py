"""The signed reading: encoding, signature, chain — against eth_account as the independent side."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from quartier import reading as rd
from quartier.hashing import keccak256
from quartier.keys import GatewayKey

KEY = GatewayKey.from_bytes(bytes(range(1, 33)))
OTHER = GatewayKey.from_bytes(bytes(range(2, 34)))

names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
ints = st.integers(min_value=rd.INT_MIN, max_value=rd.INT_MAX)
measurements = st.dictionaries(names, ints, min_size=1, max_size=8)
dev_ids = st.from_regex(r'[\x20\x21\x23-\x5b\x5d-\x7e]{1,20}', fullmatch=True)


def make(seq: int = 1, m: dict[str, int] | None = None, prev: str = rd.GENESIS_PREV) -> rd.Reading:
    return rd.Reading(gw=KEY.address, dev="inverter", seq=seq, ts=1_795_400_000_000, prev=prev,
                      m=m or {"e_prod_wh": 1234, "p_w": 500})


def test_body_is_canonical_json() -> None:
    body = rd.encode(make())
    assert body == (
        b'{"dev":"inverter","gw":"' + KEY.address.encode() + b'","m":{"e_prod_wh":1234,"p_w":500},'
        b'"prev":"' + b"0" * 64 + b'","seq":1,"ts":1795400000000,"v":1}'
    )


def test_signature_verifies_with_eth_account() -> None:
    signed = rd.sign(KEY.private, make())
    env = json.loads(signed.envelope())
    assert env["r"].encode() == signed.body
    who = Account.recover_message(encode_defunct(primitive=signed.body), signature=env["sig"])
    assert who == KEY.address


def test_eth_account_signature_verifies_here() -> None:
    acct = Account.create()
    body = rd.canonical_bytes(
        {"v": 1, "gw": acct.address, "dev": "m1", "seq": 1, "ts": 5, "prev": rd.GENESIS_PREV,
         "m": {"e_imp_wh": 7}})
    sig = acct.sign_message(encode_defunct(primitive=body)).signature
    assert rd.verify(body, bytes(sig)).reading.gw == acct.address


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (b'{"dev":"a", "gw":"GW","m":{"p_w":1},"prev":"' + b"0" * 64 + b'","seq":1,"ts":1,"v":1}',
         rd.NonCanonicalBody, "canonical"),
        (b'{"dev":"a","gw":"GW","m":{"p_w":1.5},"prev":"' + b"0" * 64 + b'","seq":1,"ts":1,"v":1}',
         rd.FloatNotAllowed, "float"),
        (b'{"dev":"a","extra":1,"gw":"GW","m":{"p_w":1},"prev":"' + b"0" * 64 + b'","seq":1,"ts":1,"v":1}',
         rd.UnknownField, "extra"),
        (b'{"dev":"a","gw":"GW","m":{"p_w":1},"prev":"' + b"0" * 64 + b'","seq":1,"ts":1,"v":2}',
         rd.WrongVersion, "version 2"),
        (b'{"dev":"a","gw":"GW","m":{"p_w":true},"prev":"' + b"0" * 64 + b'","seq":1,"ts":1,"v":1}',
         rd.BadValue, "m.p_w"),
        (b'{"gw":"GW","dev":"a","m":{"p_w":1},"prev":"' + b"0" * 64 + b'","seq":1,"ts":1,"v":1}',
         rd.NonCanonicalBody, "canonical"),
        (b'{"dev":"a","gw":"GW","m":{"p_w":1},"prev":"' + b"0" * 64 + b'","seq":0,"ts":1,"v":1}',
         rd.BadValue, "seq"),
        (b'{"dev":"a","gw":"GW","m":{},"prev":"' + b"0" * 64 + b'","seq":1,"ts":1,"v":1}',
         rd.BadValue, "non-empty"),
        (b'{"dev":"\xc3\xa9","gw":"GW","m":{"p_w":1},"prev":"' + b"0" * 64 + b'","seq":1,"ts":1,"v":1}',
         rd.NonCanonicalBody, "ASCII"),
        (b'{"dev":"a","dev":"b","gw":"GW","m":{"p_w":1},"prev":"' + b"0" * 64 + b'","seq":1,"ts":1,"v":1}',
         rd.NonCanonicalBody, "duplicate"),
    ],
)
def test_refusals_name_the_problem(body: bytes, error: type[rd.ReadingError], words: str) -> None:
    body = body.replace(b"GW", KEY.address.encode())
    with pytest.raises(error, match=words):
        rd.decode(body)


def test_gw_must_be_checksummed() -> None:
    d = make().as_dict()
    d["gw"] = KEY.address.lower()
    with pytest.raises(rd.BadValue, match="EIP-55"):
        rd.decode(rd.canonical_bytes(d))


def test_signature_by_another_key_is_refused() -> None:
    body = rd.encode(make())
    from quartier.signing import sign_personal

    with pytest.raises(rd.SignatureMismatch, match="not to gateway"):
        rd.verify(body, sign_personal(OTHER.private, body))


def test_high_s_twin_is_refused() -> None:
    from quartier.signing import SECP256K1_N

    signed = rd.sign(KEY.private, make())
    s = int.from_bytes(signed.sig[32:64], "big")
    twin = signed.sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signed.sig[64]])
    with pytest.raises(rd.BadSignature, match="EIP-2"):
        rd.verify(signed.body, twin)


def test_envelope_shape_errors() -> None:
    for payload, words in [(b"nope", "not JSON"), (b'{"r":"x"}', "exactly"),
                           (b'{"r":"x","sig":"0x12"}', "130 hex")]:
        with pytest.raises(rd.BadEnvelope, match=words):
            rd.parse_envelope(payload)


def test_chain_follows() -> None:
    first = rd.sign(KEY.private, rd.next_reading(rd.ChainHead(), KEY.address, "d", 1, {"p_w": 1}))
    head = rd.ChainHead(first.reading.seq, first.body_hash)
    assert first.body_hash == keccak256(first.body).hex()
    second = rd.next_reading(head, KEY.address, "d", 2, {"p_w": 2})
    rd.check_follows(head, second)
    with pytest.raises(rd.SeqNotContiguous, match="does not follow"):
        rd.check_follows(rd.ChainHead(5, head.hash), second)
    with pytest.raises(rd.PrevMismatch, match="hashes to"):
        rd.check_follows(rd.ChainHead(1, "1" * 64), second)


def test_optional_flags_and_meter_round_trip() -> None:
    r = rd.Reading(gw=KEY.address, dev="linky", seq=1, ts=1, prev=rd.GENESIS_PREV,
                   m={"e_imp_wh": 1}, flags=("meter_replaced", "stale"), meter="021861348497")
    assert rd.verify(*rd.parse_envelope(rd.sign(KEY.private, r).envelope())).reading == r
    bad = r.as_dict()
    bad["flags"] = ["stale", "meter_replaced"]
    with pytest.raises(rd.NonCanonicalBody, match="sorted"):
        rd.decode(rd.canonical_bytes(bad))


@settings(max_examples=150, deadline=None)
@given(seq=st.integers(1, 2**40), ts=st.integers(0, 2**45), m=measurements, dev=dev_ids)
def test_any_valid_reading_round_trips(seq: int, ts: int, m: dict[str, int], dev: str) -> None:
    r = rd.Reading(gw=KEY.address, dev=dev, seq=seq, ts=ts, prev="ab" * 32, m=m)
    signed = rd.sign(KEY.private, r)
    again = rd.verify_envelope(signed.envelope())
    assert again.reading == r and again.body == signed.body


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_is_rejected(data: st.DataObject) -> None:
    signed = rd.sign(KEY.private, make(seq=data.draw(st.integers(1, 10**6))))
    blob = bytearray(signed.body + signed.sig)
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] = (blob[i] + data.draw(st.integers(1, 255))) % 256
    body, sig = bytes(blob[: len(signed.body)]), bytes(blob[len(signed.body):])
    with pytest.raises(rd.ReadingError):
        rd.verify(body, sig)


def test_keccak_is_ethereums() -> None:
    # Known vectors: Keccak-256 with the pre-standard padding, not SHA3-256.
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    from Crypto.Hash import keccak

    for data in (b"abc", b"x" * 300, bytes(range(256))):
        assert keccak256(data) == keccak.new(data=data, digest_bits=256).digest()
