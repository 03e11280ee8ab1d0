"""The app's side of requests, helpers, replacement and board controls on the ledger.

Each operation opens the acting member's custody key for one signature, inside the
request of that authenticated member, and relays the intent through the suite's contracts
(`community.chain.accounts`); the relayer pays the gas and cannot forge or replay. Memos
never reach the chain: intents carry an empty memo and the text stays in the app's rows.
A refusal on chain becomes a `ServiceError` that names the rule and the amounts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from community.app.relay import RELAYED_UNITS, _shown, ledger_address, refusal
from community.app.services import ServiceError
from community.custody import Custody, CustodyError, SelfCustody

T = TypeVar("T")


class LedgerOps:
    def __init__(self, chain: Any, custody: Custody, suite: Any) -> None:
        self.chain = chain
        self.custody = custody
        self.suite = suite

    def relays(self, unit: str) -> bool:
        return unit in RELAYED_UNITS

    # -- plumbing --

    def address(self, conn: sa.Connection, member: str) -> str:
        if member == "fund":
            return str(self.chain.call("FUND"))
        address = ledger_address(conn, member)
        if address is None:
            raise ServiceError("err.no_ledger_account", "amount", member=member, amount="", unit="")
        return address

    def _key(self, conn: sa.Connection, member: str) -> Any:
        try:
            return self.custody.unlock(conn, member)
        except SelfCustody:
            raise ServiceError("err.self_custody_action", "") from None
        except CustodyError as exc:
            raise ServiceError("err.chain", "", amount="", unit="", reason=str(exc)) from None

    def _run(self, fn: Callable[[], T], unit: str = "", amount: int = 0) -> T:
        from community.chain.client import ChainError, LedgerRevert

        try:
            return fn()
        except LedgerRevert as exc:
            raise _refusal(exc, unit, amount) from None
        except ChainError as exc:
            raise ServiceError("err.chain", "amount", amount=_shown(unit, amount) if unit else "",
                               unit=unit, reason=str(exc)) from None

    def now(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    # -- payment requests --

    def create_request(self, conn: sa.Connection, requester: str, payer: str | None, unit: str, amount: int,
                       expires_at: int) -> tuple[int, str]:
        reqs = self.suite.requests
        payer_address = self.address(conn, payer) if payer else None
        if requester == "fund":
            def board() -> tuple[int, str]:
                receipt_id = reqs.request_for_fund(payer_address, unit, amount, expires_at=expires_at)
                return receipt_id, ""
            return self._run(board, unit, amount)
        key = self._key(conn, requester)
        intent = reqs.sign_request(key, self.address(conn, requester), payer_address, unit, amount,
                                   expires_at=expires_at)
        del key

        def send() -> tuple[int, str]:
            receipt = reqs.relay(intent)
            (ev,) = reqs.events(receipt, "Requested")
            return int(ev["args"]["request"]), _tx(receipt)
        return self._run(send, unit, amount)

    def pay_request(self, conn: sa.Connection, payer: str, chain_id: int, unit: str, amount: int) -> str:
        key = self._key(conn, payer)
        intent = self.suite.requests.sign_pay(key, self.address(conn, payer), chain_id, amount)
        del key
        return self._run(lambda: _tx(self.suite.requests.relay(intent)), unit, amount)

    def refuse_request(self, conn: sa.Connection, payer: str, chain_id: int) -> str:
        key = self._key(conn, payer)
        intent = self.suite.requests.sign_refuse(key, self.address(conn, payer), chain_id)
        del key
        return self._run(lambda: _tx(self.suite.requests.relay(intent)))

    def withdraw_request(self, conn: sa.Connection, requester: str, chain_id: int) -> str:
        key = self._key(conn, requester)
        intent = self.suite.requests.sign_withdraw(key, self.address(conn, requester), chain_id)
        del key
        return self._run(lambda: _tx(self.suite.requests.relay(intent)))

    # -- helpers --

    def grant(self, conn: sa.Connection, member: str, helper: str, kind: str, unit: str | None, monthly: int,
              expires_at: int) -> str:
        from community.chain.accounts import PAY, VIEW

        key = self._key(conn, member)
        intent = self.suite.helpers.sign_grant(key, self.address(conn, member), self.address(conn, helper),
                                               kind=PAY if kind == "pay" else VIEW, unit=unit or 0,
                                               monthly=monthly, expires_at=expires_at)
        del key
        return self._run(lambda: _tx(self.suite.helpers.relay(intent)))

    def revoke(self, conn: sa.Connection, member: str, helper: str) -> str:
        key = self._key(conn, member)
        intent = self.suite.helpers.sign_revoke(key, self.address(conn, member), self.address(conn, helper))
        del key
        return self._run(lambda: _tx(self.suite.helpers.relay(intent)))

    def pay_for(self, conn: sa.Connection, helper: str, member: str, to: str, unit: str, amount: int) -> str:
        key = self._key(conn, helper)
        intent = self.suite.helpers.sign_pay_for(key, self.address(conn, helper), self.address(conn, member),
                                                 self.address(conn, to), unit, amount)
        del key
        return self._run(lambda: _tx(self.suite.helpers.relay(intent)), unit, amount)

    # -- account replacement --

    def request_replacement(self, conn: sa.Connection, member: str, new: str, *, by_board: bool) -> tuple[str, int]:
        rec = self.suite.recovery
        old = self.address(conn, member)
        if by_board:
            tx = self._run(lambda: rec.request_by_board(old, new))
        else:
            key = self._key(conn, member)
            intent = rec.sign_request(key, old, new)
            del key
            tx = self._run(lambda: _tx(rec.relay(intent)))
        pending = rec.pending(old)
        return tx, int(pending.ready_at) if pending else 0

    def cancel_replacement(self, conn: sa.Connection, member: str, old: str, *, by_board: bool) -> str:
        rec = self.suite.recovery
        if by_board:
            return self._run(lambda: rec.cancel_by_board(old))
        key = self._key(conn, member)
        intent = rec.sign_cancel(key, old)
        del key
        return self._run(lambda: _tx(rec.relay(intent)))

    def set_guardians(self, conn: sa.Connection, member: str, guardians: list[str], threshold: int) -> str:
        rec = self.suite.recovery
        key = self._key(conn, member)
        intent = rec.sign_guardians(key, self.address(conn, member), [self.address(conn, g) for g in guardians],
                                    threshold)
        del key
        return self._run(lambda: _tx(rec.relay(intent)))

    def approve_replacement(self, conn: sa.Connection, guardian: str, member: str, new: str) -> tuple[str, int | None]:
        """A guardian's approval; returns the transaction and, once enough guardians
        approved, the time the replacement can be completed."""
        rec = self.suite.recovery
        old = self.address(conn, member)
        key = self._key(conn, guardian)
        intent = rec.sign_approval(key, self.address(conn, guardian), old, new)
        del key
        tx = self._run(lambda: _tx(rec.relay(intent)))
        pending = rec.pending(old)
        return tx, int(pending.ready_at) if pending is not None and pending.to == new else None

    def execute_replacement(self, old: str) -> str:
        return self._run(lambda: self.suite.recovery.execute(old))

    # -- board controls --

    def control(self, action: str, address: str | None, reason: str) -> str:
        c = self.chain
        calls: dict[str, Callable[[], str]] = {
            "pause": lambda: c.pause(reason), "resume": lambda: c.resume(reason),
            "freeze": lambda: c.freeze(address, reason), "unfreeze": lambda: c.unfreeze(address, reason)}
        return self._run(calls[action])

    # -- limits --

    def limits(self, conn: sa.Connection, member: str, unit: str) -> tuple[int, int, int]:
        """(balance, floor, ceiling) on the ledger."""
        address = self.address(conn, member)
        floor, ceiling = self.chain.limits(unit, address)
        return int(self.chain.balance(unit, address)), int(floor), int(ceiling)


def _tx(receipt: Any) -> str:
    h = receipt["transactionHash"]
    return h if isinstance(h, str) else "0x" + bytes(h).hex()


# Refusals of the suite's contracts that a member can act on, with their amounts.
def _refusal(exc: Any, unit: str, amount: int) -> ServiceError:
    a = exc.args_by_name
    if exc.name == "AboveAllowance":
        monthly, spent = int(a["monthly"]), int(a["spentAfter"])
        return ServiceError("err.allowance", "amount", monthly=_shown(unit, monthly),
                            over=_shown(unit, spent - monthly))
    if exc.name == "AboveRemaining":
        return ServiceError("err.above_remaining", "amount", remaining=_shown(unit, int(a["remaining"])))
    if exc.name in ("RequestClosed", "RequestExpired", "UnknownRequest"):
        return ServiceError("err.request_closed", "")
    if exc.name in ("NoGrant", "GrantExpired", "NotAllowedToPay"):
        return ServiceError("err.no_grant", "")
    if exc.name == "NotReady":
        return ServiceError("err.not_ready", "")
    if exc.name in ("RequestPending",):
        return ServiceError("err.replacement_pending", "")
    if unit:
        return refusal(exc, unit, amount)
    return ServiceError("err.chain", "", amount="", unit="", reason=str(exc))


def ops_of(settings: Any) -> LedgerOps | None:
    """The app's ledger operations when it has a ledger client, custody and the suite."""
    chain, custody, suite = (getattr(settings, n, None) for n in ("chain", "custody", "suite"))
    if chain is None or custody is None or suite is None:
        return None
    return LedgerOps(chain, custody, suite)
