"""The `quartier` command.

Each area of the system owns a small CLI module with a `register(app)` function that
adds its commands; this root only assembles them. Heavy imports (web3, pymodbus,
FastAPI) stay inside the command bodies so that `quartier keys new` starts fast on a Pi.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="quartier",
    help="Quartier: rooftop solar as a local, verifiable energy economy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that contribute commands, in the order they appear in --help.
COMMAND_MODULES = (
    "quartier.cli_core",  # keys, readings, verify
    "gateway.drivers.cli",  # meter decode/probe
    "firmware_sim.cli",  # sim sunspec/tic/p1
    "gateway.cli",  # gateway run/status/setup
    "community.cli",  # members, gateways, ingest, intervals
    "community.ca_cli",  # ca init/issue-gateway/issue-server/revoke
    "community.chain.cli",  # chain deploy/...
    "community.settlement.cli",  # allocate, settle, balances, statement, certificate
    "community.app.cli",  # app serve
    "community.demo",  # demo
    "community.bills.cli",  # bills run
    "community.wallet_cli",  # wallet new/address/sign-payment/register
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only tolerate the module itself being absent (an area not installed),
            # never a missing dependency inside it.
            if exc.name == name or name.startswith(f"{exc.name}."):
                continue
            raise
        module.register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
