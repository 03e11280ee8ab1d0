"""Ingest through a real Mosquitto: hostile messages, shared subscriptions, a killed worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import sqlalchemy as sa

from community.db import open_db, readings
from community.ingest import store
from community.ingest.config import IngestConfig, MqttConfig
from community.ingest.runner import IngestWorker
from quartier import reading as rd
from quartier.signing import sign_personal
from tests.ingest.ingest_helpers import (
    COMMUNITY,
    T0_MS,
    Gw,
    Subscriber,
    enrol,
    prime_session,
    publish,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]


def _stats(engine) -> dict:
    with engine.connect() as conn:
        return store.stats(conn)


def _processed(st: dict) -> int:
    return st["accepted"] + st["duplicates"] + st["quarantined"]


def test_hostile_messages_are_quarantined_with_their_reason(mosquitto, tmp_path):
    engine = open_db(f"sqlite:///{tmp_path}/q.sqlite")
    recent = store.now_ms() - 12 * 60_000  # live totals look at the last 5 minutes
    a, b, stranger = Gw(1, base_ms=recent), Gw(2, base_ms=recent + 7 * 60_000), Gw(3)
    enrol(engine, [a, b], role="production")
    good_a = a.chain(12, dev="inverter")
    good_b = b.chain(5)
    forged = sign_personal(stranger.key, good_a[0].body)  # a's body, signed by another key
    fork = Gw(1, base_ms=recent)
    fork.head = rd.ChainHead(4, good_a[3].body_hash)
    fork5 = fork.next(dev="inverter", m={"e_imp_wh": 1, "p_w": 1})
    back = Gw(1, base_ms=recent)
    back.head = a.head
    backwards = back.next(dev="inverter", m={"e_imp_wh": 3, "e_exp_wh": 3, "p_w": 1})
    msgs = [(a.topic(), s.envelope()) for s in good_a[:10]]  # 1..10
    msgs += [(a.topic(), good_a[11].envelope()), (a.topic(), good_a[10].envelope())]  # reordered
    msgs += [(b.topic(), s.envelope()) for s in good_b]
    hostile = {
        "signature_mismatch": [(a.topic(), rd.encode_envelope(good_a[0].body, forged))],
        "topic_mismatch": [(b.topic(), good_a[1].envelope())],  # b re-publishing a's reading
        "fork": [(a.topic(), fork5.envelope())],
        "counter_backwards": [(a.topic(), backwards.envelope())],
        "float": [(a.topic(), rd.encode_envelope(good_a[2].body.replace(b'"p_w":250', b'"p_w":2.5e2'),
                                                 good_a[2].sig))],
        "oversized": [(a.topic(), b"x" * 70_000)],
        "bad_envelope": [(a.topic(), b'{"r": "{}", "sig": 12}'), (b.topic(), b"\xff\xfe")],
        "unknown_gateway": [(stranger.topic(), stranger.next().envelope())],
    }
    replays = [(a.topic(), s.envelope()) for s in good_a[:3]]
    for extra in hostile.values():
        msgs += extra
    msgs += replays
    cfg = IngestConfig(community=COMMUNITY, client_id="ingest-hostile", live_every_s=0.2,
                       mqtt=MqttConfig(url=mosquitto.url))
    prime_session(mosquitto.port, cfg.client_id)
    live = Subscriber(mosquitto.port, f"quartier/{COMMUNITY}/live")
    publish(mosquitto.port, msgs)
    worker = IngestWorker(cfg, engine)
    stop = threading.Event()
    t = threading.Thread(target=worker.run, kwargs={"until": stop.is_set})
    t.start()
    try:
        wait_for(lambda: _processed(_stats(engine)) == len(msgs), what="every message handled")
        wait_for(lambda: any(json.loads(m.payload).get("gateways_reporting") for m in live.messages),
                 what="live totals")
    finally:
        stop.set()
        t.join(30)
        live.close()
    st = _stats(engine)
    assert st["accepted"] == 17 and st["duplicates"] == 3 and st["gaps"] == 0
    assert st["quarantined_by_reason"] == {k: len(v) for k, v in hostile.items()}
    with engine.connect() as conn:
        stored = {(r.gw, r.seq): r.body for r in conn.execute(sa.select(readings.c.gw, readings.c.seq, readings.c.body))}
    assert stored == {(s.reading.gw, s.reading.seq): s.body.decode() for s in good_a + good_b}
    assert live.messages[-1].retain or len(live.messages) > 1
    assert json.loads(live.messages[-1].payload)["production_w"] == 500  # 250 W from each


def _write_config(tmp_path: Path, name: str, broker_url: str, db_url: str) -> Path:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(f'[ingest]\ncommunity = "{COMMUNITY}"\nclient_id = "{name}"\nbatch = 100\n'
                   f'live_every = "0s"\ndatabase_url = "{db_url}"\n[mqtt]\nurl = "{broker_url}"\n')
    return cfg


def _start_worker(cfg: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "quartier.cli", "ingest", "run", "--config", str(cfg)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop(p: subprocess.Popen[bytes]) -> str:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    return err.decode(errors="replace")


def _readings_for(gws: list[Gw], k0: int, n: int) -> list[tuple[str, bytes]]:
    msgs = []
    for k in range(k0, k0 + n):
        for g in gws:
            dev = "inverter" if k % 2 else "meter"
            m = {"e_prod_wh": 10 * k, "p_w": 700} if dev == "inverter" else {"e_imp_wh": 7 * k, "p_w": 80}
            msgs.append((g.topic(), g.next(dev=dev, ts=T0_MS + 1000 * k, m=m).envelope()))
    return msgs


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(readings)).scalar_one()


def test_two_workers_split_the_stream_and_a_killed_one_loses_nothing(mosquitto, tmp_path):
    db_url = f"sqlite:///{tmp_path}/shared.sqlite"
    engine = open_db(db_url)
    gws = [Gw(10 + i) for i in range(8)]
    enrol(engine, gws)
    first = _readings_for(gws, 0, 150)  # 1200 readings
    second = _readings_for(gws, 150, 250)  # 2000 more, continuing each chain
    cfgs = [_write_config(tmp_path, f"ingest-{i}", mosquitto.url, db_url) for i in (1, 2)]
    for i in (1, 2):
        prime_session(mosquitto.port, f"ingest-{i}")
    workers = [_start_worker(c) for c in cfgs]
    try:
        publish(mosquitto.port, first)
        wait_for(lambda: _count(engine) == len(first), 60, "the first part stored")
        # Kill worker 1 mid-stream (no chance to finish a batch or to ack), restart it later.
        pub = threading.Thread(target=publish, args=(mosquitto.port, second, "pub-2"))
        pub.start()
        wait_for(lambda: _count(engine) > len(first) + 200, 60, "the second part flowing")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        pub.join(60)
        workers[0] = _start_worker(cfgs[0])
        total = len(first) + len(second)
        wait_for(lambda: _count(engine) == total, 60, "every reading stored")
    finally:
        errs = [_stop(w) for w in workers]
    # Worker 2 ran throughout and stopped cleanly: it stored part of the stream, not all.
    survivor = json.loads(errs[1].strip().splitlines()[-1])
    assert 0 < survivor["accepted"] < total, survivor
    st = _stats(engine)
    assert st["accepted"] == total and st["gaps"] == 0 and st["quarantined"] == 0, st
    with engine.connect() as conn:
        per_gw = dict(conn.execute(sa.select(readings.c.gw, sa.func.max(readings.c.seq)).group_by(readings.c.gw)).all())
    assert per_gw == {g.address: 400 for g in gws}


def test_embedded_broker_without_shared_subscriptions(tmp_path):
    from community.broker import EmbeddedBroker

    broker = EmbeddedBroker().start()
    engine = open_db(f"sqlite:///{tmp_path}/e.sqlite")
    a = Gw(1)
    enrol(engine, [a])
    cfg = IngestConfig(community=COMMUNITY, client_id="ingest-embedded", group="", live_every_s=0,
                       mqtt=MqttConfig(url=broker.url))
    worker = IngestWorker(cfg, engine)
    stop = threading.Event()
    t = threading.Thread(target=worker.run, kwargs={"until": stop.is_set})
    t.start()
    try:
        wait_for(lambda: worker.subscribed, what="subscribed on amqtt")
        publish(broker.port, [(a.topic(), s.envelope()) for s in a.chain(50)])
        wait_for(lambda: _count(engine) == 50, what="50 readings stored")
    finally:
        stop.set()
        t.join(30)
        broker.stop()
