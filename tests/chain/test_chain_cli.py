"""`quartier chain deploy` against a real anvil."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from coincurve import PrivateKey
from typer.testing import CliRunner

from community.chain import devnet
from community.chain.cli import register
from community.chain.client import ChainClient
from quartier.signing import address_of


def test_deploy_prints_the_addresses_and_writes_them(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    node = devnet.start()
    try:
        key = tmp_path / "deployer.key"
        key.write_text(devnet.DEV_KEY + "\n")
        config = tmp_path / "community.toml"
        config.write_text('[community]\nid = "rue-des-lilas"\n')
        out = tmp_path / "chain.json"
        result = CliRunner().invoke(app, ["chain", "deploy", "--rpc", node.url, "--key", str(key),
                                          "--config", str(config), "--out", str(out)])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc == json.loads(out.read_text())
        assert doc["community"] == "rue-des-lilas" and doc["units"] == {"KWH": 0, "HOUR": 1, "KG": 2}
        client = ChainClient(node.url, devnet.DEV_KEY, ledger=doc["ledger"])
        assert client.units() == doc["units"]
        from community.chain.suite import attach_suite

        suite = attach_suite(client, doc["contracts"])
        assert set(doc["contracts"]) == {"exchange", "conversion", "governance", "recovery",
                                         "helpers", "requests", "orders"}
        assert client.call("standingOrders") == doc["contracts"]["orders"]
        assert suite.governance.rules() is not None  # the deployed governance answers

        args = ["--rpc", node.url, "--ledger", doc["ledger"]]
        shown = CliRunner().invoke(app, ["chain", "status", *args])
        assert json.loads(shown.stdout)["standing_orders"] == doc["contracts"]["orders"]
        assert json.loads(CliRunner().invoke(app, ["chain", "orders", *args]).stdout) == []
        donor, neighbour = PrivateKey(b"\x11" * 32), PrivateKey(b"\x12" * 32)
        for k in (donor, neighbour):
            client.register_member(address_of(k))
        oid = suite.orders.set(suite.orders.sign_set(donor, address_of(donor), address_of(neighbour), wh=300))
        listed = json.loads(CliRunner().invoke(app, ["chain", "orders", *args]).stdout)
        assert listed == [{"id": oid, "donor": address_of(donor), "beneficiary": address_of(neighbour),
                           "wh": 300, "share_bp": 0}]
        bare = ChainClient(node.url, devnet.DEV_KEY)
        bare.deploy("no-suite")
        none = CliRunner().invoke(app, ["chain", "orders", "--rpc", node.url, "--ledger", bare.ledger_address])
        assert none.exit_code == 1 and "has no standing orders contract" in none.stderr

        bad = CliRunner().invoke(app, ["chain", "deploy", "--rpc", node.url, "--community", "x"])
        assert bad.exit_code == 1 and "--key FILE is needed" in bad.stderr
    finally:
        node.stop()
