"""A neighbourhood's month, settled the way production settles it: signed readings and
checked claims in SQL, one batch per day on the ledger contract (embedded EVM).

Homes (Wh per 15 minutes, interval k of the day, day d):
- alice: a grid meter exporting 200 + 10 d at midday (k 40-55) and importing 30 otherwise,
  and an inverter meter producing 260 + 10 d at midday; a standing order gives 10 % of
  her export to carol;
- erin: a grid meter only, exporting 80 and importing 20 in the same intervals (k 44-51,
  netted at the meter), importing 40 otherwise;
- bob imports 100, carol 60 + k mod 7, all day;
- dave imports 50 but sends his claim on the first day only (carried afterwards).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coincurve import PrivateKey
from sqlalchemy.engine import Engine

from community import registry
from community.chain.client import ChainClient
from community.chain.orders import StandingOrdersClient
from community.db import claims, open_db, readings
from community.settlement.netting import StandingOrder
from community.settlement.run import SettleOptions, link_account, period_bounds, settle_period
from quartier import reading as rd
from quartier.claim import sign_claim
from quartier.intervals import gateway_period
from quartier.signing import address_of

STEP = 900
DAYS = ("2024-06-03", "2024-06-04", "2024-06-05")
LATE_DAY = "2024-06-06"  # settled only after the final run, in the credit note test

Profile = Callable[[int, int], tuple[int, int, int]]  # (day, k) -> (export, import, produced)


def _midday(k: int) -> bool:
    return 40 <= k < 56


METERS: dict[str, list[tuple[str, str, Profile]]] = {
    "alice": [
        ("grid", "14000000000001", lambda d, k: (200 + 10 * d, 0, 0) if _midday(k) else (0, 30, 0)),
        ("production", "14000000000011", lambda d, k: (0, 0, 260 + 10 * d if _midday(k) else 0)),
    ],
    "bob": [("grid", "14000000000002", lambda d, k: (0, 100, 0))],
    "carol": [("grid", "14000000000003", lambda d, k: (0, 60 + k % 7, 0))],
    "dave": [("grid", "14000000000004", lambda d, k: (0, 50, 0))],
    "erin": [("grid", "14000000000005", lambda d, k: (80, 20, 0) if 44 <= k < 52 else (0, 40, 0))],
}
NAMES = {"alice": "Alice Martin", "bob": "Bob Durand", "carol": "Carol Petit",
         "dave": "Dave Roux", "erin": "Erin Blanc"}
ORDERS = (StandingOrder("alice", "carol", share_bp=1000),)  # signed on chain by alice (build_month)


def _key(member: str, n: int) -> PrivateKey:
    return PrivateKey(bytes([sorted(METERS).index(member) * 4 + n + 1]) * 32)


@dataclass
class Month:
    url: str
    engine: Engine
    chain: ChainClient

    def settle(self, day: str) -> dict[str, object]:
        start, end = period_bounds(day)
        d = (*DAYS, LATE_DAY).index(day)
        for member, meters in METERS.items():
            for n, (_, _, profile) in enumerate(meters):
                _store_day(self.engine, _key(member, n), start, end, d, profile,
                           claim=member != "dave" or d == 0)
        result = settle_period(self.engine, start, end, client=self.chain, options=SettleOptions())
        assert result["status"] == "settled" and result["reconciled"] is True, result
        return result


def _store_day(engine, key: PrivateKey, start: int, end: int, day: int, profile: Profile, claim: bool) -> None:
    gw = address_of(key)
    head = rd.ChainHead()
    with engine.connect() as conn:
        last = conn.execute(
            readings.select().where(readings.c.gw == gw).order_by(readings.c.seq.desc()).limit(1)
        ).first()
    exp = imp = prod = 0
    if last is not None:
        head = rd.ChainHead(last.seq, last.hash)
        exp, imp, prod = last.e_exp_wh, last.e_imp_wh, last.e_prod_wh
    rows, signed = [], []
    for k in range(97):
        if k < 96:
            e, i, p = profile(day, k)
        if k == 0 and last is not None:  # the previous day's last reading opens this day
            exp, imp, prod = exp + e, imp + i, prod + p
            continue
        r = rd.next_reading(head, gw, "meter", (start + k * STEP) * 1000,
                            {"e_imp_wh": imp, "e_exp_wh": exp, "e_prod_wh": prod})
        s = rd.sign(key, r)
        head = rd.ChainHead(r.seq, s.body_hash)
        signed.append(r)
        rows.append({"gw": gw, "seq": r.seq, "dev": r.dev, "ts": r.ts, "prev": r.prev,
                     "hash": s.body_hash, "body": s.body.decode(), "sig": s.sig, "e_imp_wh": imp,
                     "e_exp_wh": exp, "e_prod_wh": prod, "received_at": r.ts})
        if k < 96:
            exp, imp, prod = exp + e, imp + i, prod + p
    if last is not None:
        with engine.connect() as conn:
            prev = conn.execute(readings.select().where(readings.c.gw == gw, readings.c.seq == last.seq)).first()
        signed.insert(0, rd.decode(prev.body.encode()))
    totals = gateway_period(signed, start, end, STEP)
    c = totals.claim("test", gw, start, end)
    with engine.begin() as conn:
        conn.execute(readings.insert(), rows)
        if claim:
            conn.execute(claims.insert().values(
                gw=gw, period_start=start, period_end=end, community="test",
                first_seq=c.first_seq, last_seq=c.last_seq, imported_wh=c.imported_wh,
                exported_wh=c.exported_wh, produced_wh=c.produced_wh,
                intervals_root="0x" + c.intervals_root.hex(), sig=sign_claim(key, c), message="{}",
                status="verified", detail="", received_at=0, checked_at=0))


def build_month(path: Path, days: tuple[str, ...] = DAYS) -> Month:
    url = f"sqlite:///{path}"
    engine = open_db(url)
    chain = ChainClient()
    chain.deploy("test")
    with engine.begin() as conn:
        for i, (member, meters) in enumerate(sorted(METERS.items())):
            registry.add_member(conn, member, NAMES[member], now_ms=0)
            account = address_of(PrivateKey(bytes([i + 0x50]) * 32))
            link_account(conn, member, account)
            chain.register_member(account)
            for n, (role, mp, _) in enumerate(meters):
                gw = address_of(_key(member, n))
                registry.enrol_gateway(conn, gw, member, mp, role, active_from_ms=0)
                chain.register_meter_point(mp, account)
                chain.register_gateway(gw, account, mp, active_from=period_bounds(DAYS[0])[0])
    orders = StandingOrdersClient.deploy_for(chain)
    accounts = {m: PrivateKey(bytes([i + 0x50]) * 32) for i, m in enumerate(sorted(METERS))}
    for o in ORDERS:
        orders.set(orders.sign_set(accounts[o.donor], address_of(accounts[o.donor]),
                                   address_of(accounts[o.beneficiary]), wh=o.wh, share_bp=o.share_bp))
    month = Month(url, engine, chain)
    for day in days:
        month.settle(day)
    return month


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
