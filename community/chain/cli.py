"""`quartier chain …`: deploy the community ledger and look at it."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import typer

chain_app = typer.Typer(help="The community ledger on its chain: deploy, status.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(chain_app, name="chain")


def _fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    raise typer.Exit(code)


def read_key(path: Path, passphrase: str | None = None) -> bytes:
    """A Quartier key file (JSON, see quartier.keys) or a file holding a 0x-hex private key."""
    from quartier import keys

    try:
        text = path.read_text().strip()
    except OSError as exc:
        _fail(f"cannot read key file {path}: {exc.strerror}")
    if text.startswith("{"):
        try:
            return bytes(keys.loads(text, passphrase, source=str(path)).private.secret)
        except keys.KeyFileError as exc:
            _fail(str(exc))
    try:
        secret = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        secret = b""
    if len(secret) != 32:
        _fail(f"{path}: neither a Quartier key file nor a 32-byte hex private key")
    return secret


def read_config(path: Path | None) -> dict[str, Any]:
    """The `[community]` id and optional `[[chain.units]]` from a TOML or JSON config."""
    if path is None:
        return {}
    try:
        raw = path.read_bytes()
    except OSError as exc:
        _fail(f"cannot read config {path}: {exc.strerror}")
    try:
        doc = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        _fail(f"{path}: {exc}")
    return dict(doc)


@chain_app.command("deploy")
def deploy(
    rpc: str = typer.Option(None, "--rpc", help="JSON-RPC URL of the node; none = in-process EVM"),
    key: Path = typer.Option(None, "--key", help="Deployer key file (Quartier key JSON or hex)"),
    config: Path = typer.Option(None, "--config", help="TOML/JSON with [community] id and [[chain.units]]"),
    community: str = typer.Option(None, "--community", help="Community id (overrides the config)"),
    fund: str = typer.Option(None, "--fund", help="Fund account address (default: the deployer)"),
    out: Path = typer.Option(None, "--out", help="Also write the addresses to this JSON file"),
    passphrase_env: str = typer.Option("QUARTIER_KEY_PASSPHRASE", help="Env var holding the key passphrase"),
) -> None:
    """Deploy the community ledger and the contracts around it (exchange, governance,
    conversion out, account recovery, helpers, payment requests); print their addresses
    as JSON."""
    import os

    from community.chain.client import DEFAULT_UNITS, ChainClient, ChainError, UnitSpec

    cfg = read_config(config)
    community_id = community or cfg.get("community", {}).get("id")
    if not community_id:
        _fail("give the community id: --community ID, or [community] id in --config")
    units: tuple[UnitSpec, ...] = DEFAULT_UNITS
    if cfg.get("chain", {}).get("units"):
        try:
            units = tuple(UnitSpec(**u) for u in cfg["chain"]["units"])
        except TypeError as exc:
            _fail(f"{config}: bad [[chain.units]] entry: {exc}")
    if rpc and key is None:
        _fail("--key FILE is needed to deploy to a node")
    secret = read_key(key, os.environ.get(passphrase_env)) if key else None
    try:
        client = ChainClient(rpc, secret)
        deployment = client.deploy(community_id, fund=fund, units=units)
        from community.chain.suite import deploy_suite

        suite = deploy_suite(client)
    except ChainError as exc:
        _fail(str(exc))
    text = json.dumps({**deployment.as_dict(), "contracts": suite.addresses()}, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    print(text)


@chain_app.command("status")
def status(
    rpc: str = typer.Option(..., "--rpc", help="JSON-RPC URL of the node"),
    ledger: str = typer.Option(..., "--ledger", help="Ledger contract address"),
) -> None:
    """Print the ledger's units, pause state and fund as JSON."""
    from community.chain.client import ChainClient, ChainError

    try:
        client = ChainClient(rpc, b"\x01" * 32, ledger=ledger)
        units = client.units()
        doc = {"ledger": client.ledger_address, "chain_id": client.chain_id,
               "paused": client.is_paused(), "fund": str(client.call("FUND")),
               "standing_orders": str(client.call("standingOrders")),
               "units": {sym: {"id": uid, **client.unit_state(uid)} for sym, uid in units.items()}}
    except ChainError as exc:
        _fail(str(exc))
    print(json.dumps(doc, indent=2))


@chain_app.command("orders")
def orders(
    rpc: str = typer.Option(..., "--rpc", help="JSON-RPC URL of the node"),
    ledger: str = typer.Option(..., "--ledger", help="Ledger contract address"),
) -> None:
    """Print the active standing donation orders that settlement executes, as JSON."""
    from community.chain.client import ChainClient, ChainError
    from community.chain.orders import StandingOrdersClient

    try:
        client = ChainClient(rpc, b"\x01" * 32, ledger=ledger)
        address = str(client.call("standingOrders"))
        if int(address, 16) == 0:
            _fail(f"ledger {client.ledger_address} has no standing orders contract "
                  "(quartier chain deploy sets one)")
        active = StandingOrdersClient(client, address).active()
    except ChainError as exc:
        _fail(str(exc))
    print(json.dumps([{"id": o.id, "donor": o.donor, "beneficiary": o.beneficiary, "wh": o.wh,
                       "share_bp": o.share_bp} for o in active], indent=2))
