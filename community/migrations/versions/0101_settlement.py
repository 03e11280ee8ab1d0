"""Settlement: periods, movements, entries, flows, carried members, ledger accounts.

Revision ID: 0101_settlement
Revises: (own branch "settlement")
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0101_settlement"
down_revision = None
branch_labels = ("settlement",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settle_accounts",
        sa.Column("member_id", sa.String(64), primary_key=True),
        sa.Column("address", sa.String(42), nullable=False, unique=True),
    )
    op.create_table(
        "settle_periods",
        sa.Column("period_start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("period_end", sa.BigInteger, nullable=False),
        sa.Column("key", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("root", sa.String(66), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("ledger", sa.String(42), nullable=True),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("settled_at", sa.BigInteger, nullable=True),
        sa.Column("reconciled", sa.Boolean, nullable=True),
    )
    op.create_table(
        "settle_movements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("period_start", sa.BigInteger, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("counterparty", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("ix_settle_movements_account", "settle_movements", ["account", "period_start"])
    op.create_table(
        "settle_entries",
        sa.Column("period_start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("unit", sa.String(16), primary_key=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "settle_flows",
        sa.Column("period_start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("interval_start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("producer", sa.String(64), primary_key=True),
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("wh", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "settle_carried",
        sa.Column("period_start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("member_id", sa.String(64), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for name in ("settle_carried", "settle_flows", "settle_entries", "settle_movements",
                 "settle_periods", "settle_accounts"):
        op.drop_table(name)
