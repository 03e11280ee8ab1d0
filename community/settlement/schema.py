"""Settlement's tables (prefix `settle_`), on the shared `community.db.metadata`.

The chain is the system of record for balances; these tables keep what the chain does
not: each period's batch as built (for idempotent re-runs and certificates), movements
with their reasons (for statements), flows (who consumed whose energy), and members
carried for lack of a valid claim. Migration: community/migrations/versions/
0101_settlement.py.
"""

from __future__ import annotations

import sqlalchemy as sa

from community.db import metadata

settle_accounts = sa.Table(
    "settle_accounts",
    metadata,
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("address", sa.String(42), nullable=False, unique=True),  # EIP-55, on the ledger
)

settle_periods = sa.Table(
    "settle_periods",
    metadata,
    sa.Column("period_start", sa.BigInteger, primary_key=True, autoincrement=False),  # s
    sa.Column("period_end", sa.BigInteger, nullable=False),
    sa.Column("key", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # built | submitted | settled
    sa.Column("root", sa.String(66), nullable=False),
    sa.Column("tx_hash", sa.String(66), nullable=True),
    sa.Column("ledger", sa.String(42), nullable=True),
    sa.Column("record", sa.Text, nullable=False),  # JSON: settled gateways, leaves, carried
    sa.Column("created_at", sa.BigInteger, nullable=False),  # ms
    sa.Column("settled_at", sa.BigInteger, nullable=True),
    sa.Column("reconciled", sa.Boolean, nullable=True),
)

settle_movements = sa.Table(
    "settle_movements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("period_start", sa.BigInteger, nullable=False),
    sa.Column("account", sa.String(64), nullable=False),  # member id or "fund"
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("counterparty", sa.String(64), nullable=False, server_default=""),
    sa.Index("ix_settle_movements_account", "account", "period_start"),
)

settle_entries = sa.Table(
    "settle_entries",
    metadata,
    sa.Column("period_start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("unit", sa.String(16), primary_key=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
)

settle_flows = sa.Table(
    "settle_flows",
    metadata,
    sa.Column("period_start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("interval_start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("producer", sa.String(64), primary_key=True),
    sa.Column("consumer", sa.String(64), primary_key=True),  # "grid" for export beyond
    sa.Column("wh", sa.BigInteger, nullable=False),
)

settle_carried = sa.Table(
    "settle_carried",
    metadata,
    sa.Column("period_start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
)
