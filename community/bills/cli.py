"""`quartier bills ...`: billing runs, credit notes, member settings, board reports, the DSO
file and the weekly digest. Heavy imports (reportlab, openpyxl) stay inside the bodies."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer

bills = typer.Typer(help="Monthly statements, billing runs, board reports, digests.",
                    no_args_is_help=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    print(message, file=sys.stderr)
    return typer.Exit(code)


def _engine(database_url: str | None) -> Any:
    from community.db import DatabaseError, open_db

    try:
        import community.bills.schema  # noqa: F401  (tables on the shared metadata)

        return open_db(database_url)
    except DatabaseError as exc:
        raise _fail(str(exc)) from None


def _month(engine: Any, month: str | None) -> str:
    from community.bills.ledger import last_settled_month

    if month:
        return month
    with engine.connect() as conn:
        last = last_settled_month(conn)
    if last is None:
        raise _fail("no settled period yet: settle a day first (quartier settle)")
    return last


DB = typer.Option(None, "--database-url", help="database URL (default: QUARTIER_DATABASE_URL)")


@bills.command("run")
def run_cmd(
    month: str | None = typer.Option(None, "--month", help="YYYY-MM (default: last settled month)"),
    final: bool = typer.Option(False, "--final", help="number the run and close the month"),
    out: Path = typer.Option(..., "--out", help="directory for the PDFs, CSVs and summary.json"),
    database_url: str | None = DB,
) -> None:
    """Bill a month: one PDF and one CSV per member, summary.json. Drafts can be repeated."""
    from community.bills.runs import bill_month
    from community.bills.statement import BillsError

    engine = _engine(database_url)
    try:
        result = bill_month(engine, month, final=final, out=out)
    except BillsError as exc:
        raise _fail(str(exc), 1) from None
    print(json.dumps({k: v for k, v in result.summary.items() if k != "problems"}, sort_keys=True))
    if not result.summary["reconciles"]:
        for p in result.summary["problems"][:10]:
            print(f"does not reconcile: {p}", file=sys.stderr)


@bills.command("runs")
def runs_cmd(database_url: str | None = DB) -> None:
    """List billing runs."""
    from community.bills.runs import list_runs

    engine = _engine(database_url)
    with engine.connect() as conn:
        print(json.dumps(list_runs(conn), indent=2))


@bills.command("show")
def show_cmd(
    run: int = typer.Option(..., "--run", help="final run number"),
    database_url: str | None = DB,
) -> None:
    """A final run's totals with its credit notes applied."""
    from community.bills.runs import run_totals
    from community.bills.statement import BillsError

    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            print(json.dumps(run_totals(conn, run), indent=2, sort_keys=True))
    except BillsError as exc:
        raise _fail(str(exc), 1) from None


@bills.command("credit")
def credit_cmd(
    run: int = typer.Option(..., "--run", help="the final run to correct"),
    member: str = typer.Option(..., "--member"),
    reason: str = typer.Option(..., "--reason", help="why (printed on the credit note)"),
    out: Path | None = typer.Option(None, "--out", help="directory for the credit note PDF/CSV"),
    database_url: str | None = DB,
) -> None:
    """Correct a member's final statement with a numbered credit note."""
    from community.bills.runs import credit_note
    from community.bills.statement import BillsError

    engine = _engine(database_url)
    try:
        print(json.dumps(credit_note(engine, run, member, reason, out=out), sort_keys=True))
    except BillsError as exc:
        raise _fail(str(exc), 1) from None


