"""Interval energy from cumulative registers: exact, deterministic, conserving energy."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from quartier import claim, reading
from quartier.intervals import (
    INTERPOLATED,
    MEASURED,
    MISSING,
    PARTIAL,
    IntervalError,
    Sample,
    gateway_period,
    interval_energy,
    samples_from_readings,
    select_period_readings,
    to_interval_values,
)
from quartier.signing import address_of

T0 = 1_700_000_100  # a multiple of 900 s
STEP = 900


@st.composite
def register_samples(draw, max_span_s: int = 8 * STEP):
    n = draw(st.integers(1, 40))
    times = sorted(draw(st.sets(st.integers(0, max_span_s * 1000), min_size=n, max_size=n)))
    incs = draw(st.lists(st.integers(0, 5000), min_size=n, max_size=n))
    base = draw(st.integers(0, 10**9))
    out, v = [], base
    for t, inc in zip(times, incs, strict=True):
        v += inc
        out.append(Sample(T0 * 1000 + t, {"e_imp_wh": v, "e_prod_wh": 2 * v}))
    return out


@settings(max_examples=300, deadline=None)
@given(register_samples(), st.sampled_from([60, 300, 900]))
def test_sum_of_intervals_is_the_register_difference(samples, step):
    # Intervals covering every sample: their sum is exactly last - first, whatever the times.
    end = T0 + 8 * STEP + step
    end -= (end - T0) % step
    ivs = interval_energy(samples, T0, end, step)
    assert sum(iv.imported_wh for iv in ivs) == samples[-1].registers["e_imp_wh"] - samples[0].registers["e_imp_wh"]
    assert sum(iv.produced_wh for iv in ivs) == 2 * (samples[-1].registers["e_imp_wh"] - samples[0].registers["e_imp_wh"])
    assert all(iv.imported_wh >= 0 and iv.exported_wh == 0 for iv in ivs)
    assert [iv.start for iv in ivs] == list(range(T0, end, step))


@settings(max_examples=200, deadline=None)
@given(register_samples(), st.integers(1, 7), st.randoms(use_true_random=False))
def test_adjacent_spans_telescope_and_order_does_not_matter(samples, cut, rnd):
    mid = T0 + cut * STEP
    whole = interval_energy(samples, T0, T0 + 8 * STEP)
    shuffled = list(samples)
    rnd.shuffle(shuffled)
    left = interval_energy(shuffled, T0, mid)
    right = interval_energy(shuffled, mid, T0 + 8 * STEP)
    assert left + right == whole


@settings(max_examples=200, deadline=None)
@given(register_samples(), st.integers(0, 7))
def test_a_sub_span_equals_the_interpolated_difference(samples, k):
    # Energy of one interval = curve(end) - curve(start), in integers, never negative.
    ivs = interval_energy(samples, T0 + k * STEP, T0 + (k + 1) * STEP)
    assert len(ivs) == 1 and ivs[0].imported_wh >= 0


def test_linear_interpolation_rounds_down_at_boundaries():
    s = [Sample(T0 * 1000, {"e_imp_wh": 0}), Sample((T0 + 3 * STEP) * 1000, {"e_imp_wh": 100})]
    ivs = interval_energy(s, T0, T0 + 3 * STEP)
    # 100/3 at each boundary, rounded down: 33, 66, then the rest.
    assert [iv.imported_wh for iv in ivs] == [33, 33, 34]
    assert {iv.quality for iv in ivs} == {INTERPOLATED}


def test_quality_measured_partial_missing():
    s = [Sample((T0 + 60 * i) * 1000, {"e_exp_wh": 10 * i}) for i in range(0, 31)]  # T0..T0+1800
    ivs = interval_energy(s, T0 - STEP, T0 + 4 * STEP)
    assert [iv.quality for iv in ivs] == [MISSING, MEASURED, MEASURED, MISSING, MISSING]
    assert [iv.exported_wh for iv in ivs] == [0, 150, 150, 0, 0]
    ivs = interval_energy(s[5:], T0, T0 + 2 * STEP)
    assert [iv.quality for iv in ivs] == [PARTIAL, MEASURED]


def test_counter_glitch_is_ignored_and_replacement_starts_a_segment():
    s = [
        Sample(T0 * 1000, {"e_imp_wh": 1000}),
        Sample((T0 + 300) * 1000, {"e_imp_wh": 5}),  # glitch: below an earlier value
        Sample((T0 + 600) * 1000, {"e_imp_wh": 1060}),
        Sample((T0 + 900) * 1000, {"e_imp_wh": 1090}),
        Sample((T0 + 1200) * 1000, {"e_imp_wh": 0}, segment=1),  # new meter
        Sample((T0 + 1800) * 1000, {"e_imp_wh": 40}, segment=1),
    ]
    ivs = interval_energy(s, T0, T0 + 2 * STEP)
    assert [iv.imported_wh for iv in ivs] == [90, 40]
    assert ivs[1].quality == PARTIAL  # between the old meter's last sample and the new one's first


def test_span_must_be_whole_intervals():
    with pytest.raises(IntervalError, match="whole number"):
        interval_energy([], T0, T0 + 1000)
    with pytest.raises(IntervalError, match="empty"):
        interval_energy([], T0, T0)


# --- gateway period: what the gateway signs and the server recomputes -----------------

KEY = PrivateKey(b"\x01" * 32)
GW = address_of(KEY)


def chain(points, dev_of=lambda i: "inv", extra=lambda i: {}):
    head = reading.ChainHead()
    out = []
    for i, (ts_ms, m) in enumerate(points):
        sr = reading.sign(KEY, reading.next_reading(head, GW, dev_of(i), ts_ms, m, **extra(i)))
        head = reading.ChainHead(sr.reading.seq, sr.body_hash)
        out.append(sr.reading)
    return out


@st.composite
def two_device_day(draw):
    n = draw(st.integers(2, 60))
    gaps = draw(st.lists(st.integers(1, 2400), min_size=n, max_size=n))
    incs = draw(st.lists(st.integers(0, 300), min_size=n, max_size=n))
    t = (T0 - draw(st.integers(0, 1200))) * 1000
    pts, prod, imp, exp_ = [], 0, 0, 0
    for i, (g, inc) in enumerate(zip(gaps, incs, strict=True)):
        t += g * 1000
        if i % 2:
            prod += inc
            pts.append((t, {"e_prod_wh": prod, "p_w": inc}))
        else:
            imp += inc
            exp_ += inc // 3
            pts.append((t, {"e_exp_wh": exp_, "e_imp_wh": imp}))
    return chain(pts, dev_of=lambda i: "inv" if i % 2 else "meter")


@settings(max_examples=60, deadline=None)
@given(two_device_day())
def test_gateway_period_is_what_the_server_recomputes_from_the_seq_range(readings):
    start, end = T0, T0 + 8 * STEP
    selected = select_period_readings(readings, start, end)
    if not selected:
        return
    totals = gateway_period(selected, start, end)
    c = totals.claim("demo", GW, start, end)
    sig = claim.sign_claim(KEY, c)
    # The server side: decode the message, take every stored reading in the seq range.
    got, sig2 = claim.decode_claim_message(claim.encode_claim_message(c, sig))
    claim.verify_claim(got, sig2)
    stored = [r for r in reversed(readings) if got.first_seq <= r.seq <= got.last_seq]
    again = gateway_period(stored, got.period_start, got.period_end)
    assert again == totals
    assert again.root == got.intervals_root
    assert sum(iv.produced_wh for iv in totals.intervals) == totals.produced_wh
    assert claim.intervals_root(to_interval_values(totals.intervals)) == totals.root
    assert [r.seq for r in selected] == list(range(selected[0].seq, selected[-1].seq + 1))


def test_gateway_period_sums_devices_and_matches_registers():
    pts = []
    for i in range(0, 97):
        ts = (T0 + 900 * i) * 1000
        pts.append((ts, {"e_prod_wh": 100 * i}))
        pts.append((ts + 1, {"e_imp_wh": 7 * i, "e_exp_wh": 50 * i}))
    rs = chain(pts, dev_of=lambda i: "inv" if i % 2 == 0 else "meter")
    totals = gateway_period(select_period_readings(rs, T0, T0 + 86400), T0, T0 + 86400)
    # The meter reads 1 ms after each boundary: its value at the period end is interpolated
    # and rounded down, the last Wh falls into the next period.
    assert (totals.produced_wh, totals.imported_wh, totals.exported_wh) == (
        9600, 7 * 95 + 7 * 899_999 // 900_000, 50 * 95 + 50 * 899_999 // 900_000)
    assert len(totals.intervals) == 96


def test_flagged_readings_carry_no_energy_and_meter_id_change_is_a_new_segment():
    pts = [
        (T0 * 1000, {"e_imp_wh": 500}),
        ((T0 + 300) * 1000, {"e_imp_wh": 999_999}),  # flagged implausible below
        ((T0 + 600) * 1000, {"e_imp_wh": 520}),
        ((T0 + 900) * 1000, {"e_imp_wh": 3}),  # new meter id
        ((T0 + 1800) * 1000, {"e_imp_wh": 13}),
    ]
    extra = [{"meter": "A1"}, {"meter": "A1", "flags": ("implausible",)}, {"meter": "A1"},
             {"meter": "B2"}, {"meter": "B2"}]
    rs = chain(pts, extra=lambda i: extra[i])
    samples = samples_from_readings(rs)["inv"]
    assert [s.segment for s in samples] == [0, 0, 1, 1]
    totals = gateway_period(rs, T0, T0 + 2 * STEP)
    assert totals.imported_wh == 20 + 10
