"""The community server's system of record: SQLAlchemy Core over SQLite (WAL) or PostgreSQL.

`open_db(url)` returns an engine with every migration applied (Alembic, shipped in
`community/migrations/`), so each command that touches the database can simply open it.
The URL comes from `--database-url`, else QUARTIER_DATABASE_URL, else a SQLite file in
the working directory.

Other areas add their tables to `metadata` here (import it from this module) in a
`schema.py` of their package, and their own Alembic revision in
`community/migrations/versions/`; migrations are applied to every head.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

DEFAULT_URL = "sqlite:///quartier.sqlite"
ENV_URL = "QUARTIER_DATABASE_URL"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Packages whose `schema` module adds tables to `metadata` (loaded when present).
SCHEMA_MODULES = ("community.chain.schema", "community.settlement.schema")
SQLITE_BUSY_TIMEOUT_MS = 30_000  # several ingest processes share one file: wait, don't fail

metadata = sa.MetaData()

# --- registry -------------------------------------------------------------------------

members = sa.Table(
    "members", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # ms since epoch
)

meter_points = sa.Table(
    "meter_points", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("member_id", sa.String(64), sa.ForeignKey("members.id"), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

gateways = sa.Table(
    "gateways", metadata,
    sa.Column("address", sa.String(42), primary_key=True),  # EIP-55
    sa.Column("member_id", sa.String(64), sa.ForeignKey("members.id"), nullable=False),
    sa.Column("meter_point", sa.String(64), sa.ForeignKey("meter_points.id"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # production | grid
    sa.Column("active_from", sa.BigInteger, nullable=False),  # ms
    sa.Column("active_to", sa.BigInteger, nullable=True),  # ms, set on revoke
    sa.Column("revoked_reason", sa.String(200), nullable=True),
)

# --- ingest ---------------------------------------------------------------------------

readings = sa.Table(
    "readings", metadata,
    sa.Column("gw", sa.String(42), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("dev", sa.String(64), nullable=False),
    sa.Column("ts", sa.BigInteger, nullable=False),  # ms, from the signed body
    sa.Column("prev", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),  # keccak256 of body
    sa.Column("body", sa.Text, nullable=False),  # the exact signed bytes
    sa.Column("sig", sa.LargeBinary(65), nullable=False),
    # Copies of body values the server queries (energy, power, segments).
    sa.Column("e_imp_wh", sa.BigInteger, nullable=True),
    sa.Column("e_exp_wh", sa.BigInteger, nullable=True),
    sa.Column("e_prod_wh", sa.BigInteger, nullable=True),
    sa.Column("p_w", sa.BigInteger, nullable=True),
    sa.Column("flags", sa.String(200), nullable=False, server_default=""),
    sa.Column("meter", sa.String(64), nullable=True),
    sa.Column("received_at", sa.BigInteger, nullable=False),
    sa.Index("ix_readings_gw_dev_seq", "gw", "dev", "seq"),
    sa.Index("ix_readings_ts", "ts"),
)

quarantine = sa.Table(
    "quarantine", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.BigInteger, nullable=False),
    sa.Column("topic", sa.String(300), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("gw", sa.String(42), nullable=True),
    sa.Column("seq", sa.BigInteger, nullable=True),
    sa.Column("payload", sa.LargeBinary, nullable=False),  # first bytes only, see ingest
    sa.Index("ix_quarantine_reason", "reason"),
)

claims = sa.Table(
    "claims", metadata,
    sa.Column("gw", sa.String(42), primary_key=True),
    sa.Column("period_start", sa.BigInteger, primary_key=True, autoincrement=False),  # s
    sa.Column("period_end", sa.BigInteger, nullable=False),
    sa.Column("community", sa.String(64), nullable=False),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("imported_wh", sa.BigInteger, nullable=False),
    sa.Column("exported_wh", sa.BigInteger, nullable=False),
    sa.Column("produced_wh", sa.BigInteger, nullable=False),
    sa.Column("intervals_root", sa.String(66), nullable=False),
    sa.Column("sig", sa.LargeBinary(65), nullable=False),
    sa.Column("message", sa.Text, nullable=False),  # the /claim payload as received
    sa.Column("status", sa.String(16), nullable=False),  # pending | verified
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("received_at", sa.BigInteger, nullable=False),
    sa.Column("checked_at", sa.BigInteger, nullable=True),
)

ingest_counters = sa.Table(
    "ingest_counters", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)


class DatabaseError(RuntimeError):
    """The database cannot be opened or migrated; the message says which URL and why."""


def resolve_url(option: str | None = None) -> str:
    return option or os.environ.get(ENV_URL) or DEFAULT_URL


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_setup(engine: Engine, synchronous: str) -> None:
    # pysqlite's own transaction handling defers BEGIN; take the write lock at BEGIN
    # instead (BEGIN IMMEDIATE), so that a transaction's reads see what it will write
    # over, and concurrent writers queue on busy_timeout instead of failing mid-way.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextlib.contextmanager
def write_lock(engine: Engine) -> Iterator[None]:
    """Queue writers of one SQLite file on an OS lock that wakes the next one at once.

    SQLite's own busy handler polls with sleeps of up to 100 ms, which leaves the database
    idle between two ingest processes' batches. Other databases need nothing here.
    """
    path = engine.url.database if is_sqlite(engine) else None
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.writelock", "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load_schemas() -> list[str]:
    """Import the other areas' schema modules so their tables join `metadata`."""
    loaded = []
    for name in SCHEMA_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name or name.startswith(f"{exc.name}."):
                continue
            raise
        loaded.append(name)
    return loaded


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration not yet applied (to all heads)."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
        conn.rollback()
    if current == set(script.get_heads()):
        return
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def open_db(url: str | None = None, *, synchronous: str = "FULL", migrate_now: bool = True) -> Engine:
    """An engine for `url` (see `resolve_url`), migrated to the latest schema."""
    url = resolve_url(url)
    try:
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            _sqlite_setup(engine, synchronous)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
        load_schemas()
        if migrate_now:
            migrate(engine)
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(f"cannot open database {_safe(url)}: {exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0]}") from None
    return engine


def _safe(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable URL>"
