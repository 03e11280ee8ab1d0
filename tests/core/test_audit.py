"""`quartier verify` logic: gaps, forks, reorderings and duplicates show up."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from quartier import reading as rd
from quartier.audit import audit
from quartier.keys import GatewayKey

KEY = GatewayKey.from_bytes(bytes(range(3, 35)))


def chain(n: int, key: GatewayKey = KEY) -> list[bytes]:
    head, out = rd.ChainHead(), []
    for i in range(n):
        s = rd.sign(key.private, rd.next_reading(head, key.address, "d", i, {"e_imp_wh": i}))
        head = rd.ChainHead(s.reading.seq, s.body_hash)
        out.append(s.envelope())
    return out


def test_whole_chain_is_ok() -> None:
    rep = audit(chain(5))
    assert rep.ok and rep.valid == 5 and rep.as_dict()["gaps"] == []


def test_duplicates_are_harmless() -> None:
    c = chain(3)
    rep = audit([c[0], c[1], c[1], c[2]])
    assert rep.ok and rep.duplicates == 1


def test_invalid_line_is_reported_with_its_number() -> None:
    c = chain(2)
    rep = audit([c[0], b"", b"garbage", c[1]])
    assert not rep.ok
    assert rep.invalid == [{"line": 3, "reason": rep.invalid[0]["reason"]}]
    assert rep.invalid[0]["reason"].startswith("bad_envelope")


def test_fork_two_bodies_for_one_seq() -> None:
    c = chain(3)
    head = rd.ChainHead(1, rd.verify_envelope(c[0]).body_hash)
    other = rd.sign(KEY.private, rd.next_reading(head, KEY.address, "d", 99, {"e_imp_wh": 5}))
    rep = audit([*c, other.envelope()])
    assert [f["seq"] for f in rep.forks] == [2]


def test_first_reading_must_start_at_genesis() -> None:
    bad = rd.sign(KEY.private, rd.Reading(gw=KEY.address, dev="d", seq=1, ts=0, prev="1" * 64,
                                          m={"p_w": 1}))
    assert audit([bad.envelope()]).forks[0]["seq"] == 1


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 12), data=st.data())
def test_dropping_shows_a_gap(n: int, data: st.DataObject) -> None:
    c = chain(n)
    drop = data.draw(st.integers(1, n - 2))  # not the ends: a slice may start or stop anywhere
    rep = audit(c[:drop] + c[drop + 1:])
    assert rep.gaps == [{"gw": KEY.address, "after_seq": drop, "next_seq": drop + 2}]
    assert not rep.ok


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_reordering_shows_up(n: int, data: st.DataObject) -> None:
    c = chain(n)
    order = data.draw(st.permutations(range(n)))
    rep = audit([c[i] for i in order])
    moved_back = any(order[j] < max(order[:j], default=-1) for j in range(n))
    assert bool(rep.out_of_order) == moved_back
    assert rep.ok  # every link is there: reordering alone loses nothing


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 8), data=st.data())
def test_replacing_a_reading_breaks_the_links(n: int, data: st.DataObject) -> None:
    c = chain(n)
    i = data.draw(st.integers(0, n - 2))
    # A different reading at seq i+1 continuing the same head: the next link no longer holds.
    prev = rd.GENESIS_PREV if i == 0 else rd.verify_envelope(c[i - 1]).body_hash
    forged = rd.sign(KEY.private, rd.Reading(gw=KEY.address, dev="d", seq=i + 1, ts=10**6,
                                             prev=prev, m={"e_imp_wh": -1}))
    rep = audit([*c[:i], forged.envelope(), *c[i + 1:]])
    assert any(f["seq"] == i + 2 for f in rep.forks)
