"""Commands: `members`, `gateways`, `ingest`, `intervals`.

Every command that opens the database applies pending migrations first. The database
URL comes from --database-url, else QUARTIER_DATABASE_URL, else ./quartier.sqlite.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, NoReturn

import typer

DbOpt = typer.Option(None, "--database-url", help="SQLAlchemy URL (default: $QUARTIER_DATABASE_URL or sqlite:///quartier.sqlite)")

members_app = typer.Typer(help="Community members.", no_args_is_help=True)
gateways_app = typer.Typer(help="Gateways allowed to sign readings.", no_args_is_help=True)
ingest_app = typer.Typer(help="Verify and store readings from the broker.", no_args_is_help=True)
intervals_app = typer.Typer(help="Energy per meter point and interval.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    print(message, file=sys.stderr)
    raise typer.Exit(code)


def _engine(url: str | None) -> Any:
    from community.db import DatabaseError, open_db

    try:
        return open_db(url)
    except DatabaseError as exc:
        _fail(str(exc))


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def parse_time(value: str, name: str) -> int:
    """Unix seconds from an integer or an ISO 8601 date/time (UTC unless an offset is given)."""
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"{name}: {value!r} is neither Unix seconds nor an ISO date/time like 2024-06-01T00:00Z")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


# --- members -----------------------------------------------------------------------------


@members_app.command("add")
def members_add(
    member_id: str = typer.Option(..., "--id", help="Stable member id, e.g. alice"),
    name: str = typer.Option(..., "--name", help="Display name"),
    database_url: str | None = DbOpt,
) -> None:
    """Add a member."""
    from community import registry

    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            m = registry.add_member(conn, member_id, name)
    except registry.RegistryError as exc:
        _fail(str(exc))
    _print_json({"id": m.id, "name": m.name, "created_at": m.created_at})


@members_app.command("list")
def members_list(database_url: str | None = DbOpt) -> None:
    """List members (JSON)."""
    from community import registry

    with _engine(database_url).connect() as conn:
        _print_json([{"id": m.id, "name": m.name, "created_at": m.created_at}
                     for m in registry.list_members(conn)])


# --- gateways ----------------------------------------------------------------------------


@gateways_app.command("enrol")
def gateways_enrol(
    address: str = typer.Option(..., "--address", help="The gateway's address, 0x…"),
    member: str = typer.Option(..., "--member", help="Member id"),
    meter_point: str = typer.Option(..., "--meter-point", help="Meter point id (created if new)"),
    role: str = typer.Option(..., "--role", help="production | grid"),
    database_url: str | None = DbOpt,
) -> None:
    """Allow a gateway to send readings for a member's meter point."""
    from community import registry

    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            gw = registry.enrol_gateway(conn, address, member, meter_point, role)
    except registry.RegistryError as exc:
        _fail(str(exc))
    _print_json(gw.as_dict())


@gateways_app.command("list")
def gateways_list(database_url: str | None = DbOpt) -> None:
    """List gateways (JSON)."""
    from community import registry

    with _engine(database_url).connect() as conn:
        _print_json([g.as_dict() for g in registry.list_gateways(conn)])


@gateways_app.command("revoke")
def gateways_revoke(
    address: str = typer.Option(..., "--address", help="The gateway's address, 0x…"),
    reason: str = typer.Option("", "--reason", help="Why (kept with the gateway)"),
    database_url: str | None = DbOpt,
) -> None:
    """Stop accepting anything from a gateway (its history stays)."""
    from community import registry

    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            gw = registry.revoke_gateway(conn, address, reason)
    except registry.RegistryError as exc:
        _fail(str(exc))
    _print_json(gw.as_dict())


# --- ingest ------------------------------------------------------------------------------


@ingest_app.command("run")
def ingest_run(
    config: str = typer.Option(..., "--config", help="Ingest TOML file (docs/ingest.md)"),
    database_url: str | None = DbOpt,
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Subscribe, verify, store, acknowledge; runs until SIGTERM/SIGINT."""
    import logging

    from community.ingest.config import ConfigError, load_config
    from community.ingest.runner import run_forever

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc), 2)
    engine = _engine(database_url or cfg.database_url)
    on_commit = None
    if cfg.influx is not None:
        from community.ingest.influx import InfluxExporter

        on_commit = InfluxExporter(cfg.influx, engine, cfg.step_s).on_commit
    worker = run_forever(cfg, engine, on_commit)
    print(json.dumps(worker.totals, sort_keys=True), file=sys.stderr)


@ingest_app.command("stats")
def ingest_stats(database_url: str | None = DbOpt) -> None:
    """Accepted, duplicates, gaps and quarantined messages by reason (JSON)."""
    from community.ingest import store

    with _engine(database_url).connect() as conn:
        _print_json(store.stats(conn))


@ingest_app.command("quarantine")
def ingest_quarantine(
    reason: str | None = typer.Option(None, "--reason", help="Only this reason code"),
    limit: int = typer.Option(50, "--limit"),
    database_url: str | None = DbOpt,
) -> None:
    """The latest quarantined messages with their reason and detail (JSON)."""
    from community.ingest import store

    with _engine(database_url).connect() as conn:
        _print_json(store.quarantined(conn, reason, limit))


# --- intervals ---------------------------------------------------------------------------


@intervals_app.command("show")
def intervals_show(
    meter_point: str = typer.Option(..., "--meter-point"),
    start: str = typer.Option(..., "--from", help="Unix seconds or ISO time (UTC by default)"),
    end: str = typer.Option(..., "--to", help="Unix seconds or ISO time (exclusive)"),
    step: int = typer.Option(900, "--step", help="Interval length in seconds"),
    database_url: str | None = DbOpt,
) -> None:
    """Imported, exported and produced Wh per interval at a meter point (JSON)."""
    from community.ingest import store
    from quartier.intervals import IntervalError

    t0, t1 = parse_time(start, "--from"), parse_time(end, "--to")
    with _engine(database_url).connect() as conn:
        try:
            ivs = store.meter_point_intervals(conn, meter_point, t0, t1, step)
        except IntervalError as exc:
            _fail(str(exc))
    _print_json({
        "meter_point": meter_point, "from": t0, "to": t1, "step_s": step,
        "imported_wh": sum(iv.imported_wh for iv in ivs),
        "exported_wh": sum(iv.exported_wh for iv in ivs),
        "produced_wh": sum(iv.produced_wh for iv in ivs),
        "intervals": [{"start": iv.start, "imported_wh": iv.imported_wh, "exported_wh": iv.exported_wh,
                       "produced_wh": iv.produced_wh, "quality": iv.quality} for iv in ivs],
    })


def register(app: typer.Typer) -> None:
    app.add_typer(members_app, name="members")
    app.add_typer(gateways_app, name="gateways")
    app.add_typer(ingest_app, name="ingest")
    app.add_typer(intervals_app, name="intervals")
