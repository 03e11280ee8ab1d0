"""`quartier wallet`: a member's own key on the command line (self-custody).

`new` writes a key file (the Quartier key file format, optionally passphrase-encrypted),
`address` prints its address, `sign-payment` signs the very EIP-712 payment intent the
server signs for members whose key it holds (`community.chain.intents.Payment`), and
prints it as JSON for the community's relayer; `sign-order` does the same for a standing
donation order (`community.chain.orders`). `register` records a member's own address
on the server side, in place of a server-held key.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

wallet_cli = typer.Typer(help="A member's own ledger key: create it, sign payments.", no_args_is_help=True)

PASSPHRASE_ENV = "QUARTIER_KEY_PASSPHRASE"
# The ledger's default unit order (community.chain.client.DEFAULT_UNITS), for signing
# offline; with --rpc-url the ledger is asked instead.
OFFLINE_UNITS = {"KWH": 0, "HOUR": 1, "KG": 2}


def _fail(message: str, code: int = 2) -> typer.Exit:
    print(message, file=sys.stderr)
    return typer.Exit(code)


def _passphrase(path: Path | None) -> str | None:
    if path is not None:
        try:
            return path.read_text().rstrip("\n")
        except OSError as exc:
            raise _fail(f"cannot read passphrase file {path}: {exc.strerror}") from None
    return os.environ.get(PASSPHRASE_ENV) or None


KEY_OPT = typer.Option(..., "--key", help="the member's key file")
PASS_OPT = typer.Option(None, "--passphrase-file", help=f"passphrase of the key file (or {PASSPHRASE_ENV})")


def _load(key: Path, passphrase_file: Path | None) -> object:
    from quartier.keys import KeyFileError, read

    try:
        return read(key, _passphrase(passphrase_file))
    except KeyFileError as exc:
        raise _fail(str(exc)) from None


@wallet_cli.command("new")
def new(
    out: Path = typer.Option(Path("member.key"), "--out", help="key file to create (never overwritten)"),
    passphrase_file: Path = PASS_OPT,
) -> None:
    """Create a key file (mode 0600) and print its address."""
    from quartier.keys import GatewayKey, dumps

    key = GatewayKey.generate()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise _fail(f"{out} already exists: refusing to overwrite a key") from None
    except OSError as exc:
        raise _fail(f"cannot create {out}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(dumps(key, _passphrase(passphrase_file)))
        f.flush()
        os.fsync(f.fileno())
    print(key.address)


@wallet_cli.command("address")
def address(key: Path = KEY_OPT, passphrase_file: Path = PASS_OPT) -> None:
    """Print the key's ledger address."""
    print(_load(key, passphrase_file).address)  # type: ignore[attr-defined]


@wallet_cli.command("sign-payment")
def sign_payment(
    to: str = typer.Option(..., "--to", help="payee's ledger address"),
    unit: str = typer.Option(..., "--unit", help="HOUR, KG, … (or the ledger's unit number)"),
    amount: int = typer.Option(..., "--amount", help="base units: 0.01 h for HOUR, 1 g for KG"),
    ledger: str = typer.Option(..., "--ledger", help="ledger contract address"),
    key: Path = KEY_OPT,
    passphrase_file: Path = PASS_OPT,
    rpc_url: str = typer.Option(None, "--rpc-url", help="ask the ledger for the nonce, unit and chain id"),
    chain_id: int = typer.Option(None, "--chain-id"),
    nonce: int = typer.Option(None, "--nonce", help="your next nonce in this unit"),
    deadline: int = typer.Option(None, "--deadline", help="Unix seconds after which the intent is void"),
    ttl: int = typer.Option(3600, "--ttl", help="with --rpc-url and no --deadline: seconds from now"),
) -> None:
    """Sign a payment intent and print it as JSON (payment fields and signature)."""
    from community.chain.intents import IntentError, Payment

    member = _load(key, passphrase_file)
    sender = member.address  # type: ignore[attr-defined]
    try:
        if rpc_url:
            from community.chain.client import ChainClient, ChainError

            try:
                client = ChainClient(rpc_url, member.private, ledger=ledger)  # type: ignore[attr-defined]
                p = client.payment(sender, to, int(unit) if unit.isdigit() else unit.upper(), amount,
                                   ttl=ttl, deadline=deadline)
                if nonce is not None:
                    p = Payment(p.sender, p.to, p.unit, p.amount, nonce, p.deadline)
                chain_id = client.chain_id
            except ChainError as exc:
                raise _fail(str(exc)) from None
        else:
            missing = [n for n, v in (("--chain-id", chain_id), ("--nonce", nonce), ("--deadline", deadline))
                       if v is None]
            if missing:
                raise _fail(f"without --rpc-url give {', '.join(missing)}")
            unit_id = int(unit) if unit.isdigit() else OFFLINE_UNITS.get(unit.upper())
            if unit_id is None:
                raise _fail(f"--unit {unit!r}: expected one of {', '.join(OFFLINE_UNITS)} or a number")
            p = Payment(sender, to, unit_id, amount, nonce, deadline)  # type: ignore[arg-type]
        signature = p.sign(member.private, chain_id, ledger)  # type: ignore[attr-defined, arg-type]
    except (IntentError, ValueError) as exc:
        raise _fail(f"cannot sign this payment: {exc}") from None
    print(json.dumps({"from": p.sender, "to": p.to, "unit": p.unit, "amount": p.amount, "nonce": p.nonce,
                      "deadline": p.deadline, "chain_id": chain_id, "ledger": ledger,
                      "signature": "0x" + signature.hex()}))


