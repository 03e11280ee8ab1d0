"""Export to a real server speaking the InfluxDB v2 write API (VictoriaMetrics, from Debian)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from community.db import open_db
from community.ingest import pipeline as pl
from community.ingest import store
from community.ingest.config import InfluxConfig
from community.ingest.influx import InfluxExporter
from tests.ingest.ingest_helpers import COMMUNITY, T0_MS, Gw, enrol
from tests.support import free_port, wait_port


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("victoria-metrics")
    if not exe:
        pytest.fail("victoria-metrics is not installed: apt-get install victoria-metrics")
    port = free_port()
    # Test data is dated 2023: keep everything (the default retention is one month).
    p = subprocess.Popen([exe, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={tmp_path}/vm",
                          "-retentionPeriod=100y", "-loggerLevel=ERROR"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 20)
        yield f"http://127.0.0.1:{port}"
    finally:
        p.terminate()
        p.wait(10)


def _export(base: str, match: str) -> list[dict]:
    urllib.request.urlopen(f"{base}/internal/force_flush").read()
    q = urllib.parse.quote(match)
    with urllib.request.urlopen(f"{base}/api/v1/export?match[]={q}") as r:
        return [json.loads(line) for line in r.read().decode().splitlines() if line]


def test_readings_and_intervals_reach_influx(victoria, tmp_path):
    engine = open_db(f"sqlite:///{tmp_path}/x.sqlite")
    a = Gw(1)
    enrol(engine, [a], role="production")
    for k in range(31):
        a.next(dev="inverter", ts=T0_MS + 60_000 * k, m={"e_prod_wh": 10 * k, "p_w": 600 + k})
    with engine.connect() as conn:
        gws = store.load_gateways(conn)
    msgs = [pl.Message(a.topic(), s.envelope()) for s in a.sent]
    out = store.commit_batch(engine, [(m, pl.classify(m, pl.Topics(COMMUNITY), gws, T0_MS + 10**8)) for m in msgs])
    exporter = InfluxExporter(InfluxConfig(url=victoria, org="quartier", bucket="quartier"), engine, 900)
    exporter.on_commit(out)
    exporter.close()
    power = _export(victoria, '{__name__="reading_p_w"}')
    assert len(power) == 1
    assert power[0]["metric"]["gateway"] == a.address and power[0]["metric"]["meter_point"] == "mp-1"
    assert power[0]["values"] == [600 + k for k in range(31)]
    assert power[0]["timestamps"][0] == T0_MS
    produced = _export(victoria, '{__name__="interval_produced_wh", quality="measured"}')
    start = T0_MS // 1000
    got = dict(zip(produced[0]["timestamps"], produced[0]["values"], strict=True))
    assert got[start * 1000] == 150 and got[(start + 900) * 1000] == 150


def test_grafana_dashboard_reads_what_ingest_writes():
    dash = json.loads((Path(__file__).resolve().parents[2] / "deploy/grafana/quartier-ingest.json").read_text())
    queries = [t["query"] for p in dash["panels"] for t in p["targets"]]
    assert queries and all('r._measurement == "reading"' in q or 'r._measurement == "interval"' in q
                           for q in queries)
    fields = {"p_w", "produced_wh", "imported_wh", "exported_wh"}
    assert all(any(f'"{f}"' in q for f in fields) for q in queries)
