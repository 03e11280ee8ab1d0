"""Lazy demurrage, the same exact integer arithmetic as contracts/src/Words.sol.

A positive balance is charged `rate` parts per billion per day for the time since the
account was last touched. The charge rounds down and the remainder ("dust", below one base
unit) is carried to the next touch, so for a constant balance the total charged over any
sequence of touches equals the charge of a single touch over the whole time: touching an
account often neither escapes demurrage nor adds to it. The fund collects every charge and
pays none; a balance never goes negative through demurrage (the charge is capped at the
balance and the dust then forgiven).
"""

from __future__ import annotations

from dataclasses import dataclass

DENOMINATOR = 10**9 * 86_400  # ppb per day x seconds
INT96_MIN, INT96_MAX = -(2**95), 2**95 - 1


@dataclass(frozen=True, slots=True)
class Charge:
    amount: int
    dust: int


def charge(balance: int, rate_ppb_per_day: int, elapsed: int, dust: int) -> Charge:
    """The demurrage due on `balance` after `elapsed` seconds, and the dust carried on."""
    if balance <= 0 or rate_ppb_per_day == 0:
        return Charge(0, dust)
    num = balance * rate_ppb_per_day * elapsed + dust
    amount, rest = divmod(num, DENOMINATOR)
    if amount >= balance:
        return Charge(balance, 0)
    return Charge(amount, rest)


@dataclass(frozen=True, slots=True)
class AccountState:
    balance: int = 0
    touched_at: int = 0
    dust: int = 0


def touch(state: AccountState, rate_ppb_per_day: int, now: int, *, is_fund: bool = False
          ) -> tuple[AccountState, int]:
    """The account after its demurrage is charged at `now`, and the amount charged."""
    if is_fund:
        return AccountState(state.balance, now, state.dust), 0
    c = charge(state.balance, rate_ppb_per_day, now - state.touched_at, state.dust)
    return AccountState(state.balance - c.amount, now, c.dust), c.amount
