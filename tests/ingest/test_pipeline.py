"""The pure ingest decisions: each bad message gets its reason, the chain is placed exactly."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from community.ingest import pipeline as pl
from quartier import reading as rd
from tests.ingest.ingest_helpers import COMMUNITY, T0_MS, Gw

NOW = T0_MS + 86_400_000
TOPICS = pl.Topics(COMMUNITY)


def verdict(topic: str, payload: bytes, gateways: dict[str, pl.GatewayState]) -> pl.Verdict:
    return pl.classify(pl.Message(topic, payload), TOPICS, gateways, NOW)


@pytest.fixture
def gws() -> tuple[Gw, Gw, dict[str, pl.GatewayState]]:
    a, b = Gw(1), Gw(2)
    return a, b, {a.address: pl.GatewayState(a.address, False), b.address: pl.GatewayState(b.address, False)}


def test_a_good_reading_is_ok(gws):
    a, _, reg = gws
    v = verdict(a.topic(), a.next().envelope(), reg)
    assert isinstance(v, pl.ReadingOk) and v.signed.reading.seq == 1


def _reason(v: pl.Verdict) -> str:
    assert isinstance(v, pl.Rejected), v
    return v.reason


def test_each_bad_message_gets_its_reason(gws):
    a, b, reg = gws
    good = a.next()
    body, sig = good.body, good.sig
    forged_sig = bytearray(sig)
    forged_sig[5] ^= 1
    other = Gw(9)  # not enrolled
    cases = {
        # signed by b, but claiming to be a (the body says gw=a)
        "signature_mismatch": (a.topic(), rd.encode_envelope(
            body, rd.sign(b.key, good.reading).sig)),
        "bad_signature": (a.topic(), rd.encode_envelope(body, sig[:64] + b"\x05")),
        "topic_mismatch": (b.topic(), good.envelope()),
        "unknown_gateway": (other.topic(), other.next().envelope()),
        "float": (a.topic(), rd.encode_envelope(body.replace(b'"p_w":250', b'"p_w":250.5'), sig)),
        "oversized": (a.topic(), b"{" + b" " * 5000 + b"}"),
        "bad_envelope": (a.topic(), b"not json at all"),
        "non_canonical": (a.topic(), rd.encode_envelope(body.replace(b",", b", ", 1), sig)),
        "unknown_field": (a.topic(), rd.encode_envelope(body.replace(b'{"dev"', b'{"bad":1,"dev"'), sig)),
        "future_ts": (a.topic(), a.next(ts=NOW + 3_600_000).envelope()),
        "bad_topic": (f"quartier/{COMMUNITY}/x/y/z", good.envelope()),
    }
    for reason, (topic, payload) in cases.items():
        assert _reason(verdict(topic, payload, reg)) == reason, reason
    # A forged signature (one bit flipped) recovers to some other key or to none.
    assert _reason(verdict(a.topic(), rd.encode_envelope(body, bytes(forged_sig)), reg)) in (
        "signature_mismatch", "bad_signature")
    revoked = dict(reg)
    revoked[a.address] = pl.GatewayState(a.address, True)
    assert _reason(verdict(a.topic(), good.envelope(), revoked)) == "revoked"


def test_claims_are_classified(gws):
    a, b, reg = gws
    a.chain(20)
    start = T0_MS // 1000
    msg = a.claim(start, start + 900)
    v = verdict(a.topic("claim"), msg, reg)
    assert isinstance(v, pl.ClaimOk)
    assert _reason(verdict(b.topic("claim"), msg, reg)) == "topic_mismatch"
    d = json.loads(msg)
    d["produced_wh"] += 1  # the signature no longer covers the values
    assert _reason(verdict(a.topic("claim"), json.dumps(d).encode(), reg)) == "claim_bad_signature"
    assert _reason(verdict(a.topic("claim"), b'{"x": 1}', reg)) == "claim_malformed"


def links(rs):
    return [pl.Link.of(s) for s in rs]


def test_chain_duplicates_forks_and_prev():
    a = Gw(1)
    rs = a.chain(5)
    res = pl.check_chain(a.address, rs[2:4], links(rs[:2]))
    assert [s.reading.seq for s in res.accepted] == [3, 4] and not res.rejected
    res = pl.check_chain(a.address, [rs[1]], links(rs[:3]))
    assert res.duplicates == [rs[1]]
    # A fork: another body signed for seq 3 (the gateway's key, different values).
    fork = rd.sign(a.key, rd.Reading(**{**_fields(rs[2].reading), "m": {"e_imp_wh": 1, "p_w": 1}}))
    res = pl.check_chain(a.address, [fork], links(rs[:3]))
    assert [r.reason for _, r in res.rejected] == ["fork"]
    # The fork arriving first: then the real seq 4 names a prev that is not stored as seq 3.
    res = pl.check_chain(a.address, [rs[3]], [*links(rs[:2]), pl.Link.of(fork)])
    assert [r.reason for _, r in res.rejected] == ["prev_mismatch"]
    # A seq 3 whose successor (stored) follows another body.
    res = pl.check_chain(a.address, [fork], links(rs[:2]) + links(rs[3:4]))
    assert [r.reason for _, r in res.rejected] == ["fork"]


def _fields(r: rd.Reading) -> dict:
    return {"gw": r.gw, "dev": r.dev, "seq": r.seq, "ts": r.ts, "prev": r.prev, "m": r.m}


def test_counters_never_go_backwards_except_a_flagged_replacement():
    a = Gw(1)
    r1 = a.next(m={"e_imp_wh": 1000})
    r2 = a.next(dev="inverter", m={"e_prod_wh": 5})
    back = a.next(m={"e_imp_wh": 999})
    res = pl.check_chain(a.address, [back], links([r1, r2]))
    assert [r.reason for _, r in res.rejected] == ["counter_backwards"]
    assert "e_imp_wh went from 1000 at seq 1 to 999 at seq 3" in res.rejected[0][1].detail
    b = Gw(2)
    s1 = b.next(m={"e_imp_wh": 1000}, meter="A1")
    s2 = b.next(m={"e_imp_wh": 3}, meter="B2")  # a new meter id: a new segment
    s3 = b.next(m={"e_imp_wh": 1}, flags=("meter_replaced",))
    s4 = b.next(m={"e_imp_wh": 0}, flags=("counter_backwards",))  # flagged: kept, no energy
    res = pl.check_chain(b.address, [s2, s3, s4], links([s1]))
    assert not res.rejected and len(res.accepted) == 3
    # Checked against the successor too when readings arrive out of order.
    c = Gw(3)
    t1, t2, t3 = c.next(m={"e_imp_wh": 10}), c.next(m={"e_imp_wh": 50}), c.next(m={"e_imp_wh": 20})
    res = pl.check_chain(c.address, [t2], links([t1, t3]))
    assert [r.reason for _, r in res.rejected] == ["counter_backwards"]


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 8), st.integers(0, 10))
def test_any_arrival_order_and_batching_stores_each_reading_once(rnd, n_batches, dups):
    a = Gw(1)
    rs = a.chain(12, dev="meter") + [a.next(dev="inverter", m={"e_prod_wh": i}) for i in range(6)]
    stream = rs + [rnd.choice(rs) for _ in range(dups)]
    rnd.shuffle(stream)
    cuts = sorted(rnd.sample(range(1, len(stream)), min(n_batches - 1, len(stream) - 1)))
    stored: list[pl.Link] = []
    accepted, dup_count = [], 0
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        res = pl.check_chain(a.address, stream[lo:hi], stored)
        assert not res.rejected
        accepted += res.accepted
        dup_count += len(res.duplicates)
        stored += links(res.accepted)
    assert sorted(s.reading.seq for s in accepted) == list(range(1, 19))
    assert dup_count == dups
