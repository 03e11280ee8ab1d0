"""The indexer rebuilds every balance, statement, period and board action from events."""

from __future__ import annotations

import sqlalchemy as sa

from community.chain import devnet, schema
from community.chain.indexer import Indexer
from community.chain.intents import Donation, Entry
from community.chain.orders import StandingOrdersClient
from tests.chain.conftest import DAY, HOUR, KWH, Chain


def test_indexer_rebuilds_balances_from_events(chain: Chain, tmp_path) -> None:  # type: ignore[no-untyped-def]
    c = chain.client
    fund = c.address
    c.set_limits(HOUR, fund, -10**9, 10**9)
    orders = StandingOrdersClient.deploy_for(c)
    gift = orders.set(orders.sign_set(chain.members[0], chain.member(0), chain.member(1), wh=120))
    c.settle_batch(chain.batch(chain.day0, {0: (0, 900, 900), 1: (500, 0, -500), 2: (400, 0, -400)},
                               extra=[Entry(chain.member(0), HOUR, 2_000), Entry(fund, HOUR, -2_000)],
                               donations=[Donation(gift, chain.member(0), 120)]))
    assert c.balance(KWH, chain.member(1)) == -380
    devnet.advance_time(c.w3, 10 * DAY)
    p = c.payment(chain.member(0), chain.member(3), "HOUR", 700)
    c.relay_payment(p, c.sign_payment(chain.members[0], p))
    c.freeze(chain.member(2), "lost phone")

    engine = sa.create_engine(f"sqlite:///{tmp_path}/chain.db")
    indexer = Indexer(c, engine)
    assert indexer.sync() > 0
    assert indexer.sync() == 0  # idempotent: nothing new
    for unit in (KWH, HOUR):
        rebuilt = indexer.balances(unit)
        owed = sum(c.account_state(unit, a).owed for a in rebuilt)
        for account, balance in rebuilt.items():
            # The indexer credits demurrage to the fund when charged, the chain when collected.
            expected = (c.balance(unit, account) + owed if account == fund
                        else c.account_state(unit, account).balance)
            assert balance == expected, (unit, account)
        assert sum(rebuilt.values()) == 0
    assert indexer.balance(HOUR, fund) > -2_000  # demurrage reached the fund
    with engine.connect() as conn:
        kinds = {r.kind for r in conn.execute(sa.select(schema.movements.c.kind))}
        assert kinds == {"settlement", "donation", "payment", "demurrage"}
        period = conn.execute(sa.select(schema.periods)).one()
        assert period.period_id == chain.day0 and period.intervals_root == "0x" + "99" * 32
        action = conn.execute(sa.select(schema.board_actions)).one()
        assert (action.action, action.account, action.reason) == ("frozen", chain.member(2), "lost phone")
