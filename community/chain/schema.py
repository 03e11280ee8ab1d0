"""SQL tables of the chain client (SQLAlchemy Core), all prefixed `chain_`.

`metadata` is meant to be included in the community database's migrations; `create_all`
creates the tables directly (tests, the embedded default).

Balances are BIGINT: the contract allows int96, the indexer refuses a balance beyond
int64 (9.2e18 Wh) rather than round it.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Signed settlement transactions, recorded before they are broadcast (see client.py).
submissions = sa.Table(
    "chain_submissions", metadata,
    sa.Column("ledger", sa.String(42), primary_key=True),
    sa.Column("period_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("tx_hash", sa.String(66), nullable=False),
    sa.Column("raw_tx", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # sent, mined, failed
)

# How far the indexer has read each ledger's logs.
cursors = sa.Table(
    "chain_cursors", metadata,
    sa.Column("ledger", sa.String(42), primary_key=True),
    sa.Column("next_block", sa.BigInteger, nullable=False),
)

balances = sa.Table(
    "chain_balances", metadata,
    sa.Column("ledger", sa.String(42), primary_key=True),
    sa.Column("unit", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("account", sa.String(42), primary_key=True),
    sa.Column("balance", sa.BigInteger, nullable=False),
)

# Every balance movement, one row per account affected: an account's statement.
movements = sa.Table(
    "chain_movements", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ledger", sa.String(42), nullable=False),
    sa.Column("block", sa.BigInteger, nullable=False),
    sa.Column("log_index", sa.Integer, nullable=False),
    sa.Column("tx_hash", sa.String(66), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # settlement, payment, demurrage, replacement
    sa.Column("unit", sa.SmallInteger, nullable=False),
    sa.Column("account", sa.String(42), nullable=False),
    sa.Column("counterparty", sa.String(42)),
    sa.Column("amount", sa.BigInteger, nullable=False),  # signed change of this account
    sa.Column("period_id", sa.BigInteger),
    sa.Index("chain_movements_account", "ledger", "account", "unit"),
)

periods = sa.Table(
    "chain_periods", metadata,
    sa.Column("ledger", sa.String(42), primary_key=True),
    sa.Column("period_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("period_end", sa.BigInteger, nullable=False),
    sa.Column("intervals_root", sa.String(66), nullable=False),
    sa.Column("tx_hash", sa.String(66), nullable=False),
    sa.Column("block", sa.BigInteger, nullable=False),
)

# Pauses, resumptions, freezes: listed in the app for every member to see.
board_actions = sa.Table(
    "chain_board_actions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ledger", sa.String(42), nullable=False),
    sa.Column("block", sa.BigInteger, nullable=False),
    sa.Column("tx_hash", sa.String(66), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # paused, resumed, frozen, unfrozen
    sa.Column("account", sa.String(42)),
    sa.Column("by", sa.String(42), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)


def create_all(engine: sa.Engine) -> None:
    metadata.create_all(engine)
