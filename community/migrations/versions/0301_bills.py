"""Billing: member settings, billing runs, statements, credit notes.

Revision ID: 0301_bills
Revises: (own branch "bills")
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0301_bills"
down_revision = None
branch_labels = ("bills",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bills_members",
        sa.Column("member_id", sa.String(64), primary_key=True),
        sa.Column("lang", sa.String(2), nullable=False, server_default="fr"),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("name_consent", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("tariff_ct_kwh", sa.String(16), nullable=True),
        sa.Column("digest", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("unsubscribe_token", sa.String(64), nullable=True, unique=True),
    )
    op.create_table(
        "bills_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("number", sa.Integer, nullable=True, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("periods", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
    )
    op.create_index("ix_bills_runs_month", "bills_runs", ["month", "kind"])
    op.create_table(
        "bills_statements",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("bills_runs.id"), primary_key=True),
        sa.Column("member_id", sa.String(64), primary_key=True),
        sa.Column("doc", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "bills_credit_notes",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("bills_runs.id"), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("delta", sa.Text, nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_index("ix_bills_credit_notes_run", "bills_credit_notes", ["run_id", "member_id"])


def downgrade() -> None:
    for name in ("bills_credit_notes", "bills_statements", "bills_runs", "bills_members"):
        op.drop_table(name)
