"""Registry (members, meter points, gateways) and ingest (readings, quarantine, claims).

Revision ID: 0001_registry_ingest
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_registry_ingest"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "meter_points",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(64), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "gateways",
        sa.Column("address", sa.String(42), primary_key=True),
        sa.Column("member_id", sa.String(64), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("meter_point", sa.String(64), sa.ForeignKey("meter_points.id"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active_from", sa.BigInteger, nullable=False),
        sa.Column("active_to", sa.BigInteger, nullable=True),
        sa.Column("revoked_reason", sa.String(200), nullable=True),
    )
    op.create_table(
        "readings",
        sa.Column("gw", sa.String(42), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("dev", sa.String(64), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("prev", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("sig", sa.LargeBinary(65), nullable=False),
        sa.Column("e_imp_wh", sa.BigInteger, nullable=True),
        sa.Column("e_exp_wh", sa.BigInteger, nullable=True),
        sa.Column("e_prod_wh", sa.BigInteger, nullable=True),
        sa.Column("p_w", sa.BigInteger, nullable=True),
        sa.Column("flags", sa.String(200), nullable=False, server_default=""),
        sa.Column("meter", sa.String(64), nullable=True),
        sa.Column("received_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_readings_gw_dev_seq", "readings", ["gw", "dev", "seq"])
    op.create_index("ix_readings_ts", "readings", ["ts"])
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("topic", sa.String(300), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("gw", sa.String(42), nullable=True),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_quarantine_reason", "quarantine", ["reason"])
    op.create_table(
        "claims",
        sa.Column("gw", sa.String(42), primary_key=True),
        sa.Column("period_start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("period_end", sa.BigInteger, nullable=False),
        sa.Column("community", sa.String(64), nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("imported_wh", sa.BigInteger, nullable=False),
        sa.Column("exported_wh", sa.BigInteger, nullable=False),
        sa.Column("produced_wh", sa.BigInteger, nullable=False),
        sa.Column("intervals_root", sa.String(66), nullable=False),
        sa.Column("sig", sa.LargeBinary(65), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("checked_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "ingest_counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        sa.table("ingest_counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
        [{"name": "duplicates", "value": 0}],
    )


def downgrade() -> None:
    for name in ("ingest_counters", "claims", "quarantine", "readings", "gateways",
                 "meter_points", "members"):
        op.drop_table(name)
