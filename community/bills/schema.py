"""Billing's tables (prefix `bills_`), on the shared `community.db.metadata`.

- `bills_members`: what a statement needs beyond the ledger: the member's language,
  e-mail, supplier tariff, whether neighbours may see their name as a source of energy,
  and the digest subscription with its unsubscribe token.
- `bills_runs`: one row per billing run. A month has at most one draft (replaced by each
  new draft) and at most one final run; final runs are numbered 1, 2, 3... across months.
- `bills_statements`: the figures of each member's statement in a run (canonical JSON and
  its SHA-256). Rows of a final run are only ever inserted, never updated.
- `bills_credit_notes`: corrections of a final statement, numbered, each referencing the
  original run and member, with the difference and the corrected figures.

Migration: community/migrations/versions/0301_bills.py.
"""

from __future__ import annotations

import sqlalchemy as sa

from community.db import metadata

bills_members = sa.Table(
    "bills_members",
    metadata,
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("lang", sa.String(2), nullable=False, server_default="fr"),  # fr | en
    sa.Column("email", sa.String(254), nullable=True),
    # May neighbours see this member's name as the source of their energy?
    sa.Column("name_consent", sa.Boolean, nullable=False, server_default=sa.false()),
    # The member's own supplier price, cents per kWh, as decimal text (e.g. "25.16").
    sa.Column("tariff_ct_kwh", sa.String(16), nullable=True),
    sa.Column("digest", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("unsubscribe_token", sa.String(64), nullable=True, unique=True),
)

bills_runs = sa.Table(
    "bills_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("month", sa.String(7), nullable=False),  # YYYY-MM
    sa.Column("kind", sa.String(8), nullable=False),  # draft | final
    sa.Column("number", sa.Integer, nullable=True, unique=True),  # final runs only
    sa.Column("created_at", sa.BigInteger, nullable=False),  # ms
    sa.Column("periods", sa.Text, nullable=False),  # JSON: period starts included
    sa.Column("summary", sa.Text, nullable=False),  # JSON: the run's summary.json
    sa.Index("ix_bills_runs_month", "month", "kind"),
)

bills_statements = sa.Table(
    "bills_statements",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("bills_runs.id"), primary_key=True),
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),  # canonical JSON of the statement
    sa.Column("sha256", sa.String(64), nullable=False),
)

bills_credit_notes = sa.Table(
    "bills_credit_notes",
    metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("bills_runs.id"), nullable=False),
    sa.Column("member_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # ms
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("delta", sa.Text, nullable=False),  # JSON: corrected - previous, per figure
    sa.Column("doc", sa.Text, nullable=False),  # JSON: the corrected statement
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Index("ix_bills_credit_notes_run", "run_id", "member_id"),
)
