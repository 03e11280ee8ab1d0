"""Settlement commands: allocate (compare keys on a file), settle, balances, statement,
certificates. Heavy imports stay inside the command bodies."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer


def _fail(message: str, code: int = 2) -> typer.Exit:
    print(message, file=sys.stderr)
    return typer.Exit(code)


def allocate_cmd(
    input_file: Path = typer.Argument(..., metavar="INPUT.json", help="interval to allocate"),
    key: str = typer.Option("prorata", "--key", help="prorata | static | priority"),
) -> None:
    """Allocate one interval's local exports to local imports with an allocation key."""
    from community.settlement.allocation import AllocationError, allocate, parse_input

    try:
        doc = json.loads(input_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"cannot read {input_file}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"{input_file} is not valid JSON: {exc}") from None
    try:
        result = allocate(parse_input(doc, key), key)
    except AllocationError as exc:
        raise _fail(f"{input_file}: {exc}") from None
    print(json.dumps(result.to_json(), indent=2))


def _day(value: str, option: str) -> int:
    from community.settlement.run import SettlementError, period_bounds

    try:
        return period_bounds(value)[0]
    except SettlementError:
        raise _fail(f"{option} {value!r}: expected YYYY-MM-DD") from None


def settle_cmd(
    period: str = typer.Option(..., "--period", help="the day to settle, YYYY-MM-DD (UTC)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="build and print, write nothing"),
    key: str = typer.Option("prorata", "--key", help="allocation key"),
    database_url: str | None = typer.Option(None, "--database-url", envvar="QUARTIER_DATABASE_URL"),
    rpc_url: str | None = typer.Option(None, "--rpc-url", envvar="QUARTIER_RPC_URL",
                                       help="chain node JSON-RPC URL"),
    ledger: str | None = typer.Option(None, "--ledger", envvar="QUARTIER_LEDGER",
                                      help="ledger contract address"),
    key_file: Path | None = typer.Option(None, "--key-file", envvar="QUARTIER_SETTLER_KEY_FILE",
                                         help="settler's private key (hex)"),
) -> None:
    """Settle a period: allocate, net, submit the batch on chain, reconcile. Idempotent."""
    from community.db import DatabaseError, open_db
    from community.settlement.allocation import KEYS
    from community.settlement.batch import BatchError
    from community.settlement.run import (
        SettlementError,
        SettleOptions,
        period_bounds,
        settle_period,
    )

    if key not in KEYS:
        raise _fail(f"--key {key!r}: expected one of {', '.join(KEYS)}")
    try:
        start, end = period_bounds(period)
        engine = open_db(database_url)
        client = None
        if not dry_run:
            from community.chain.client import ChainClient, ChainError

            if ledger is None:
                raise _fail("--ledger ADDRESS is needed to settle (or use --dry-run)")
            secret = key_file.read_text().strip() if key_file else None
            try:
                client = ChainClient(rpc_url, secret, ledger=ledger)
            except ChainError as exc:
                raise _fail(str(exc)) from None
        result = settle_period(
            engine, start, end, client=client, dry_run=dry_run,
            options=SettleOptions(key=key, orders=_standing_orders(engine)),
        )
    except (SettlementError, BatchError, DatabaseError, OSError) as exc:
        raise _fail(str(exc), 1) from None
    print(json.dumps(result, indent=2))


def _standing_orders(engine: Any) -> list[Any]:
    """The members' standing donation orders, as they set them in the web app."""
    import sqlalchemy as sa

    from community.app import services

    if not sa.inspect(engine).has_table("app_donation_orders"):
        return []
    with engine.connect() as conn:
        return services.standing_orders(conn)


def balances_cmd(
    member: str | None = typer.Option(None, "--member", help="only this member"),
    database_url: str | None = typer.Option(None, "--database-url"),
) -> None:
    """Settled balances per account and unit (JSON)."""
    from community.db import DatabaseError, open_db
    from community.settlement.run import balances

    try:
        engine = open_db(database_url)
    except DatabaseError as exc:
        raise _fail(str(exc), 1) from None
    with engine.connect() as conn:
        print(json.dumps(balances(conn, member), indent=2))


def statement_cmd(
    member: str = typer.Option(..., "--member"),
    date_from: str = typer.Option(..., "--from", help="first day, YYYY-MM-DD"),
    date_to: str = typer.Option(..., "--to", help="last day included, YYYY-MM-DD"),
    fmt: str = typer.Option("json", "--format", help="json | csv"),
    database_url: str | None = typer.Option(None, "--database-url"),
) -> None:
    """A member's movements with their reasons, JSON or CSV."""
    import csv

    from community.db import DatabaseError, open_db
    from community.settlement.run import statement

    if fmt not in ("json", "csv"):
        raise _fail(f"--format {fmt!r}: expected json or csv")
    start = _day(date_from, "--from")
    end = _day(date_to, "--to") + 86_400
    try:
        engine = open_db(database_url)
    except DatabaseError as exc:
        raise _fail(str(exc), 1) from None
    with engine.connect() as conn:
        rows = statement(conn, member, start, end)
    if fmt == "json":
        print(json.dumps({"member": member, "movements": rows}, indent=2))
        return
    fields = ["period_start", "period_end", "unit", "amount", "reason", "counterparty", "tx_hash"]
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


certificate_app = typer.Typer(help="Hourly production certificates: export, verify.")


def _time(value: str, option: str) -> int:
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(f"{option} {value!r}: expected an ISO date or time (UTC)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp())


@certificate_app.command("export")
def certificate_export_cmd(
    meter_point: str = typer.Option(..., "--meter-point"),
    t_from: str = typer.Option(..., "--from", help="ISO time or date, UTC"),
    t_to: str = typer.Option(..., "--to", help="ISO time or date, UTC (excluded)"),
    out: Path = typer.Option(..., "--out", help="directory for the JSON files and summary.csv"),
    database_url: str | None = typer.Option(None, "--database-url"),
) -> None:
    """Write one JSON certificate per hour with exports, and a CSV summary."""
    import csv

    from community.db import DatabaseError, open_db
    from community.settlement.run import certificates

    start, end = _time(t_from, "--from"), _time(t_to, "--to")
    try:
        engine = open_db(database_url)
    except DatabaseError as exc:
        raise _fail(str(exc), 1) from None
    with engine.connect() as conn:
        certs = certificates(conn, meter_point, start, end)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "meter_point", "gateway", "hour_start", "wh", "local_wh", "grid_wh"])
        for c in certs:
            (out / f"{c['id']}.json").write_text(json.dumps(c, indent=2))
            local = sum(a["given_wh"] for a in c["allocations"])
            grid = sum(a["to_grid_wh"] for a in c["allocations"])
            w.writerow(
                [c["id"], c["meter_point"], c["gateway"], c["hour_start"], c["wh"], local, grid]
            )
    print(json.dumps({"certificates": len(certs), "out": str(out)}))


@certificate_app.command("verify")
def certificate_verify_cmd(
    file: Path = typer.Argument(..., help="a certificate JSON file"),
    rpc: str = typer.Option(..., "--rpc", help="chain node JSON-RPC URL"),
) -> None:
    """Check a certificate against the chain alone; prints a JSON verdict, exit 0 if valid."""
    from coincurve import PrivateKey

    from community.chain.client import ChainClient, ChainError
    from community.settlement.certificates import verify_certificate

    try:
        cert = json.loads(file.read_text(encoding="utf-8"))
        ledger = str(cert["ledger"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _fail(f"{file}: not a certificate: {exc}") from None
    try:
        # reads only: a throwaway key satisfies the client, nothing is ever sent
        chain = ChainClient(rpc, PrivateKey(), ledger=ledger)
        verdict = verify_certificate(cert, chain)
    except ChainError as exc:
        raise _fail(str(exc), 1) from None
    print(json.dumps(verdict, indent=2))
    if not verdict["valid"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(certificate_app, name="certificate")
    app.command("allocate")(allocate_cmd)
    app.command("settle")(settle_cmd)
    app.command("balances")(balances_cmd)
    app.command("statement")(statement_cmd)
