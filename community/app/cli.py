"""`quartier app`: serve the neighbours' web app; manage its login accounts."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

app_cli = typer.Typer(help="The neighbours' web app.", no_args_is_help=True)
account_cli = typer.Typer(help="Login accounts of the web app.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    print(message, file=sys.stderr)
    return typer.Exit(code)


@app_cli.command("serve")
def serve(
    database_url: str = typer.Option(None, "--database-url", envvar="QUARTIER_DATABASE_URL",
                                     help="SQLAlchemy URL of the community database"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    community: str = typer.Option("quartier", "--community", help="name shown in the pages"),
    https: bool = typer.Option(False, "--https", help="behind TLS: mark cookies Secure, send HSTS"),
    rpc_url: str = typer.Option(None, "--rpc-url", help="chain node, to verify certificates"),
    ledger: str = typer.Option(None, "--ledger", help="ledger contract address"),
    lang: str = typer.Option("fr", "--lang", help="language when the browser states none: fr | en"),
    kek_file: Path = typer.Option(None, "--kek-file", envvar="QUARTIER_KEK_FILE",
                                  help="key-encryption key of members' keys (created 0600 if missing)"),
    relayer_key: Path = typer.Option(None, "--relayer-key", envvar="QUARTIER_RELAYER_KEY",
                                     help="key file of the relayer that submits members' payments"),
    contracts: Path = typer.Option(None, "--contracts", help="JSON written by `quartier chain deploy --out`: "
                                   "payment requests, helpers, account replacement on the ledger"),
) -> None:
    """Serve the web app and its JSON API (OpenAPI at /openapi.json, docs at /docs).

    With --kek-file, members' keys are held encrypted under that key; with --rpc-url,
    --ledger and --relayer-key too, payments in hours and goods go on the ledger."""
    import uvicorn

    from community.app import AppSettings, create_app
    from community.db import DatabaseError, resolve_url

    if lang not in ("fr", "en"):
        raise _fail(f"--lang {lang!r}: expected fr or en")
    from community.chain.client import ChainError
    from community.custody import Custody, CustodyError
    from quartier.keys import KeyFileError

    try:
        custody = Custody.from_file(kek_file) if kek_file else None
        chain = None
        if relayer_key is not None:
            if not (rpc_url and ledger):
                raise _fail("--relayer-key needs --rpc-url and --ledger")
            from community.chain.client import ChainClient
            from quartier.keys import read as read_key

            chain = ChainClient(rpc_url, read_key(relayer_key).private, ledger=ledger)
        suite = None
        if contracts is not None:
            if chain is None:
                raise _fail("--contracts needs --relayer-key, --rpc-url and --ledger")
            import json

            from community.chain.suite import attach_suite

            try:
                suite = attach_suite(chain, json.loads(contracts.read_text())["contracts"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise _fail(f"--contracts {contracts}: not a `quartier chain deploy --out` file ({exc})") from None
        application = create_app(AppSettings(database_url=resolve_url(database_url), community=community,
                                             https=https, rpc_url=rpc_url, ledger=ledger, default_lang=lang,
                                             chain=chain, custody=custody, suite=suite))
    except (DatabaseError, CustodyError, ChainError, KeyFileError) as exc:
        raise _fail(str(exc)) from None
    uvicorn.run(application, host=host, port=port, log_level="info", proxy_headers=https)


@account_cli.command("add")
def account_add(
    username: str = typer.Argument(..., help="login name"),
    database_url: str = typer.Option(None, "--database-url", envvar="QUARTIER_DATABASE_URL"),
    role: str = typer.Option("member", "--role", help="member | board | operator"),
    member: str = typer.Option(None, "--member", help="the registry member this account belongs to"),
    name: str = typer.Option(None, "--name", help="display name"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from stdin"),
    kek_file: Path = typer.Option(None, "--kek-file", envvar="QUARTIER_KEK_FILE",
                                  help="create the member's ledger key, sealed under this key"),
) -> None:
    """Create a login account (the password is asked for, or read from stdin)."""
    from community.app import services, sessions
    from community.custody import Custody, CustodyError
    from community.db import DatabaseError, open_db

    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        "password", hide_input=True, confirmation_prompt=True)
    try:
        custody = Custody.from_file(kek_file) if kek_file is not None and member else None
        engine = open_db(database_url)
        services.init_app_tables(engine)  # with the custody table
        with engine.begin() as conn:
            if member and services.member_name(conn, member) is None:
                raise _fail(f"no member {member!r}: add it first with `quartier members add`")
            account = sessions.create_account(conn, username, password, role=role, member_id=member,
                                              display_name=name or (services.member_name(conn, member)
                                                                    if member else None),
                                              now=int(time.time()))
            address = None
            if custody is not None and member:
                from community.app.relay import provision_member

                address = provision_member(conn, custody, member)
    except (DatabaseError, sessions.AccountError, CustodyError) as exc:
        raise _fail(str(exc)) from None
    print(f"account {account.username} ({account.role}) created"
          + (f"; ledger address {address}" if address else ""))


@account_cli.command("list")
def account_list(database_url: str = typer.Option(None, "--database-url", envvar="QUARTIER_DATABASE_URL")) -> None:
    """List login accounts."""
    from community.app import services, sessions
    from community.db import DatabaseError, open_db

    try:
        engine = open_db(database_url)
        services.init_app_tables(engine)
        with engine.connect() as conn:
            for a in sessions.list_accounts(conn):
                print(f"{a.username}\t{a.role}\t{a.member_id or '-'}\t{a.display_name}")
    except DatabaseError as exc:
        raise _fail(str(exc)) from None


app_cli.add_typer(account_cli, name="account")


def register(app: typer.Typer) -> None:
    app.add_typer(app_cli, name="app")
