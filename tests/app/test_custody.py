"""Members' keys held by the server: sealed at rest under a KEK outside the database; the
self-custody wallet on the command line signs the same intent."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from coincurve import PrivateKey
from eth_account import Account
from eth_account.messages import encode_typed_data
from typer.testing import CliRunner

from community.chain.intents import Payment
from community.custody import (
    Custody,
    CustodyError,
    SelfCustody,
    create_tables,
    custody_keys,
    load_kek,
)
from community.db import open_db
from quartier.cli import app as root_cli
from quartier.signing import address_of, recover_hash

LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = open_db(f"sqlite:///{tmp_path}/custody.sqlite")
    create_tables(engine)
    return engine


def test_kek_file_is_created_0600_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "kek"
    kek = load_kek(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == kek.hex() and len(kek) == 32
    assert load_kek(path) == kek


def test_kek_file_refused_when_others_can_read_it_or_it_is_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    load_kek(path)
    os.chmod(path, 0o644)
    with pytest.raises(CustodyError, match=r"accessible to other users.*chmod 600"):
        load_kek(path)
    os.chmod(path, 0o600)
    path.write_text("not hex\n")
    with pytest.raises(CustodyError, match="not 64 hex digits"):
        load_kek(path)
    with pytest.raises(CustodyError, match=r"no key-encryption key at .*--kek-file"):
        load_kek(tmp_path / "missing", create=False)


def test_ciphertext_in_the_database_never_contains_the_key(tmp_path: Path, engine: sa.Engine) -> None:
    custody = Custody.from_file(tmp_path / "kek")
    with engine.begin() as conn:
        addresses = {m: custody.create(conn, m, now=0) for m in ("alice", "bob", "carol")}
    secrets = {}
    with engine.connect() as conn:
        for member, address in addresses.items():
            key = custody.unlock(conn, member)
            assert address_of(key) == address
            secrets[member] = key.secret
        rows = conn.execute(sa.select(custody_keys)).all()
    engine.dispose()
    stored = b"".join((tmp_path / name).read_bytes() for name in os.listdir(tmp_path)
                      if name.startswith("custody.sqlite"))
    for secret in secrets.values():
        assert secret not in stored and secret.hex().encode() not in stored
        for row in rows:
            assert secret not in bytes(row.ciphertext) and secret.hex() not in repr(row)
    assert len({bytes(r.nonce) for r in rows}) == len(rows)  # a fresh nonce per seal
    assert load_kek(tmp_path / "kek").hex() not in repr(custody)


def test_a_wrong_kek_fails_clearly(tmp_path: Path, engine: sa.Engine) -> None:
    right = Custody.from_file(tmp_path / "kek")
    with engine.begin() as conn:
        right.create(conn, "alice")
    wrong = Custody.from_file(tmp_path / "other-kek")
    with engine.connect() as conn, pytest.raises(CustodyError, match=(
            f"sealed under key-encryption key {right.kek_id}, not the one given "
            f"\\({wrong.kek_id}\\): check --kek-file")):
        wrong.unlock(conn, "alice")


def test_a_row_copied_onto_another_member_does_not_open(tmp_path: Path, engine: sa.Engine) -> None:
    custody = Custody.from_file(tmp_path / "kek")
    with engine.begin() as conn:
        custody.create(conn, "alice")
        custody.create(conn, "mallory")
        alice = conn.execute(sa.select(custody_keys).where(custody_keys.c.member_id == "alice")).one()
        conn.execute(custody_keys.update().where(custody_keys.c.member_id == "mallory")
                     .values(nonce=alice.nonce, ciphertext=alice.ciphertext))
    with engine.connect() as conn, pytest.raises(CustodyError, match="altered or copied"):
        custody.unlock(conn, "mallory")


def test_keys_are_never_replaced_and_self_custody_holds_no_key(tmp_path: Path, engine: sa.Engine) -> None:
    custody = Custody.from_file(tmp_path / "kek")
    own = address_of(PrivateKey())
    with engine.begin() as conn:
        address = custody.create(conn, "alice")
        assert custody.ensure(conn, "alice") == address
        with pytest.raises(CustodyError, match="already has a ledger key"):
            custody.create(conn, "alice")
        assert custody.register_address(conn, "bob", own.lower()) == own
        row = conn.execute(sa.select(custody_keys).where(custody_keys.c.member_id == "bob")).one()
        assert row.ciphertext is None and row.mode == "self"
        with pytest.raises(SelfCustody, match="they sign their intents themselves"):
            custody.unlock(conn, "bob")


def _eip712_signer(p: Payment, chain_id: int, signature: bytes) -> str:
    """Recovers with eth_account's EIP-712 encoder: an implementation independent of ours."""
    message = encode_typed_data(full_message={
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"},
                             {"name": "verifyingContract", "type": "address"}],
            "Payment": [{"name": "from", "type": "address"}, {"name": "to", "type": "address"},
                        {"name": "unit", "type": "uint8"}, {"name": "amount", "type": "uint256"},
                        {"name": "nonce", "type": "uint64"}, {"name": "deadline", "type": "uint64"},
                        {"name": "memoHash", "type": "bytes32"}],
        },
        "primaryType": "Payment",
        "domain": {"name": "Quartier Ledger", "version": "1", "chainId": chain_id, "verifyingContract": LEDGER},
        "message": {"from": p.sender, "to": p.to, "unit": p.unit, "amount": p.amount, "nonce": p.nonce,
                    "deadline": p.deadline, "memoHash": b"\x00" * 32},
    })
    return str(Account.recover_message(message, signature=signature))


