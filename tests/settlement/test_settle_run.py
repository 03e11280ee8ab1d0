"""A day settled end to end: signed readings and checked claims in SQL -> batch -> the
ledger contract on the embedded EVM -> balances on chain equal to SQL."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from coincurve import PrivateKey
from typer.testing import CliRunner

from community import registry
from community.chain.client import ChainClient
from community.db import claims, open_db, readings
from community.settlement import schema
from community.settlement.run import link_account, period_bounds, settle_period
from quartier import reading as rd
from quartier.claim import sign_claim
from quartier.cli import app
from quartier.intervals import gateway_period
from quartier.signing import address_of

START, END = period_bounds("2024-06-01")
STEP = 900

# Wh per 15 minutes: alice exports 200 at midday (intervals 40-55), bob and carol import
# 100 each all day, dave imports 50 but never sends a claim.
PROFILES = {
    "alice": lambda k: (200 if 40 <= k < 56 else 0, 0 if 40 <= k < 56 else 30),
    "bob": lambda k: (0, 100),
    "carol": lambda k: (0, 100),
    "dave": lambda k: (0, 50),
}


def _store_day(engine, member: str, key: PrivateKey, claim: bool) -> str:
    gw = address_of(key)
    head = rd.ChainHead()
    exp = imp = 0
    rows, signed = [], []
    for k in range(97):
        r = rd.next_reading(
            head, gw, "meter", (START + k * STEP) * 1000, {"e_imp_wh": imp, "e_exp_wh": exp}
        )
        s = rd.sign(key, r)
        head = rd.ChainHead(r.seq, s.body_hash)
        signed.append(r)
        rows.append(
            {
                "gw": gw,
                "seq": r.seq,
                "dev": r.dev,
                "ts": r.ts,
                "prev": r.prev,
                "hash": s.body_hash,
                "body": s.body.decode(),
                "sig": s.sig,
                "e_imp_wh": imp,
                "e_exp_wh": exp,
                "received_at": r.ts,
            }
        )
        if k < 96:
            e, i = PROFILES[member](k)
            exp, imp = exp + e, imp + i
    totals = gateway_period(signed, START, END, STEP)
    c = totals.claim("test", gw, START, END)
    with engine.begin() as conn:
        registry.add_member(conn, member, member.title())
        registry.enrol_gateway(conn, gw, member, f"mp-{member}", "grid", active_from_ms=0)
        conn.execute(readings.insert(), rows)
        if claim:
            conn.execute(
                claims.insert().values(
                    gw=gw,
                    period_start=START,
                    period_end=END,
                    community="test",
                    first_seq=c.first_seq,
                    last_seq=c.last_seq,
                    imported_wh=c.imported_wh,
                    exported_wh=c.exported_wh,
                    produced_wh=c.produced_wh,
                    intervals_root="0x" + c.intervals_root.hex(),
                    sig=sign_claim(key, c),
                    message="{}",
                    status="verified",
                    detail="",
                    received_at=0,
                    checked_at=0,
                )
            )
    return gw


def _neighbourhood(engine, chain: ChainClient) -> dict[str, str]:
    accounts = {}
    for i, member in enumerate(PROFILES):
        key = PrivateKey(bytes([i + 1]) * 32)
        gw = _store_day(engine, member, key, claim=member != "dave")
        account = address_of(PrivateKey(bytes([i + 0x50]) * 32))
        accounts[member] = account
        with engine.begin() as conn:
            link_account(conn, member, account)
        chain.register_member(account)
        chain.register_meter_point(f"mp-{member}", account)
        chain.register_gateway(gw, account, f"mp-{member}", active_from=START)
    return accounts


def test_settle_a_day_on_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.sqlite"
    engine = open_db(url)
    chain = ChainClient()
    chain.deploy("test")
    accounts = _neighbourhood(engine, chain)

    dry = settle_period(engine, START, END, dry_run=True)
    assert dry["status"] == "dry-run"
    assert list(dry["carried"]) == ["dave"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.settle_periods)).first() is None

    result = settle_period(engine, START, END, client=chain)
    assert result["status"] == "settled" and result["reconciled"] is True
    # midday: alice's 200 for bob's 100 + carol's 100; the rest of the day from the grid.
    # alice also imports 30 outside midday (grid only: nobody exports then).
    entries = {e["account"]: e["amount"] for e in result["entries"]}
    assert entries == {"alice": 3200, "bob": -1600, "carol": -1600}
    for member in ("alice", "bob", "carol", "dave"):
        assert chain.balance("KWH", accounts[member]) == entries.get(member, 0)
    assert chain.intervals_root(START) == bytes.fromhex(result["root"][2:])

    # idempotent: a second run reports the settled period
    again = settle_period(engine, START, END, client=chain)
    assert again["already"] is True and again["tx_hash"] == result["tx_hash"]
    # a crash between submission and receipt: the period is still "submitted" in SQL
    with engine.begin() as conn:
        conn.execute(schema.settle_periods.update().values(status="submitted"))
    resumed = settle_period(engine, START, END, client=chain)
    assert resumed["resumed"] is True and resumed["tx_hash"] == result["tx_hash"]
    assert chain.balance("KWH", accounts["alice"]) == 3200  # not twice

    runner = CliRunner()
    out = runner.invoke(app, ["balances", "--database-url", url])
    assert out.exit_code == 0, out.output
    assert {(b["account"], b["balance"]) for b in json.loads(out.stdout)} == {
        ("alice", 3200),
        ("bob", -1600),
        ("carol", -1600),
    }
    out = runner.invoke(
        app,
        [
            "statement",
            "--member",
            "bob",
            "--from",
            "2024-06-01",
            "--to",
            "2024-06-01",
            "--database-url",
            url,
            "--format",
            "csv",
        ],
    )
    assert out.exit_code == 0, out.output
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("period_start,") and ",-1600,allocation," in lines[1]

    # certificates: alice's midday hours (10:00-14:00), verified against the chain alone
    from community.settlement.certificates import verify_certificate
    from community.settlement.run import certificates

    with engine.connect() as conn:
        certs = certificates(conn, "mp-alice", START, END)
    assert [c["hour_start"] for c in certs] == [START + h * 3600 for h in range(10, 14)]
    cert = certs[0]
    assert cert["wh"] == 800 and cert["settlement_tx"] == result["tx_hash"]
    assert cert["allocations"][0]["consumers"] == [["bob", 100], ["carol", 100]]
    verdict = verify_certificate(cert, chain)
    assert verdict["valid"], verdict

    tampered = json.loads(json.dumps(cert))
    tampered["intervals"][0]["exported_wh"] += 1
    tampered["wh"] += 1
    v = verify_certificate(tampered, chain)
    assert not v["valid"] and v["checks"]["interval_proofs"] is False

    tampered = json.loads(json.dumps(cert))
    node = tampered["gateway_record_proof"][0]
    tampered["gateway_record_proof"][0] = node[:-1] + ("0" if node[-1] != "0" else "1")
    v = verify_certificate(tampered, chain)
    assert not v["valid"] and v["checks"]["gateway_record_proof"] is False

    # another gateway's claim (bob's, genuinely signed) under alice's certificate
    with engine.connect() as conn:
        row = conn.execute(sa.select(schema.settle_periods)).first()
    assert row is not None
    bob = next(g for g in json.loads(row.record)["gateways"] if g["member"] == "bob")
    tampered = json.loads(json.dumps(cert))
    tampered["claim"], tampered["claim_signature"] = bob["claim"], bob["sig"]
    v = verify_certificate(tampered, chain)
    assert not v["valid"] and v["checks"]["claim_signature"] is False

    out = runner.invoke(
        app,
        [
            "certificate",
            "export",
            "--meter-point",
            "mp-alice",
            "--from",
            "2024-06-01",
            "--to",
            "2024-06-02",
            "--out",
            str(tmp_path / "c"),
            "--database-url",
            url,
        ],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["certificates"] == 4
    assert len(list((tmp_path / "c").glob("QGC-*.json"))) == 4
    assert (tmp_path / "c" / "summary.csv").read_text().count("\n") == 5


def test_standing_orders_signed_on_chain_are_executed_in_the_batch(tmp_path: Path) -> None:
    from community.chain.orders import StandingOrdersClient
    from community.settlement.netting import StandingOrder
    from community.settlement.run import SettleOptions, balances

    engine = open_db(f"sqlite:///{tmp_path}/q.sqlite")
    chain = ChainClient()
    chain.deploy("test")
    accounts = _neighbourhood(engine, chain)
    orders = StandingOrdersClient.deploy_for(chain)
    alice_key = PrivateKey(bytes([0x50]) * 32)  # alice's account key (_neighbourhood)
    share = orders.set(orders.sign_set(alice_key, accounts["alice"], accounts["bob"], share_bp=1_000))
    fixed = orders.set(orders.sign_set(alice_key, accounts["alice"], accounts["carol"], wh=250))
    cancelled = orders.set(orders.sign_set(alice_key, accounts["alice"], accounts["dave"], wh=99))
    orders.cancel(orders.sign_cancel(alice_key, accounts["alice"], cancelled))
    app_only = StandingOrder("bob", "carol", wh=10)  # never signed on chain

    result = settle_period(engine, START, END, client=chain, options=SettleOptions(orders=[app_only]))
    assert result["status"] == "settled" and result["reconciled"] is True
    # alice's credited export is 3 200 Wh: 10 % to bob, 250 Wh to carol.
    assert sorted((d["order"], d["beneficiary"], d["wh"]) for d in result["donations"]) == [
        (share, "bob", 320), (fixed, "carol", 250)]
    assert result["orders_not_on_chain"] == [{"donor": "bob", "beneficiary": "carol"}]
    with engine.connect() as conn:
        sql = {(b["account"], b["unit"]): b["balance"] for b in balances(conn)}
    assert sql == {("alice", "KWH"): 2_630, ("bob", "KWH"): -1_280, ("carol", "KWH"): -1_350}
    for member in ("alice", "bob", "carol", "dave"):
        assert chain.balance("KWH", accounts[member]) == sql.get((member, "KWH"), 0)
    # the batch on chain carries the energy entries and the donations apart
    with engine.connect() as conn:
        record = json.loads(conn.execute(sa.select(schema.settle_periods.c.record)).scalar_one())
    assert sorted(d[0] for d in record["chain"]["donations"]) == [share, fixed]
    assert sorted(e[2] for e in record["chain"]["entries"]) == [-1_600, -1_600, 3_200]

    # a crash between submission and receipt: the stored batch, donations included, is resumed
    with engine.begin() as conn:
        conn.execute(schema.settle_periods.update().values(status="submitted"))
    resumed = settle_period(engine, START, END, client=chain)
    assert resumed["resumed"] is True and resumed["reconciled"] is True
    assert chain.balance("KWH", accounts["bob"]) == -1_280  # not twice


def test_settle_and_verify_through_the_cli_on_anvil(tmp_path: Path) -> None:
    from community.chain import devnet

    node = devnet.start()
    try:
        url = f"sqlite:///{tmp_path}/q.sqlite"
        engine = open_db(url)
        chain = ChainClient(node.url, devnet.DEV_KEY)
        chain.deploy("test")
        accounts = _neighbourhood(engine, chain)
        key_file = tmp_path / "settler.key"
        key_file.write_text(devnet.DEV_KEY)
        runner = CliRunner()
        args = [
            "settle",
            "--period",
            "2024-06-01",
            "--database-url",
            url,
            "--rpc-url",
            node.url,
            "--ledger",
            chain.ledger_address,
            "--key-file",
            str(key_file),
        ]
        out = runner.invoke(app, args)
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["reconciled"] is True
        assert chain.balance("KWH", accounts["alice"]) == 3200
        out = runner.invoke(app, args)  # again: a no-op
        assert out.exit_code == 0 and json.loads(out.stdout)["already"] is True
        assert chain.balance("KWH", accounts["alice"]) == 3200

        out = runner.invoke(
            app,
            [
                "certificate",
                "export",
                "--meter-point",
                "mp-alice",
                "--from",
                "2024-06-01T10:00:00Z",
                "--to",
                "2024-06-01T11:00:00Z",
                "--out",
                str(tmp_path / "c"),
                "--database-url",
                url,
            ],
        )
        assert out.exit_code == 0, out.output
        (cert_file,) = (tmp_path / "c").glob("QGC-*.json")
        out = runner.invoke(app, ["certificate", "verify", str(cert_file), "--rpc", node.url])
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["valid"] is True

        cert = json.loads(cert_file.read_text())
        cert["wh"] += 1
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(cert))
        out = runner.invoke(app, ["certificate", "verify", str(bad), "--rpc", node.url])
        assert out.exit_code == 1
        verdict = json.loads(out.stdout)
        assert verdict["valid"] is False and verdict["checks"]["wh"] is False
    finally:
        node.stop()
