"""The settlement journal in SQL: signed transactions recorded before broadcast."""

from __future__ import annotations

import sqlalchemy as sa

from community.chain import schema
from community.chain.client import Submission


class SqlJournal:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get(self, ledger: str, period_id: int) -> Submission | None:
        t = schema.submissions
        with self.engine.connect() as c:
            row = c.execute(sa.select(t).where(t.c.ledger == ledger, t.c.period_id == period_id)).first()
        if row is None:
            return None
        return Submission(row.ledger, row.period_id, row.tx_hash, row.raw_tx, row.status)

    def put(self, submission: Submission) -> None:
        t = schema.submissions
        with self.engine.begin() as c:
            c.execute(t.delete().where(t.c.ledger == submission.ledger,
                                       t.c.period_id == submission.period_id))
            c.execute(t.insert().values(ledger=submission.ledger, period_id=submission.period_id,
                                        tx_hash=submission.tx_hash, raw_tx=submission.raw_tx,
                                        status=submission.status))
