"""Rebuilds balances, statements, settled periods and board actions from the ledger's
events into SQL (tables in schema.py).

Every balance change is in an event: `Settled` (an entry of a batch, with the demurrage
charged to the account when it was touched), `Donated` (a standing order executed in a
batch), `Transferred` (a payment), both with the charges made to both parties,
`AccountReplaced` (every balance moves to the new address).
Demurrage goes to the fund. The indexer reads up to `confirmations` blocks below the
head, so a reorganisation shallower than that never reaches the tables, and it is
idempotent: the cursor and the rows move in one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from community.chain import schema
from community.chain.client import ChainClient

INT64_MAX = 2**63 - 1
MASK128 = 2**128 - 1


class IndexerError(RuntimeError):
    """Logs the indexer cannot apply (a balance beyond int64)."""


class Indexer:
    def __init__(self, client: ChainClient, engine: sa.Engine, *, confirmations: int = 0,
                 batch_blocks: int = 5_000) -> None:
        self.client = client
        self.engine = engine
        self.confirmations = confirmations
        self.batch_blocks = batch_blocks
        schema.create_all(engine)

    @property
    def ledger(self) -> str:
        return self.client.ledger_address

    def sync(self) -> int:
        """Indexes every confirmed block not yet read; returns the number of logs applied."""
        head = int(self.client.w3.eth.block_number) - self.confirmations
        applied = 0
        start = self._cursor()
        while start <= head:
            end = min(head, start + self.batch_blocks - 1)
            logs = self.client.w3.eth.get_logs(
                {"address": self.ledger, "fromBlock": start, "toBlock": end})
            with self.engine.begin() as conn:
                for log in logs:
                    applied += self._apply(conn, log)
                self._set_cursor(conn, end + 1)
            start = end + 1
        return applied

    def balance(self, unit: int, account: str) -> int:
        t = schema.balances
        with self.engine.connect() as c:
            value = c.execute(sa.select(t.c.balance).where(
                t.c.ledger == self.ledger, t.c.unit == unit, t.c.account == account)).scalar()
        return int(value or 0)

    def balances(self, unit: int) -> dict[str, int]:
        t = schema.balances
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t.c.account, t.c.balance).where(
                t.c.ledger == self.ledger, t.c.unit == unit)).all()
        return {r.account: int(r.balance) for r in rows}

    # -- internals --

    def _cursor(self) -> int:
        t = schema.cursors
        with self.engine.connect() as c:
            value = c.execute(sa.select(t.c.next_block).where(t.c.ledger == self.ledger)).scalar()
        return int(value or 0)

    def _set_cursor(self, conn: sa.Connection, next_block: int) -> None:
        t = schema.cursors
        conn.execute(t.delete().where(t.c.ledger == self.ledger))
        conn.execute(t.insert().values(ledger=self.ledger, next_block=next_block))

    def _decode(self, log: Any) -> Any | None:
        events = self.client.ledger.events
        topic = bytes(log["topics"][0]) if log["topics"] else b""
        for name in ("Settled", "Transferred", "Donated", "PeriodSettled", "Paused", "Resumed", "Frozen",
                     "Unfrozen", "AccountReplaced"):
            event = getattr(events, name)()
            if topic == bytes(self.client.w3.keccak(text=_signature(event.abi))):
                return event.process_log(log)
        return None

    def _apply(self, conn: sa.Connection, log: Any) -> int:
        ev = self._decode(log)
        if ev is None:
            return 0
        a = ev["args"]
        where = {"ledger": self.ledger, "block": int(log["blockNumber"]),
                 "tx_hash": "0x" + bytes(log["transactionHash"]).hex()}
        fund = str(self.client.call("FUND"))
        changes: dict[tuple[int, str], int] = defaultdict(int)
        rows: list[dict[str, Any]] = []
        idx = int(log["logIndex"])
        if ev["event"] == "Settled":
            unit, account = int(a["unit"]), str(a["account"])
            changes[(unit, account)] += int(a["amount"]) - int(a["demurrage"])
            changes[(unit, fund)] += int(a["demurrage"])
            rows.append(dict(kind="settlement", unit=unit, account=account, counterparty=None,
                             amount=int(a["amount"]), period_id=int(a["periodId"])))
            if a["demurrage"]:
                rows += _demurrage_rows(unit, account, fund, int(a["demurrage"]))
        elif ev["event"] in ("Transferred", "Donated"):
            unit, amount = int(a["unitAndAmount"]) >> 248, int(a["unitAndAmount"]) & (2**96 - 1)
            c1, c2 = int(a["demurrage"]) & MASK128, int(a["demurrage"]) >> 128
            if ev["event"] == "Donated":
                kind, period = "donation", int(a["periodId"])
                sender, to = str(a["donor"]), str(a["beneficiary"])
            else:
                kind, period = "payment", None
                sender, to = str(a["from"]), str(a["to"])
            changes[(unit, sender)] -= amount + c1
            changes[(unit, to)] += amount - c2
            changes[(unit, fund)] += c1 + c2
            rows.append(dict(kind=kind, unit=unit, account=sender, counterparty=to,
                             amount=-amount, period_id=period))
            rows.append(dict(kind=kind, unit=unit, account=to, counterparty=sender,
                             amount=amount, period_id=period))
            for who, c in ((sender, c1), (to, c2)):
                if c:
                    rows += _demurrage_rows(unit, who, fund, c)
        elif ev["event"] == "AccountReplaced":
            # Every balance of the old address moves to the new one, which starts empty.
            old, new = str(a["from"]), str(a["to"])
            t = schema.balances
            for unit, balance in conn.execute(sa.select(t.c.unit, t.c.balance).where(
                    t.c.ledger == self.ledger, t.c.account == old)).all():
                if balance:
                    changes[(int(unit), old)] -= int(balance)
                    changes[(int(unit), new)] += int(balance)
                    rows.append(dict(kind="replacement", unit=int(unit), account=old, counterparty=new,
                                     amount=-int(balance), period_id=None))
                    rows.append(dict(kind="replacement", unit=int(unit), account=new, counterparty=old,
                                     amount=int(balance), period_id=None))
        elif ev["event"] == "PeriodSettled":
            conn.execute(schema.periods.insert().values(
                ledger=self.ledger, period_id=int(a["periodId"]), period_end=int(a["periodEnd"]),
                intervals_root="0x" + bytes(a["intervalsRoot"]).hex(), tx_hash=where["tx_hash"],
                block=where["block"]))
            return 1
        else:
            conn.execute(schema.board_actions.insert().values(
                ledger=self.ledger, block=where["block"], tx_hash=where["tx_hash"],
                action=ev["event"].lower(), account=a.get("account"), by=str(a["by"]),
                reason=str(a["reason"])))
            return 1
        for row in rows:
            conn.execute(schema.movements.insert().values(log_index=idx, **where, **row))
        for (unit, account), delta in changes.items():
            if delta:
                self._add(conn, unit, account, delta)
        return 1

    def _add(self, conn: sa.Connection, unit: int, account: str, delta: int) -> None:
        t = schema.balances
        key = (t.c.ledger == self.ledger) & (t.c.unit == unit) & (t.c.account == account)
        current = conn.execute(sa.select(t.c.balance).where(key)).scalar()
        new = int(current or 0) + delta
        if abs(new) > INT64_MAX:
            raise IndexerError(f"balance of {account} in unit {unit} exceeds int64: {new}")
        if current is None:
            conn.execute(t.insert().values(ledger=self.ledger, unit=unit, account=account, balance=new))
        else:
            conn.execute(t.update().where(key).values(balance=new))


def _demurrage_rows(unit: int, account: str, fund: str, charge: int) -> list[dict[str, Any]]:
    return [dict(kind="demurrage", unit=unit, account=account, counterparty=fund, amount=-charge,
                 period_id=None),
            dict(kind="demurrage", unit=unit, account=fund, counterparty=account, amount=charge,
                 period_id=None)]


def _signature(abi: dict[str, Any]) -> str:
    return f"{abi['name']}({','.join(i['type'] for i in abi['inputs'])})"
