"""`quartier demo --headless` end to end, both ways: embedded defaults, and a real
Mosquitto + PostgreSQL + anvil. Every figure of the summary must be consistent with the
database and the chain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from community.chain import devnet
from community.db import claims, open_db, readings
from community.settlement import schema

HOMES, HOURS = 3, 6


def run_demo(tmp: Path, *extra: str) -> tuple[dict[str, Any], str]:
    r = subprocess.run(
        [sys.executable, "-m", "quartier.cli", "demo", "--headless", "--homes", str(HOMES),
         "--hours", str(HOURS), "--speed", "0", "--data-dir", str(tmp / "demo"), *extra],
        capture_output=True, text=True, timeout=400,
    )
    assert r.returncode == 0, f"demo failed: {r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


def check_consistent(summary: dict[str, Any], database_url: str) -> None:
    assert summary["homes"] == HOMES
    assert summary["readings"] > 0 and summary["production_wh"] > 0
    assert summary["production_wh"] == (summary["self_consumed_wh"] + summary["shared_locally_wh"]
                                        + summary["grid_export_wh"])
    assert summary["self_consumed_wh"] >= 0
    assert summary["chain_equals_sql"] is True
    assert summary["certificate_verified"] is True
    engine = open_db(database_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(readings)).scalar_one()
        assert stored == summary["readings"]
        periods = conn.execute(sa.select(schema.settle_periods)).all()
        assert len(periods) == HOURS and all(p.status == "settled" and p.reconciled for p in periods)
        verified = conn.execute(sa.select(claims).where(claims.c.status == "verified")).all()
        assert {c.period_start for c in verified} >= {p.period_start for p in periods}
        credited = conn.execute(sa.select(sa.func.sum(schema.settle_entries.c.amount)).where(
            schema.settle_entries.c.unit == "KWH", schema.settle_entries.c.amount > 0)).scalar_one()
        assert int(credited or 0) == summary["kwh_settled"]
        # The energy bought in the market is an Exchange trade: its kWh leg is on chain too.
        from community.app import tables as app_tables

        kwh_traded = conn.execute(sa.select(app_tables.entries).where(
            app_tables.entries.c.unit == "KWH", app_tables.entries.c.reason == "trade")).all()
        assert len(kwh_traded) == 2 and all(r.tx_hash for r in kwh_traded)
        # The standing donation was signed on the ledger, and what settlement gave is what
        # the ledger executed (each gift checked against the order).
        (order,) = conn.execute(sa.select(app_tables.donation_orders)).all()
        assert order.chain_order is not None
    assert summary["donated_wh"] > 0 and summary["donated_on_chain_wh"] == summary["donated_wh"]
    engine.dispose()


def test_demo_embedded(tmp_path: Path) -> None:
    summary, log = run_demo(tmp_path)
    assert "in-process EVM" in log and "#####" in log  # the progress bar
    check_consistent(summary, f"sqlite:///{tmp_path / 'demo' / 'quartier.sqlite'}")


def test_demo_on_real_services(tmp_path: Path, mosquitto, postgres_url: str) -> None:
    node = devnet.start()
    try:
        summary, log = run_demo(tmp_path, "--mqtt-url", mosquitto.url, "--database-url", postgres_url,
                                "--rpc-url", node.url)
    finally:
        node.stop()
    assert f"node {node.url}" in log
    check_consistent(summary, postgres_url)


def test_a_terminated_demo_leaves_no_process_behind(tmp_path: Path) -> None:
    import os
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "quartier.cli", "demo", "--headless", "--homes", "2", "--hours", "24",
         "--speed", "0", "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until the homes' processes run
        if "gateways and their simulators started" in line:
            break
    children = [int(p) for p in subprocess.run(
        ["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True).stdout.split()]
    assert children, "the demo started no gateway"
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    time.sleep(0.5)
    alive = []
    for pid in children:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    assert not alive, f"processes left behind: {alive}"