def test_wallet_cli_new_address_and_the_same_intent(tmp_path: Path) -> None:
    runner = CliRunner()
    key_file = tmp_path / "me.key"
    created = runner.invoke(root_cli, ["wallet", "new", "--out", str(key_file)])
    assert created.exit_code == 0, created.output
    address = created.output.strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = runner.invoke(root_cli, ["wallet", "new", "--out", str(key_file)])
    assert again.exit_code == 2 and "refusing to overwrite" in again.output
    shown = runner.invoke(root_cli, ["wallet", "address", "--key", str(key_file)])
    assert shown.output.strip() == address

    payee = address_of(PrivateKey())
    signed = runner.invoke(root_cli, [
        "wallet", "sign-payment", "--key", str(key_file), "--to", payee, "--unit", "HOUR",
        "--amount", "150", "--ledger", LEDGER, "--chain-id", "31337", "--nonce", "4",
        "--deadline", "2000000000"])
    assert signed.exit_code == 0, signed.output
    doc = json.loads(signed.output)
    p = Payment(address, payee, 1, 150, 4, 2_000_000_000)
    signature = bytes.fromhex(doc["signature"][2:])
    # The same bytes the server signs for a custodied member, verified two ways.
    assert recover_hash(p.digest(31337, LEDGER), signature) == address
    assert _eip712_signer(p, 31337, signature) == address
    assert (doc["from"], doc["to"], doc["unit"], doc["amount"]) == (address, payee, 1, 150)

    incomplete = runner.invoke(root_cli, ["wallet", "sign-payment", "--key", str(key_file), "--to", payee,
                                          "--unit", "HOUR", "--amount", "1", "--ledger", LEDGER])
    assert incomplete.exit_code == 2
    assert "without --rpc-url give --chain-id, --nonce, --deadline" in incomplete.output


def test_wallet_register_links_the_members_own_address(tmp_path: Path) -> None:
    from community import registry
    from community.settlement.run import accounts_of

    url = f"sqlite:///{tmp_path}/q.sqlite"
    engine = open_db(url)
    with engine.begin() as conn:
        registry.add_member(conn, "dora", "Dora")
    own = address_of(PrivateKey())
    result = CliRunner().invoke(root_cli, ["wallet", "register", "--member", "dora", "--address", own.lower(),
                                           "--database-url", url])
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        assert accounts_of(conn, ["dora"]) == {"dora": own}
    again = CliRunner().invoke(root_cli, ["wallet", "register", "--member", "dora", "--address", own,
                                          "--database-url", url])
    assert again.exit_code == 2 and "already has a ledger key" in again.output


def test_app_account_add_creates_the_members_sealed_key(tmp_path: Path) -> None:
    from community import registry
    from community.settlement.run import accounts_of

    url = f"sqlite:///{tmp_path}/q.sqlite"
    engine = open_db(url)
    with engine.begin() as conn:
        registry.add_member(conn, "zoe", "Zoe")
    engine.dispose()
    kek = tmp_path / "kek"
    made = CliRunner().invoke(root_cli, ["app", "account", "add", "zoe", "--member", "zoe", "--password-stdin",
                                         "--kek-file", str(kek), "--database-url", url],
                              input="a long enough password\n")
    assert made.exit_code == 0, made.output
    address = made.output.strip().rsplit(" ", 1)[-1]
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    with open_db(url).connect() as conn:
        assert accounts_of(conn, ["zoe"]) == {"zoe": address}
        assert address_of(Custody.from_file(kek).unlock(conn, "zoe")) == address


def test_wallet_signs_a_standing_order_the_relayer_submits(tmp_path: Path) -> None:
    from community.chain import devnet
    from community.chain.client import ChainClient
    from community.chain.orders import StandingOrdersClient
    from community.wallet_cli import order_from_json

    runner = CliRunner()
    key_file = tmp_path / "me.key"
    address = runner.invoke(root_cli, ["wallet", "new", "--out", str(key_file)]).output.strip()
    neighbour = address_of(PrivateKey())
    node = devnet.start()
    try:
        relayer = ChainClient(node.url, devnet.DEV_KEY)
        relayer.deploy("wallet-orders")
        relayer.register_member(address)
        relayer.register_member(neighbour)
        orders = StandingOrdersClient.deploy_for(relayer)
        base = ["wallet", "sign-order", "--key", str(key_file), "--to", neighbour, "--orders", orders.address,
                "--rpc-url", node.url]
        both = runner.invoke(root_cli, [*base, "--wh", "500", "--share-percent", "10"])
        assert both.exit_code == 2 and "either --wh N" in both.output
        signed = runner.invoke(root_cli, [*base, "--share-percent", "12.5"])
        assert signed.exit_code == 0, signed.output
        doc = json.loads(signed.output)
        assert (doc["donor"], doc["beneficiary"], doc["wh"], doc["share_bp"]) == (address, neighbour, 0, 1_250)
        oid = orders.set(order_from_json(doc))  # type: ignore[arg-type]
        (o,) = orders.active()
        assert (o.id, o.donor, o.beneficiary, o.share_bp) == (oid, address, neighbour, 1_250)
    finally:
        node.stop()