@wallet_cli.command("sign-order")
def sign_order(
    to: str = typer.Option(..., "--to", help="the beneficiary's ledger address"),
    wh: int = typer.Option(0, "--wh", help="a fixed number of Wh per settlement period"),
    share_percent: float = typer.Option(0.0, "--share-percent", help="or a share of your export, %"),
    orders: str = typer.Option(..., "--orders", help="the StandingOrders contract address"),
    rpc_url: str = typer.Option(..., "--rpc-url", help="ask the contract for your nonce and the chain id"),
    key: Path = KEY_OPT,
    passphrase_file: Path = PASS_OPT,
    ttl: int = typer.Option(3600, "--ttl", help="seconds the signed order stays valid for submission"),
) -> None:
    """Sign a standing donation order and print it as JSON for the community's relayer."""
    from community.chain.client import ChainClient, ChainError
    from community.chain.orders import StandingOrdersClient

    share_bp = round(share_percent * 100)
    if (wh > 0) == (share_bp > 0) or wh < 0 or not 0 <= share_bp <= 10_000:
        raise _fail("give either --wh N (above 0) or --share-percent P (above 0, at most 100)")
    member = _load(key, passphrase_file)
    try:
        client = ChainClient(rpc_url, member.private)  # type: ignore[attr-defined]
        contract = StandingOrdersClient(client, orders)
        intent = contract.sign_set(member.private, member.address, to, wh=wh,  # type: ignore[attr-defined]
                                   share_bp=share_bp, ttl=ttl)
    except (ChainError, ValueError) as exc:
        raise _fail(f"cannot sign this order: {exc}") from None
    donor, beneficiary, wh_, share = intent.args
    print(json.dumps({"donor": donor, "beneficiary": beneficiary, "wh": wh_, "share_bp": share,
                      "nonce": intent.nonce, "deadline": intent.deadline, "chain_id": client.chain_id,
                      "orders": orders, "signature": "0x" + intent.signature.hex()}))


@wallet_cli.command("register")
def register_address(
    member: str = typer.Option(..., "--member", help="the registry member"),
    account: str = typer.Option(..., "--address", help="the member's own ledger address"),
    database_url: str = typer.Option(None, "--database-url", envvar="QUARTIER_DATABASE_URL"),
) -> None:
    """Server side: a member keeps their own key; record and link their address."""
    from community.custody import CustodyError, create_tables
    from community.custody import register_address as record
    from community.db import DatabaseError, open_db
    from community.settlement.run import link_account

    try:
        engine = open_db(database_url)
        create_tables(engine)
        with engine.begin() as conn:
            address = record(conn, member, account)
            link_account(conn, member, address)
    except (DatabaseError, CustodyError, ValueError) as exc:
        raise _fail(str(exc)) from None
    print(f"member {member} keeps their own key: ledger address {address}")


def payment_from_json(doc: dict[str, object]) -> tuple[object, bytes]:
    """A signed payment as `sign-payment` prints it: (Payment, signature)."""
    from community.chain.intents import Payment

    p = Payment(str(doc["from"]), str(doc["to"]), int(doc["unit"]), int(doc["amount"]),  # type: ignore[call-overload]
                int(doc["nonce"]), int(doc["deadline"]))  # type: ignore[call-overload]
    return p, bytes.fromhex(str(doc["signature"]).removeprefix("0x"))


def order_from_json(doc: dict[str, object]) -> object:
    """A signed order as `sign-order` prints it, ready for `StandingOrdersClient.set`."""
    from community.chain.accounts import Signed

    args = (str(doc["donor"]), str(doc["beneficiary"]), int(doc["wh"]), int(doc["share_bp"]))  # type: ignore[call-overload]
    return Signed("set", args, str(doc["donor"]), int(doc["nonce"]), int(doc["deadline"]),  # type: ignore[call-overload]
                  bytes.fromhex(str(doc["signature"]).removeprefix("0x")))


def register(app: typer.Typer) -> None:
    app.add_typer(wallet_cli, name="wallet")