@bills.command("member")
def member_cmd(
    member: str = typer.Argument(..., help="member id"),
    lang: str | None = typer.Option(None, "--lang", help="fr | en"),
    email: str | None = typer.Option(None, "--email"),
    tariff: str | None = typer.Option(None, "--tariff", help="supplier price, cents per kWh"),
    name_consent: bool | None = typer.Option(None, "--name-consent/--no-name-consent",
                                             help="may neighbours see this name as their source"),
    digest: bool | None = typer.Option(None, "--digest/--no-digest"),
    database_url: str | None = DB,
) -> None:
    """Set a member's billing settings (only the options given change)."""
    from dataclasses import asdict

    from community.bills.ledger import set_member
    from community.bills.statement import BillsError

    values = {k: v for k, v in {"lang": lang, "email": email, "tariff_ct_kwh": tariff,
                                "name_consent": name_consent, "digest": digest}.items() if v is not None}
    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            s = set_member(conn, member, **values)
    except BillsError as exc:
        raise _fail(str(exc)) from None
    d = asdict(s)
    d.pop("unsubscribe_token")
    print(json.dumps(d, sort_keys=True))


@bills.command("report")
def report_cmd(
    month: str | None = typer.Option(None, "--month", help="YYYY-MM (default: last settled month)"),
    out: Path = typer.Option(Path("."), "--out", help="directory for the report and the ZIP"),
    database_url: str | None = DB,
) -> None:
    """Board report of a month, the accountant's ZIP (CSV + XLSX) and the DSO coefficients."""
    from community.bills.ledger import month_bounds
    from community.bills.report import accountant_zip, board_report, dso_csv
    from community.bills.statement import BillsError

    engine = _engine(database_url)
    m = _month(engine, month)
    try:
        start, end = month_bounds(m)
        with engine.connect() as conn:
            report = board_report(conn, m)
            archive = accountant_zip(conn, m)
            dso = dso_csv(conn, start, end)
    except BillsError as exc:
        raise _fail(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{m}-board-report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / f"{m}-accountant.zip").write_bytes(archive)
    (out / f"{m}-dso-coefficients.csv").write_text(dso)
    print(json.dumps(report, indent=2, sort_keys=True))


@bills.command("digest")
def digest_cmd(
    send: bool = typer.Option(False, "--send", help="send (default: print what would be sent)"),
    week_end: str | None = typer.Option(None, "--week-end", help="YYYY-MM-DD (default: today, UTC)"),
    base_url: str = typer.Option("http://localhost:8000", "--base-url", help="the web app's URL"),
    smtp_host: str = typer.Option("localhost", "--smtp-host"),
    smtp_port: int = typer.Option(587, "--smtp-port"),
    smtp_user: str | None = typer.Option(None, "--smtp-user"),
    smtp_password_env: str = typer.Option("QUARTIER_SMTP_PASSWORD", "--smtp-password-env",
                                          help="environment variable holding the password"),
    sender: str = typer.Option("quartier@localhost", "--from"),
    ssl: bool = typer.Option(False, "--ssl", help="implicit TLS instead of STARTTLS"),
    ca_file: Path | None = typer.Option(None, "--ca-file", help="CA to verify the SMTP server"),
    database_url: str | None = DB,
) -> None:
    """The weekly digest e-mail to every subscribed member, over SMTP with TLS."""
    from datetime import UTC, datetime

    from community.bills.digest import SmtpConfig, collect, compose
    from community.bills.digest import send as smtp_send
    from community.bills.statement import BillsError

    if week_end:
        try:
            end = int(datetime.strptime(week_end, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
        except ValueError:
            raise _fail(f"--week-end {week_end!r}: expected YYYY-MM-DD") from None
    else:
        end = int(time.time()) // 86400 * 86400
    engine = _engine(database_url)
    with engine.connect() as conn:
        items = collect(conn, end, base_url)
    msgs = [compose(d, sender) for d in items]
    if not send:
        for m in msgs:
            print(m.as_string())
        return
    cfg = SmtpConfig(smtp_host, smtp_port, sender, smtp_user, os.environ.get(smtp_password_env),
                     ssl, str(ca_file) if ca_file else None)
    try:
        sent = smtp_send(msgs, cfg)
    except BillsError as exc:
        raise _fail(str(exc), 1) from None
    print(json.dumps({"sent": sent}))


def register(app: typer.Typer) -> None:
    app.add_typer(bills, name="bills")
