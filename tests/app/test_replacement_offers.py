"""After a replacement, exchange offers signed by the old (frozen) key are withdrawn, to be
published again; the member's other offers stay open. On the in-process EVM."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from community.app import exchange_trades, replacement, services
from community.app import tables as t
from community.app.ledger_ops import LedgerOps
from community.chain.client import ChainClient
from community.chain.suite import deploy_suite
from tests.app.test_exchange_trades import _publish, make_world


def test_exchange_offers_signed_by_the_old_key_are_withdrawn(tmp_path: Path) -> None:
    chain = ChainClient()
    chain.deploy("replacement-offers-test")
    suite = deploy_suite(chain)
    w = make_world(tmp_path, chain, suite)
    energy = _publish(w, "carol", 5_000)
    with w.engine.begin() as conn:
        hours = services.create_offer(conn, "carol", "hours", "Bike repairs", 200, 0, relayer=w.relayer)
        assert exchange_trades.signed_offers(conn, energy)
    suite.recovery.set_delay(0)
    ops = LedgerOps(chain, w.relayer.custody, suite)
    with w.engine.begin() as conn:
        replacement.request(conn, "carol", 0, by_board=True, ops=ops)
        assert replacement.execute(conn, "carol", 0, by="board1", ops=ops)["status"] == "executed"
    assert chain.is_frozen(w.addresses["carol"])
    with w.engine.connect() as conn:
        assert exchange_trades.signed_offers(conn, energy) == {}
        status = dict(conn.execute(sa.select(t.offers.c.id, t.offers.c.status)).all())
    assert status == {energy: "closed", hours: "open"}
