"""Tables the web app owns: login accounts and sessions.

Kept in their own MetaData and created with `create_all` on the community database, so
the app adds nothing to the ingest and settlement schemas and can be dropped without
touching them. Accounts link to a member of the registry by id; board and grid-operator
accounts may have no member.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ROLES = ("member", "board", "operator")

accounts = sa.Table(
    "app_accounts",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("member_id", sa.String(64), nullable=True, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("display_name", sa.String(128), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("lang", sa.String(2), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # Unix seconds
    sa.CheckConstraint("role IN ('member', 'board', 'operator')", name="ck_app_accounts_role"),
)

sessions = sa.Table(
    "app_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),  # SHA-256 of the cookie token
    sa.Column("username", sa.String(64), sa.ForeignKey("app_accounts.username"), nullable=True),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)

# --- what members do in the app -------------------------------------------------------
# Member-initiated movements (market trades, service and delivery payments) are journalled
# here, one row per leg, before they are relayed to the ledger contract; `tx_hash` is set
# once the relayer's transaction is mined. Settlement's own movements (allocation,
# export, donation, demurrage) live in the settlement tables and are read from there.

offers = sa.Table(
    "app_offers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("member_id", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(8), nullable=False),  # energy | hours | goods
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("unit", sa.String(8), nullable=False),  # what is offered: KWH, HOUR, KG
    # Base units still available; the price is the community's reference rate, paid in
    # whichever unit the buyer chooses.
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # open | closed
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),  # room for categories/expiry
    sa.Column("category", sa.String(32), nullable=True),
    # kind "want": a member asks for `quantity` of `unit` and pays in `pay_unit` once done.
    sa.Column("pay_unit", sa.String(8), nullable=True),
)

trades = sa.Table(
    "app_trades",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("offer_id", sa.Integer, sa.ForeignKey("app_offers.id"), nullable=True),
    sa.Column("buyer", sa.String(64), nullable=False, index=True),
    sa.Column("seller", sa.String(64), nullable=False, index=True),
    sa.Column("unit", sa.String(8), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("pay_unit", sa.String(8), nullable=False),
    sa.Column("pay_amount", sa.BigInteger, nullable=False),
    sa.Column("description", sa.String(200), nullable=False),
    # Energy trades settle at once; a service or a delivery waits for the buyer to confirm.
    sa.Column("status", sa.String(10), nullable=False),  # settled | awaiting
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("confirmed_at", sa.BigInteger, nullable=True),
)

entries = sa.Table(
    "app_entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("account", sa.String(64), nullable=False, index=True),
    sa.Column("unit", sa.String(8), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),  # signed base units
    sa.Column("reason", sa.String(16), nullable=False),  # trade | redemption | ...
    sa.Column("counterparty", sa.String(64), nullable=True),
    sa.Column("ref", sa.String(64), nullable=True),  # e.g. trade:12
    sa.Column("memo", sa.String(200), nullable=True),
    sa.Column("tx_hash", sa.String(66), nullable=True),
    sa.Column("acted_by", sa.String(64), nullable=True),  # a helper acting for the member
)

donation_orders = sa.Table(
    "app_donation_orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("donor", sa.String(64), nullable=False, index=True),
    sa.Column("beneficiary", sa.String(64), nullable=False),
    sa.Column("wh_per_day", sa.BigInteger, nullable=False),  # 0 for a share order
    sa.Column("share_bp", sa.Integer, nullable=False),  # 1/100 % of export; 0 for fixed
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("ended_at", sa.BigInteger, nullable=True),
    # the order's id on the ledger's StandingOrders contract, when it was signed there
    sa.Column("chain_order", sa.BigInteger, nullable=True),
)

proposals = sa.Table(
    "app_proposals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # rate | floor | demurrage | cap | other
    sa.Column("subject", sa.String(32), nullable=True),  # e.g. the unit concerned
    sa.Column("value", sa.String(64), nullable=True),  # the proposed value, as text
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("closes_at", sa.BigInteger, nullable=False),
)

votes = sa.Table(
    "app_votes",
    metadata,
    sa.Column("proposal_id", sa.Integer, sa.ForeignKey("app_proposals.id"), primary_key=True),
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("choice", sa.String(8), nullable=False),  # yes | no | abstain
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("tx_hash", sa.String(66), nullable=True),
)

fund_preferences = sa.Table(
    "app_fund_preferences",
    metadata,
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("shares", sa.Text, nullable=False),  # JSON {purpose: basis points}, sum 10000
    sa.Column("ts", sa.BigInteger, nullable=False),
)

rates = sa.Table(
    "app_rates",
    metadata,
    # Reference rates voted by the community: 1 `unit` is worth `wh` Wh of energy.
    sa.Column("unit", sa.String(8), primary_key=True),
    sa.Column("wh_per_unit", sa.BigInteger, nullable=False),
    sa.Column("floor", sa.BigInteger, nullable=False),  # default floor, base units (negative)
)

exchange_offers = sa.Table(
    "app_exchange_offers",
    metadata,
    # An energy offer's consent on the Exchange contract: the seller's EIP-712 signature of
    # an `Offer` for the whole quantity, one per payment unit, all with the same nonce
    # (community.app.exchange_trades). Kept by the relayer until a buyer takes one.
    sa.Column("offer_id", sa.Integer, sa.ForeignKey("app_offers.id"), primary_key=True),
    sa.Column("pay_unit", sa.String(8), primary_key=True),
    sa.Column("maker", sa.String(42), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),  # Wh
    sa.Column("nonce", sa.BigInteger, nullable=False),
    sa.Column("deadline", sa.BigInteger, nullable=False),  # chain time, Unix seconds
    sa.Column("signature", sa.String(132), nullable=False),
)
