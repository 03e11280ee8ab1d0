"""The outbox on a real SQLite file: chain head and readings in one transaction, deletes
after PUBACK, thinning that keeps one reading per device per 15 minutes."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.outbox import KEEP_INTERVAL_MS, Outbox, OutboxError, Row
from quartier.reading import GENESIS_PREV, ChainHead

GW = "0x" + "11" * 20


def rows(first: int, n: int, ts0: int = 0, step_ms: int = 1000, dev: str = "inv") -> list[Row]:
    return [Row(s, ts0 + (s - first) * step_ms, dev, b"payload-%d" % s, b"body-%d" % s)
            for s in range(first, first + n)]


def test_head_and_rows_survive_reopen(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", GW)
    assert ob.head == ChainHead(0, GENESIS_PREV)
    ob.commit(rows(1, 5), ChainHead(5, "ab" * 32))
    ob.close()
    ob = Outbox(tmp_path / "o.sqlite", GW)
    assert ob.head == ChainHead(5, "ab" * 32) and ob.depth == 5
    assert [s for s, _ in ob.pending(0, 100)] == [1, 2, 3, 4, 5]
    assert ob.pending(3, 100) == [(4, b"payload-4"), (5, b"payload-5")]


def test_deletes_only_acknowledged(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", GW)
    ob.commit(rows(1, 10), ChainHead(10, "cd" * 32))
    ob.commit(rows(11, 2), ChainHead(12, "ef" * 32), acked=[3, 1, 2, 7, 7])
    assert ob.depth == 8
    assert [s for s, _ in ob.pending(0, 100)] == [4, 5, 6, 8, 9, 10, 11, 12]
    assert ob.stats().oldest_seq == 4 and ob.stats().last_seq == 12


def test_other_gateways_outbox_is_refused(tmp_path: Path) -> None:
    Outbox(tmp_path / "o.sqlite", GW).close()
    with pytest.raises(OutboxError, match="holds the chain of gateway"):
        Outbox(tmp_path / "o.sqlite", "0x" + "22" * 20)


def test_thinning_keeps_first_reading_of_each_interval(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", GW, max_readings=100)
    # 4 hours of one reading a minute: 240 readings, 16 intervals of 15 minutes
    ob.commit(rows(1, 240, step_ms=60_000), ChainHead(240, "aa" * 32))
    assert ob.depth <= 100 and ob.thinned == 240 - ob.depth
    kept = [s for s, _ in ob.pending(0, 1000)]
    ts = {s: (s - 1) * 60_000 for s in kept}
    intervals = {ts[s] // KEEP_INTERVAL_MS for s in kept}
    assert intervals == set(range(16))  # every interval still has its first reading
    assert kept[-1] == 240  # the newest readings are the last to go
    firsts = [s for s in range(1, 241) if (s - 1) % 15 == 0]
    assert set(firsts) <= set(kept)
    # the energy rows for claims are never thinned
    assert len(ob.energy_rows(0, 10**12)) == 240


def test_claims_are_stored_and_marked_sent(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", GW)
    ob.add_claim(0, 86400, b"claim-0")
    ob.add_claim(0, 86400, b"other")  # a period is never signed twice
    assert ob.unsent_claims() == [(0, b"claim-0")]
    ob.claim_acked([0])
    assert ob.unsent_claims() == [] and ob.last_claim_end() == 86400
