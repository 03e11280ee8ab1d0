"""A small simulated neighbourhood in SQLite, and the app served on a free port (thread).

Four homes, two with panels. Every gateway signs a reading at each 15-minute boundary
(so the SQL checks in the tests can read interval energy straight off the registers).
Day 1 is complete, claimed by every gateway and settled on a ledger deployed on the
in-process EVM, so balances, statements and certificates exist; day 2 runs until noon and
is the "today" of the home page.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from coincurve import PrivateKey

from community import registry
from community.app import sessions
from community.db import claims, open_db, readings
from quartier import reading as rd
from quartier.claim import sign_claim
from quartier.intervals import gateway_period
from quartier.signing import address_of

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "app"
STEP = 900
DAY1 = 1781913600  # 2026-06-20 00:00 UTC
DAY2 = DAY1 + 86_400
NOON2 = DAY2 + 12 * 3600
COMMUNITY = "rue-des-lilas"
PASSWORD = "correct horse battery"

# member -> (name, has panels, peak PV Wh per 15 min, base load Wh per 15 min)
HOMES = {
    "alice": ("Alice", True, 1000, 90),
    "bruno": ("Bruno", False, 0, 120),
    "chloe": ("Chloé", True, 700, 80),
    "david": ("David", False, 0, 150),
}
BOARD = ("chloe",)
OPERATOR = "enedis"


def pv_wh(peak: int, k: int) -> int:
    """PV energy of the k-th quarter hour of a day: a sine from 06:00 to 20:00."""
    hour = (k % 96) / 4 + 0.125
    if not 6 <= hour <= 20:
        return 0
    return int(peak * math.sin(math.pi * (hour - 6) / 14))


def load_wh(base: int, k: int) -> int:
    hour = (k % 96) / 4
    bump = 1.6 if 7 <= hour < 8.5 or 18.5 <= hour < 21.5 else 0.0
    return int(base * (1 + bump)) + (k * 7) % 13


@dataclass
class Home:
    member: str
    meter_point: str
    gateway: str
    key: PrivateKey


def _key(i: int) -> PrivateKey:
    return PrivateKey(bytes([i + 11]) * 32)


def _signed_rows(home: Home, peak: int, base: int, quarters: int) -> tuple[list[dict[str, Any]], list[rd.Reading]]:
    """Readings of the home's devices at every boundary: the grid meter (import/export) and,
    with panels, the inverter (production)."""
    head = rd.ChainHead()
    rows: list[dict[str, Any]] = []
    chain: list[rd.Reading] = []
    imp = exp = prod = 0
    for k in range(quarters + 1):
        ts = (DAY1 + k * STEP) * 1000
        devices: list[tuple[str, dict[str, int]]] = [("meter", {"e_imp_wh": imp, "e_exp_wh": exp})]
        if peak:
            devices.append(("inverter", {"e_prod_wh": prod}))
        for dev, m in devices:
            r = rd.next_reading(head, home.gateway, dev, ts, m)
            s = rd.sign(home.key, r)
            head = rd.ChainHead(r.seq, s.body_hash)
            chain.append(r)
            rows.append({"gw": home.gateway, "seq": r.seq, "dev": dev, "ts": ts, "prev": r.prev,
                         "hash": s.body_hash, "body": s.body.decode(), "sig": s.sig,
                         "e_imp_wh": m.get("e_imp_wh"), "e_exp_wh": m.get("e_exp_wh"),
                         "e_prod_wh": m.get("e_prod_wh"), "received_at": ts})
        pv, load = pv_wh(peak, k), load_wh(base, k)
        prod += pv
        imp += max(load - pv, 0)
        exp += max(pv - load, 0)
    return rows, chain


def seed(url: str, chain: Any | None) -> dict[str, Home]:
    """Registry, readings, day-1 claims, accounts; day 1 settled on `chain` if given."""
    from community.app import services
    from community.settlement.run import link_account, settle_period

    engine = open_db(url)
    services.init_app_tables(engine)
    homes: dict[str, Home] = {}
    quarters = (NOON2 - DAY1) // STEP
    for i, (member, (name, panels, peak, base)) in enumerate(HOMES.items()):
        key = _key(i)
        home = Home(member, f"3000000000{i:04d}", address_of(key), key)
        homes[member] = home
        rows, chain_readings = _signed_rows(home, peak, base, quarters)
        day1 = [r for r in chain_readings if r.ts <= DAY2 * 1000]
        totals = gateway_period(day1, DAY1, DAY2, STEP)
        claim = totals.claim(COMMUNITY, home.gateway, DAY1, DAY2)
        with engine.begin() as conn:
            registry.add_member(conn, member, name, now_ms=0)
            registry.enrol_gateway(conn, home.gateway, member, home.meter_point,
                                   "production" if panels else "grid", active_from_ms=0)
            conn.execute(readings.insert(), rows)
            conn.execute(claims.insert().values(
                gw=home.gateway, period_start=DAY1, period_end=DAY2, community=COMMUNITY,
                first_seq=claim.first_seq, last_seq=claim.last_seq, imported_wh=claim.imported_wh,
                exported_wh=claim.exported_wh, produced_wh=claim.produced_wh,
                intervals_root="0x" + claim.intervals_root.hex(), sig=sign_claim(key, claim),
                message="{}", status="verified", detail="", received_at=0, checked_at=0))
    with engine.begin() as conn:
        sessions.ensure_member_accounts(conn, PASSWORD, now=int(time.time()), board=BOARD, operator=OPERATOR)
    if chain is not None:
        for i, home in enumerate(homes.values()):
            account = address_of(PrivateKey(bytes([i + 0x60]) * 32))
            with engine.begin() as conn:
                link_account(conn, home.member, account)
            chain.register_member(account)
            chain.register_meter_point(home.meter_point, account)
            chain.register_gateway(home.gateway, account, home.meter_point, active_from=DAY1)
        result = settle_period(engine, DAY1, DAY2, client=chain)
        assert result["status"] == "settled", result
    engine.dispose()
    return homes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    database_url: str
    homes: dict[str, Home]
    chain: Any
    engine: sa.Engine


class _Server:
    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("the app did not start within 20 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


