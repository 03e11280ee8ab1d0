"""The members, gateways, ingest and intervals commands on a SQLite file."""

from __future__ import annotations

import json
from typing import Any

import typer
from typer.testing import CliRunner

from community import cli
from community.db import open_db
from community.ingest import pipeline as pl
from community.ingest import store
from tests.ingest.ingest_helpers import COMMUNITY, T0_MS, Gw

app = typer.Typer()
cli.register(app)
runner = CliRunner()


def run(*args: str) -> Any:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_registry_stats_and_intervals_commands(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/cli.sqlite"
    monkeypatch.setenv("QUARTIER_DATABASE_URL", url)
    assert run("members", "add", "--id", "alice", "--name", "Alice")["id"] == "alice"
    assert [m["id"] for m in run("members", "list")] == ["alice"]
    a = Gw(1)
    gw = run("gateways", "enrol", "--address", a.address.lower(), "--member", "alice",
             "--meter-point", "PRM-1", "--role", "production")
    assert gw["address"] == a.address and gw["revoked"] is False
    res = runner.invoke(app, ["gateways", "enrol", "--address", a.address, "--member", "alice",
                              "--meter-point", "PRM-1", "--role", "production"])
    assert res.exit_code == 1 and "already enrolled" in res.stderr
    res = runner.invoke(app, ["gateways", "enrol", "--address", "0x12", "--member", "alice",
                              "--meter-point", "PRM-1", "--role", "production"])
    assert res.exit_code == 1 and "not an Ethereum address" in res.stderr

    engine = open_db(url)
    for k in range(31):
        a.next(dev="inverter", ts=T0_MS + 60_000 * k, m={"e_prod_wh": 20 * k, "p_w": 1200})
    msgs = [pl.Message(a.topic(), s.envelope()) for s in a.sent]
    msgs.append(pl.Message(a.topic(), b"garbage"))
    with engine.connect() as conn:
        gws = store.load_gateways(conn)
    store.commit_batch(engine, [(m, pl.classify(m, pl.Topics(COMMUNITY), gws, T0_MS + 10**8)) for m in msgs])

    st = run("ingest", "stats")
    assert st["accepted"] == 31 and st["quarantined_by_reason"] == {"bad_envelope": 1}
    assert run("ingest", "quarantine", "--reason", "bad_envelope")[0]["topic"] == a.topic()
    start = T0_MS // 1000
    out = run("intervals", "show", "--meter-point", "PRM-1", "--from", str(start), "--to", str(start + 1800))
    assert [iv["produced_wh"] for iv in out["intervals"]] == [300, 300] and out["produced_wh"] == 600
    iso = run("intervals", "show", "--meter-point", "PRM-1", "--from", "2023-11-14T22:15:00Z",
              "--to", "2023-11-14T22:45:00+00:00")
    assert iso["from"] == start and iso["intervals"] == out["intervals"]
    res = runner.invoke(app, ["intervals", "show", "--meter-point", "PRM-1", "--from", str(start),
                              "--to", str(start + 1000)])
    assert res.exit_code == 1 and "whole number" in res.stderr

    assert run("gateways", "revoke", "--address", a.address, "--reason", "sold the house")["revoked"] is True
    assert run("gateways", "list")[0]["revoked_reason"] == "sold the house"
