"""Tables of members' accounts in real life: payment requests, helpers, account
replacements, board controls, ceilings and community settings.

Defined on the app's MetaData (`tables.metadata`), so `services.init_app_tables` creates
them with the rest. With a ledger the contracts decide (requests, grants, replacements,
pause and freeze are on chain) and these rows are the app's index of what was done, each
with its transaction; without one they are the record.
"""

from __future__ import annotations

import sqlalchemy as sa

from community.app.tables import metadata

requests = sa.Table(
    "app_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("requester", sa.String(64), nullable=False, index=True),  # a member, or "fund"
    sa.Column("payer", sa.String(64), nullable=True, index=True),  # None: anyone with the link
    sa.Column("unit", sa.String(8), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),  # base units asked
    sa.Column("paid", sa.BigInteger, nullable=False),  # base units paid so far
    sa.Column("memo", sa.String(200), nullable=False),  # kept off chain: the chain sees no memo text
    sa.Column("status", sa.String(10), nullable=False),  # open | paid | refused | withdrawn
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),  # the login that asked
    sa.Column("chain_id", sa.BigInteger, nullable=True),  # the request's id on chain
    sa.Column("tx_hash", sa.String(66), nullable=True),
)

request_events = sa.Table(
    "app_request_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("app_requests.id"), nullable=False, index=True),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("event", sa.String(10), nullable=False),  # requested | paid | refused | withdrawn
    sa.Column("member", sa.String(64), nullable=True),  # whose account
    sa.Column("acted_by", sa.String(64), nullable=True),  # a helper acting for them
    sa.Column("amount", sa.BigInteger, nullable=True),
    sa.Column("tx_hash", sa.String(66), nullable=True),
)

helpers = sa.Table(
    "app_helpers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("member", sa.String(64), nullable=False, index=True),
    sa.Column("helper", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(4), nullable=False),  # view | pay (pay includes view)
    sa.Column("unit", sa.String(8), nullable=True),  # pay grants: the unit
    sa.Column("monthly", sa.BigInteger, nullable=False),  # base units per UTC calendar month
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Column("tx_hash", sa.String(66), nullable=True),
)

replacements = sa.Table(
    "app_replacements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("member", sa.String(64), nullable=False, index=True),
    sa.Column("old_address", sa.String(42), nullable=False),
    sa.Column("new_address", sa.String(42), nullable=False),
    sa.Column("requested_by", sa.String(8), nullable=False),  # member | board
    sa.Column("requested_at", sa.BigInteger, nullable=False),
    sa.Column("ready_at", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # pending | cancelled | executed
    sa.Column("closed_at", sa.BigInteger, nullable=True),
    sa.Column("closed_by", sa.String(64), nullable=True),
    sa.Column("tx_hash", sa.String(66), nullable=True),
)

controls = sa.Table(
    "app_controls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("action", sa.String(10), nullable=False),  # pause | resume | freeze | unfreeze
    sa.Column("member", sa.String(64), nullable=True),  # freeze and unfreeze
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("by", sa.String(64), nullable=False),
    sa.Column("tx_hash", sa.String(66), nullable=True),
)

ceilings = sa.Table(
    "app_ceilings",
    metadata,
    # How much of a unit an account may hold (ComChain's upper limit); no row: no ceiling.
    sa.Column("unit", sa.String(8), primary_key=True),
    sa.Column("ceiling", sa.BigInteger, nullable=False),
)

community_settings = sa.Table(
    "app_community_settings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

guardians = sa.Table(
    "app_guardians",
    metadata,
    # Members a member named to approve their account's replacement instead of the board
    # (`threshold` of them); on chain too when the app has a ledger.
    sa.Column("member", sa.String(64), primary_key=True),
    sa.Column("guardian", sa.String(64), primary_key=True),
    sa.Column("threshold", sa.Integer, nullable=False),
    sa.Column("set_at", sa.BigInteger, nullable=False),
    sa.Column("tx_hash", sa.String(66), nullable=True),
)

approvals = sa.Table(
    "app_guardian_approvals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("member", sa.String(64), nullable=False, index=True),
    sa.Column("guardian", sa.String(64), nullable=False),
    sa.Column("new_address", sa.String(42), nullable=False),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("tx_hash", sa.String(66), nullable=True),
)
