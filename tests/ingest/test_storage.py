"""Storage, registry, claims and intervals: the same tests on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from community import registry
from community.db import open_db, readings
from community.ingest import pipeline as pl
from community.ingest import store
from tests.ingest.ingest_helpers import COMMUNITY, T0_MS, Gw, enrol

TOPICS = pl.Topics(COMMUNITY)
NOW = T0_MS + 86_400_000


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/quartier.sqlite"
    else:
        url = request.getfixturevalue("postgres_url")
    eng = open_db(url)
    yield eng
    eng.dispose()


def ingest(engine, messages: list[tuple[str, bytes]]) -> store.BatchOutcome:
    with engine.connect() as conn:
        gws = store.load_gateways(conn)
    items = [(pl.Message(t, p), pl.classify(pl.Message(t, p), TOPICS, gws, NOW)) for t, p in messages]
    return store.commit_batch(engine, items, received=NOW)


def stats(engine) -> dict:
    with engine.connect() as conn:
        return store.stats(conn)


def test_migrations_are_idempotent_and_registry_works(engine):
    open_db(engine.url.render_as_string(hide_password=False))  # a second open: nothing to do
    with engine.begin() as conn:
        registry.add_member(conn, "alice", "Alice")
        with pytest.raises(registry.RegistryError, match="already exists"):
            registry.add_member(conn, "alice", "Alice again")
    a = Gw(1)
    with engine.begin() as conn:
        gw = registry.enrol_gateway(conn, a.address.lower(), "alice", "PRM-1", "production")
        assert gw.address == a.address  # stored checksummed
    with engine.begin() as conn, pytest.raises(registry.RegistryError, match="no member"):
        registry.enrol_gateway(conn, Gw(2).address, "bob", "PRM-2", "grid")
    with engine.begin() as conn, pytest.raises(registry.RegistryError, match="role"):
        registry.enrol_gateway(conn, Gw(2).address, "alice", "PRM-2", "battery")
    with engine.begin() as conn:
        registry.revoke_gateway(conn, a.address, "stolen")
        g = registry.get_gateway(conn, a.address)
        assert g is not None and g.revoked and g.revoked_reason == "stolen"
    out = ingest(engine, [(a.topic(), a.next().envelope())])
    assert [r.reason for r in out.rejected] == ["revoked"]


def test_store_is_idempotent_and_finds_forks_gaps_and_backwards_counters(engine):
    a, b = Gw(1), Gw(2)
    enrol(engine, [a, b])
    rs = a.chain(10)
    out = ingest(engine, [(a.topic(), s.envelope()) for s in rs[:4]])
    assert len(out.accepted) == 4
    # Redelivery of the same batch: a no-op, counted.
    out = ingest(engine, [(a.topic(), s.envelope()) for s in rs[:4]])
    assert out.duplicates == 4 and not out.accepted
    # Reordered: seq 7 before 5 and 6 -> a visible gap, closed when they arrive.
    ingest(engine, [(a.topic(), rs[6].envelope())])
    st = stats(engine)
    assert st["gaps"] == 2 and st["gap_ranges"] == [
        {"gateway": a.address, "from_seq": 5, "to_seq": 6, "missing": 2}]
    ingest(engine, [(a.topic(), rs[5].envelope()), (a.topic(), rs[4].envelope())])
    assert stats(engine)["gaps"] == 0
    # A fork of seq 8 stored first in another batch: the real 8 is refused, and so is the
    # fork of an already stored seq.
    fork = Gw(1)
    fork.head = a.head.__class__(7, rs[6].body_hash)
    f8 = fork.next(m={"e_imp_wh": 5000, "p_w": 1})
    assert ingest(engine, [(a.topic(), f8.envelope())]).accepted
    out = ingest(engine, [(a.topic(), rs[7].envelope())])
    assert [r.reason for r in out.rejected] == ["fork"]
    # Counters going backwards against the stored neighbours.
    b1 = b.next(m={"e_imp_wh": 100})
    b2 = b.next(m={"e_imp_wh": 90})
    out = ingest(engine, [(b.topic(), b1.envelope()), (b.topic(), b2.envelope())])
    assert [r.reason for r in out.rejected] == ["counter_backwards"]
    st = stats(engine)
    assert st["accepted"] == 9 and st["duplicates"] == 4
    assert st["quarantined_by_reason"] == {"counter_backwards": 1, "fork": 1}
    with engine.connect() as conn:
        q = store.quarantined(conn, "fork")
        assert q[0]["gw"] == a.address and q[0]["seq"] == 8
        stored = conn.execute(sa.select(readings.c.body).where(readings.c.gw == a.address,
                                                                readings.c.seq == 8)).scalar_one()
    assert stored.encode() == f8.body  # the data accepted first is untouched


def test_claims_verified_pending_and_mismatched(engine):
    a, b, c = Gw(1), Gw(2), Gw(3)
    enrol(engine, [a, b, c])
    start = T0_MS // 1000
    end = start + 3600
    for g in (a, b, c):
        g.chain(70)  # one reading a minute: past the end of the hour
    ingest(engine, [(a.topic(), s.envelope()) for s in a.sent])
    ingest(engine, [(b.topic(), s.envelope()) for s in b.sent[:30]])  # the rest comes later
    ingest(engine, [(c.topic(), s.envelope()) for s in c.sent])
    out = ingest(engine, [(a.topic("claim"), a.claim(start, end)),
                          (b.topic("claim"), b.claim(start, end)),
                          (c.topic("claim"), c.claim(start, end, tamper=+50))])
    assert [x.gateway for x in out.claims_verified] == [a.address]
    assert [x.gateway for x in out.claims_pending] == [b.address]
    [rej] = out.rejected
    assert rej.reason == "claim_mismatch"
    diff = json.loads(rej.detail.split(": ", 1)[1])
    assert diff["imported_wh"]["difference"] == 50
    # Redelivered claim: duplicate; a different claim for the same period: conflict.
    out = ingest(engine, [(a.topic("claim"), a.claim(start, end)),
                          (a.topic("claim"), a.claim(start, end, tamper=1))])
    assert out.duplicates == 1 and [r.reason for r in out.rejected] == ["claim_conflict"]
    ingest(engine, [(b.topic(), s.envelope()) for s in b.sent[30:]])
    assert store.recheck_pending_claims(engine)["verified"] == 1
    with engine.connect() as conn:
        claims = store.period_claims(conn, start, end)
    assert sorted(x.claim.gateway for x in claims) == sorted([a.address, b.address])
    assert all(x.status == "verified" for x in claims)


def test_meter_point_intervals_and_live_totals(engine):
    a = Gw(1)
    enrol(engine, [a], role="production")
    # One reading a minute, 10 Wh a minute produced: 150 Wh per 15 minutes.
    for k in range(61):
        a.next(dev="inverter", ts=T0_MS + 60_000 * k, m={"e_prod_wh": 10 * k, "p_w": 600})
    ingest(engine, [(a.topic(), s.envelope()) for s in a.sent])
    start = T0_MS // 1000
    with engine.connect() as conn:
        ivs = store.meter_point_intervals(conn, "mp-1", start, start + 3600)
        live = store.live_totals(conn, T0_MS + 60 * 60_000)
        everything = store.all_intervals(conn, start, start + 3600)
    assert [iv.produced_wh for iv in ivs] == [150, 150, 150, 150]
    assert {iv.quality for iv in ivs} == {"measured"}
    assert live["production_w"] == 600 and live["gateways_reporting"] == 1
    assert everything["mp-1"][0] == "production"
