"""Helpers and payment requests on both backends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from community.chain import devnet
from community.chain.accounts import (
    OPEN,
    PAID,
    PAY,
    REFUSED,
    VIEW,
    WITHDRAWN,
    HelpersClient,
    RequestsClient,
)
from community.chain.conversion import month_index
from tests.chain.conftest import DAY, HOUR, KWH, Chain, key
from tests.chain.parts_support import fund, outsider, refused

OLDER, HELPER, SHOP = 0, 1, 2  # member indexes


@dataclass
class P:
    chain: Chain
    helpers: HelpersClient
    requests: RequestsClient

    def grant(self, kind: int = PAY, monthly: int = 300, days: int = 90, unit: int = HOUR) -> None:
        c = self.chain
        self.helpers.relay(self.helpers.sign_grant(c.members[OLDER], c.member(OLDER), c.member(HELPER), kind=kind,
                                                   unit=unit, monthly=monthly, expires_at=c.now() + days * DAY))

    def pay_for(self, amount: int, memo: bytes = b"", unit: int = HOUR) -> Any:
        c = self.chain
        return self.helpers.relay(self.helpers.sign_pay_for(c.members[HELPER], c.member(HELPER), c.member(OLDER),
                                                            c.member(SHOP), unit, amount, memo=memo))


@pytest.fixture(scope="module")
def parts(chain_module: Chain) -> tuple[HelpersClient, RequestsClient]:
    return HelpersClient.deploy(chain_module.client), RequestsClient.deploy(chain_module.client)


@pytest.fixture
def p(parts: tuple[HelpersClient, RequestsClient], chain: Chain) -> Iterator[P]:
    yield P(chain, *parts)


def ciphertext(plaintext: bytes) -> bytes:
    return os.urandom(12) + AESGCM(AESGCM.generate_key(bit_length=128)).encrypt(b"\0" * 12, plaintext, None)


# ---- helpers ----


def test_a_helper_pays_for_an_older_member_and_the_event_names_both(p: P) -> None:
    c = p.chain
    fund(c, HOUR, {OLDER: 1_000})
    p.grant(monthly=300)
    assert p.helpers.can_view(c.member(OLDER), c.member(HELPER))
    p.pay_for(120)
    assert c.client.account_state(HOUR, c.member(SHOP)).balance == 120
    assert p.helpers.remaining(c.member(OLDER), c.member(HELPER)) == 180
    (acted,) = p.helpers.acted_for(c.member(OLDER))
    assert (acted["helper"], acted["to"], acted["amount"]) == (c.member(HELPER), c.member(SHOP), 120)
    assert c.w3.eth.get_balance(c.member(HELPER)) == 0


def test_a_helper_cannot_exceed_the_monthly_amount(p: P) -> None:
    c = p.chain
    fund(c, HOUR, {OLDER: 1_000})
    p.grant(monthly=300)
    p.pay_for(200)
    with refused("AboveAllowance") as exc:
        p.pay_for(101)
    assert (exc.value.args_by_name["monthly"], exc.value.args_by_name["spentAfter"]) == (300, 301)
    now = c.now()
    devnet.advance_time(c.w3, 32 * DAY)  # a new calendar month
    assert month_index(c.now()) != month_index(now)
    p.pay_for(300)


def test_read_only_expired_revoked_and_other_unit_grants_cannot_pay(p: P) -> None:
    c = p.chain
    fund(c, HOUR, {OLDER: 1_000})
    with refused("NoGrant"):
        p.pay_for(1)
    p.grant(kind=VIEW)
    assert p.helpers.can_view(c.member(OLDER), c.member(HELPER))
    with refused("NotAllowedToPay"):
        p.pay_for(1)
    p.grant(kind=PAY, unit=KWH)
    with refused("NotAllowedToPay"):
        p.pay_for(1)
    p.grant(kind=PAY, days=1)
    devnet.advance_time(c.w3, 2 * DAY)
    with refused("GrantExpired"):
        p.pay_for(1)
    assert not p.helpers.can_view(c.member(OLDER), c.member(HELPER))
    p.grant(kind=PAY)
    p.helpers.relay(p.helpers.sign_revoke(c.members[OLDER], c.member(OLDER), c.member(HELPER)))
    assert p.helpers.grant(c.member(OLDER), c.member(HELPER)) is None
    with refused("NoGrant"):
        p.pay_for(1)
    with refused("NoGrant"):
        p.helpers.relay(p.helpers.sign_revoke(c.members[OLDER], c.member(OLDER), c.member(HELPER)))


def test_grant_and_helper_intents_are_checked(p: P) -> None:
    c = p.chain
    with refused("BadGrant"):  # to oneself
        p.helpers.relay(p.helpers.sign_grant(c.members[OLDER], c.member(OLDER), c.member(OLDER), kind=PAY,
                                             monthly=1, expires_at=c.now() + DAY))
    with refused("BadGrant"):  # unknown kind
        p.helpers.relay(p.helpers.sign_grant(c.members[OLDER], c.member(OLDER), c.member(HELPER), kind=7,
                                             monthly=1, expires_at=c.now() + DAY))
    with refused("BadGrant"):  # already expired
        p.helpers.relay(p.helpers.sign_grant(c.members[OLDER], c.member(OLDER), c.member(HELPER), kind=PAY,
                                             monthly=1, expires_at=c.now() - 1))
    with refused("BadIntentSignature"):  # the helper grants themself
        p.helpers.relay(p.helpers.sign_grant(c.members[HELPER], c.member(OLDER), c.member(HELPER), kind=PAY,
                                             monthly=10**6, expires_at=c.now() + DAY))
    p.grant(monthly=300)
    signed = p.helpers.sign_pay_for(c.members[HELPER], c.member(HELPER), c.member(OLDER), c.member(SHOP), HOUR, 50)
    with refused("BadIntentSignature"):  # payee altered by the relayer
        p.helpers.relay(replace(signed, args=(c.member(HELPER), c.member(OLDER), c.member(3), HOUR, 50, b"")))
    with refused("BadIntentSignature"):  # a stranger posing as the helper
        p.helpers.relay(p.helpers.sign_pay_for(key(999), c.member(HELPER), c.member(OLDER), c.member(SHOP), HOUR, 5))
    with refused("IntentExpired"):
        p.helpers.relay(p.helpers.sign_pay_for(c.members[HELPER], c.member(HELPER), c.member(OLDER),
                                               c.member(SHOP), HOUR, 5, ttl=-1))
    p.helpers.relay(signed)
    with refused("BadNonce"):
        p.helpers.relay(signed)
    c.client.set_limits(HOUR, c.member(OLDER), 0, 5_000)
    with refused("BelowFloor") as exc:  # the member's own floor still applies
        p.pay_for(10)
    assert (exc.value.args_by_name["floor"], exc.value.args_by_name["balanceAfter"]) == (0, -60)


# ---- payment requests ----


def test_a_request_is_paid_in_parts_and_both_see_the_history(p: P) -> None:
    c = p.chain
    fund(c, HOUR, {1: 1_000})
    rid = p.requests.create(p.requests.sign_request(c.members[SHOP], c.member(SHOP), c.member(1), HOUR, 400,
                                                    memo=ciphertext(b"vegetables"), expires_at=c.now() + DAY))
    p.requests.relay(p.requests.sign_pay(c.members[1], c.member(1), rid, 150))
    req = p.requests.get(rid)
    assert req is not None and (req.status, req.paid, req.payer) == (OPEN, 150, c.member(1))
    with refused("AboveRemaining") as exc:
        p.requests.relay(p.requests.sign_pay(c.members[1], c.member(1), rid, 251))
    assert (exc.value.args_by_name["remaining"], exc.value.args_by_name["amount"]) == (250, 251)
    p.requests.relay(p.requests.sign_pay(c.members[1], c.member(1), rid, 250))
    assert p.requests.get(rid).status == PAID  # type: ignore[union-attr]
    assert c.client.account_state(HOUR, c.member(SHOP)).balance == 400
    assert [e["event"] for e in p.requests.history(rid)] == ["Requested", "RequestPaid", "RequestPaid"]
    with refused("RequestClosed"):
        p.requests.relay(p.requests.sign_pay(c.members[1], c.member(1), rid, 1))


def test_an_open_request_is_a_link_anyone_can_pay(p: P) -> None:
    c = p.chain
    rid = p.requests.create(p.requests.sign_request(c.members[SHOP], c.member(SHOP), None, HOUR, 30,
                                                    expires_at=c.now() + DAY))
    assert p.requests.get(rid).payer is None  # type: ignore[union-attr]
    p.requests.relay(p.requests.sign_pay(c.members[3], c.member(3), rid, 30))
    assert c.client.account_state(HOUR, c.member(SHOP)).balance == 30
    with refused("NotThePayer"):  # nobody in particular can refuse an open link
        rid2 = p.requests.create(p.requests.sign_request(c.members[SHOP], c.member(SHOP), None, HOUR, 30,
                                                         expires_at=c.now() + DAY))
        p.requests.relay(p.requests.sign_refuse(c.members[3], c.member(3), rid2))


def test_refused_withdrawn_and_expired_requests_are_closed(p: P) -> None:
    c = p.chain
    mk = lambda: p.requests.create(p.requests.sign_request(  # noqa: E731
        c.members[SHOP], c.member(SHOP), c.member(1), HOUR, 40, expires_at=c.now() + DAY))
    refused_id, withdrawn_id, expiring_id = mk(), mk(), mk()
    with refused("NotThePayer"):
        p.requests.relay(p.requests.sign_refuse(c.members[3], c.member(3), refused_id))
    with refused("NotThePayer"):
        p.requests.relay(p.requests.sign_pay(c.members[3], c.member(3), refused_id, 1))
    p.requests.relay(p.requests.sign_refuse(c.members[1], c.member(1), refused_id))
    assert p.requests.get(refused_id).status == REFUSED  # type: ignore[union-attr]
    with refused("NotTheRequester"):
        p.requests.relay(p.requests.sign_withdraw(c.members[1], c.member(1), withdrawn_id))
    p.requests.relay(p.requests.sign_withdraw(c.members[SHOP], c.member(SHOP), withdrawn_id))
    assert p.requests.get(withdrawn_id).status == WITHDRAWN  # type: ignore[union-attr]
    for rid in (refused_id, withdrawn_id):
        with refused("RequestClosed"):
            p.requests.relay(p.requests.sign_pay(c.members[1], c.member(1), rid, 1))
    devnet.advance_time(c.w3, DAY + 1)
    with refused("RequestExpired"):
        p.requests.relay(p.requests.sign_pay(c.members[1], c.member(1), expiring_id, 1))
    with refused("UnknownRequest"):
        p.requests.relay(p.requests.sign_pay(c.members[1], c.member(1), 999, 1))
    with refused("AboveRemaining"):
        p.requests.relay(p.requests.sign_pay(c.members[1], c.member(1), mk(), 0))


def test_request_intents_and_board_requests(p: P) -> None:
    c = p.chain
    with refused("BadRequest"):
        p.requests.create(p.requests.sign_request(c.members[SHOP], c.member(SHOP), c.member(1), HOUR, 0,
                                                  expires_at=c.now() + DAY))
    with refused("BadRequest"):
        p.requests.create(p.requests.sign_request(c.members[SHOP], c.member(SHOP), c.member(1), HOUR, 5,
                                                  expires_at=c.now() - 1))
    with refused("BadIntentSignature"):  # a request in someone else's name
        p.requests.create(p.requests.sign_request(key(999), c.member(SHOP), c.member(1), HOUR, 5,
                                                  expires_at=c.now() + DAY))
    fund(c, HOUR, {1: 100})
    rid = p.requests.request_for_fund(c.member(1), HOUR, 60, expires_at=c.now() + DAY)
    assert p.requests.get(rid).requester == c.client.address  # type: ignore[union-attr]  # the fund
    p.requests.relay(p.requests.sign_pay(c.members[1], c.member(1), rid, 60))
    stranger = RequestsClient(outsider(c, key(4347)), p.requests.address)
    with refused("AccessControlUnauthorizedAccount"):
        stranger.request_for_fund(c.member(1), HOUR, 60, expires_at=c.now() + DAY)


def test_no_memo_text_reaches_calldata_or_logs(p: P) -> None:
    c = p.chain
    fund(c, HOUR, {OLDER: 1_000})
    p.grant(monthly=300)
    plaintext = b"pharmacy for Mme Durand, thank you"
    receipts = [p.pay_for(10, memo=ciphertext(plaintext))]
    p.requests.create(p.requests.sign_request(c.members[SHOP], c.member(SHOP), c.member(OLDER), HOUR, 10,
                                              memo=ciphertext(plaintext), expires_at=c.now() + DAY))
    logs = p.requests.contract.events.Requested().get_logs(from_block=0)
    receipts.append(c.w3.eth.get_transaction_receipt(logs[-1]["transactionHash"]))
    for receipt in receipts:
        calldata = bytes(c.w3.eth.get_transaction(receipt["transactionHash"])["input"])
        log_bytes = b"".join(bytes(lg["data"]) + b"".join(bytes(t) for t in lg["topics"]) for lg in receipt["logs"])
        for needle in (plaintext, b"Durand", b"pharmacy"):
            assert needle not in calldata and needle not in log_bytes
