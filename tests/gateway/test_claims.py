"""Period claims: the gateway's totals are the shared intervals function's, signed."""

from __future__ import annotations

from pathlib import Path

from gateway.claims import ClaimMaker, period_bounds
from gateway.config import ClaimsConfig
from gateway.outbox import Outbox, Row
from quartier import intervals
from quartier import reading as rd
from quartier.claim import decode_claim_message, verify_claim
from quartier.keys import GatewayKey

T0 = 1_718_928_000  # 2024-06-21T00:00:00Z


def test_daily_period_follows_local_midnight_and_dst() -> None:
    assert period_bounds(T0 + 3600, "daily", "UTC") == (T0, T0 + 86400)
    # Europe/Paris, 2024-03-31: clocks go forward, the day has 23 hours
    start, end = period_bounds(1_711_879_200, "daily", "Europe/Paris")
    assert end - start == 23 * 3600
    assert period_bounds(T0 + 5400, "hourly", "UTC") == (T0 + 3600, T0 + 7200)


def _signed_readings(key: GatewayKey) -> list[rd.SignedReading]:
    out: list[rd.SignedReading] = []
    head = rd.ChainHead()
    # two devices, one reading a minute each from 23:50 the day before to 01:10
    for minute in range(-10, 71):
        ts = (T0 + minute * 60) * 1000
        for dev, m in (("inverter", {"e_prod_wh": 10_000 + 50 * (minute + 10), "p_w": 3000}),
                       ("linky", {"e_imp_wh": 500_000 + 7 * (minute + 10),
                                  "e_exp_wh": 20_000 + 30 * (minute + 10)})):
            r = rd.next_reading(head, key.address, dev, ts, m)
            s = rd.sign(key.private, r)
            head = rd.ChainHead(r.seq, s.body_hash)
            out.append(s)
    return out


def test_claim_matches_the_shared_computation(tmp_path: Path) -> None:
    key = GatewayKey.generate()
    signed = _signed_readings(key)
    ob = Outbox(tmp_path / "o.sqlite", key.address)
    ob.commit([Row(s.reading.seq, s.reading.ts, s.reading.dev, s.envelope(), s.body)
               for s in signed], rd.ChainHead(signed[-1].reading.seq, signed[-1].body_hash))
    maker = ClaimMaker(ClaimsConfig(period="hourly", timezone="UTC"), key, "demo", grace_ms=60_000)
    assert maker.run(ob, T0 * 1000 + 59_000) == []  # not yet: the grace time
    made = maker.run(ob, (T0 + 3600) * 1000)  # 23:00-00:00 (partly covered) is due
    assert [c.claim.period_start for c in made] == [T0 - 3600]
    made = maker.run(ob, (T0 + 3600 + 61) * 1000)  # then 00:00-01:00; 01:00-02:00 is not
    assert [c.claim.period_start for c in made] == [T0]
    claim, sig = decode_claim_message(made[0].payload)
    verify_claim(claim, sig)
    readings = [s.reading for s in signed]
    chosen = intervals.select_period_readings(readings, T0, T0 + 3600)
    expected = intervals.gateway_period(chosen, T0, T0 + 3600)
    assert claim == expected.claim("demo", key.address, T0, T0 + 3600)
    assert (claim.produced_wh, claim.imported_wh, claim.exported_wh) == (3000, 420, 1800)
    assert [p for p, _ in ob.unsent_claims()] == [T0 - 3600, T0]
    assert maker.run(ob, (T0 + 3600 + 61) * 1000) == []  # a period is claimed once
