"""deploy/chain/anvil-persistent.sh keeps the chain across restarts; deploy/postgresql/
setup.sql creates a role and database the server can use, and can be run twice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
ANVIL = REPO / "contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
ACCOUNT = "0x000000000000000000000000000000000000c0de"


def rpc(port: int, method: str, *params: object) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    req = urllib.request.Request(f"http://127.0.0.1:{port}", body.encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        doc = json.loads(resp.read())
    assert "error" not in doc, doc
    return doc["result"]


def start_chain(port: int, state: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ANVIL": str(ANVIL), "CHAIN_PORT": str(port), "CHAIN_ID": "4242",
           "STATE_FILE": str(state), "STATE_INTERVAL": "3600"}
    proc = subprocess.Popen(["sh", str(REPO / "deploy/chain/anvil-persistent.sh")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, 30)
    return proc


def stop_chain(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # what systemd sends: anvil writes its state on the way out
    assert proc.wait(60) == 0


def test_anvil_state_survives_a_restart(tmp_path: Path) -> None:
    if not ANVIL.exists():
        pytest.fail(f"{ANVIL} is missing: run `npm ci` in contracts/")
    port, state = free_port(), tmp_path / "chain" / "anvil-state.json"
    proc = start_chain(port, state)
    try:
        assert rpc(port, "eth_chainId") == hex(4242)
        assert rpc(port, "eth_accounts") == []  # no well-known dev keys
        assert rpc(port, "eth_gasPrice") == "0x0"  # members never need a coin
        rpc(port, "anvil_setBalance", ACCOUNT, hex(12345))
        for _ in range(3):
            rpc(port, "evm_mine")
        assert rpc(port, "eth_blockNumber") == "0x3"
    finally:
        stop_chain(proc)
    assert state.exists()
    proc = start_chain(port, state)
    try:
        assert rpc(port, "eth_blockNumber") == "0x3"
        assert rpc(port, "eth_getBalance", ACCOUNT, "latest") == hex(12345)
    finally:
        stop_chain(proc)


def test_postgresql_setup_sql_is_idempotent_and_usable() -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.fail("psql is needed (Debian package postgresql-client)")
    admin = os.environ.get("QUARTIER_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    url = sa.engine.make_url(admin)
    name = f"quartier_setup_{uuid.uuid4().hex[:8]}"
    # The shipped script, with its role and database renamed for this test only.
    sql = (REPO / "deploy/postgresql/setup.sql").read_text().replace("quartier", name)
    cmd = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", url.host or "127.0.0.1",
           "-p", str(url.port or 5432), "-U", url.username or "postgres", "-d", url.database or "postgres"]
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        for _ in range(2):  # a second run changes nothing and fails on nothing
            result = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
        owned = sa.create_engine(url.set(username=name, database=name))
        with owned.begin() as c:
            c.execute(sa.text("CREATE TABLE probe (id integer primary key)"))
            c.execute(sa.text("INSERT INTO probe VALUES (1)"))
            assert c.execute(sa.text("SELECT count(*) FROM probe")).scalar() == 1
        owned.dispose()
    finally:
        with engine.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
        engine.dispose()
