"""Account replacement on both backends: everything moves to the new key after the delay,
the old key can do nothing afterwards, a cancelled replacement changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from community.chain import devnet
from community.chain.accounts import (
    PAID,
    PAY,
    REFUSED,
    HelpersClient,
    RecoveryClient,
    RequestsClient,
)
from community.chain.client import meter_point_id
from community.chain.governance import GovernanceClient
from community.chain.intents import Entry, build_batch
from quartier.signing import address_of
from tests.chain.conftest import DAY, HOUR, KWH, Chain, key
from tests.chain.parts_support import fund, outsider, refused

NEW = key(7001)  # the member's new phone


@dataclass
class R:
    chain: Chain
    rec: RecoveryClient
    gov: GovernanceClient
    helpers: HelpersClient
    requests: RequestsClient

    @property
    def new(self) -> str:
        return address_of(NEW)

    def wait_delay(self) -> None:
        devnet.advance_time(self.chain.w3, 48 * 3600 + 1)


@pytest.fixture(scope="module")
def parts(chain_module: Chain) -> tuple[RecoveryClient, GovernanceClient, HelpersClient, RequestsClient]:
    gov = GovernanceClient.deploy_for(chain_module.client)
    gov.add_destination("school roof")
    gov.add_destination("repair café")
    rec = RecoveryClient.deploy_with(chain_module.client, gov)
    helpers, requests = HelpersClient.deploy(chain_module.client), RequestsClient.deploy(chain_module.client)
    rec.add_migration(helpers)
    rec.add_migration(requests)
    return rec, gov, helpers, requests


@pytest.fixture
def r(parts: tuple[RecoveryClient, GovernanceClient, HelpersClient, RequestsClient], chain: Chain) -> Iterator[R]:
    yield R(chain, *parts)


def test_everything_moves_to_the_new_key_and_the_old_key_can_do_nothing(r: R) -> None:
    c, old = r.chain.client, r.chain.member(0)
    fund(r.chain, HOUR, {0: 700})
    c.set_limits(HOUR, old, -300, 4_000)
    r.gov.set_preferences(r.gov.sign_preferences(r.chain.members[0], old, [2_500, 7_500]))
    state_before = c.account_state(HOUR, old)
    assert r.rec.delay() == 48 * 3600
    r.rec.request_by_board(old, r.new)
    assert r.rec.pending(old).to == r.new  # type: ignore[union-attr]
    with refused("NotReady"):
        r.rec.execute(old)
    r.wait_delay()
    r.rec.execute(old)

    assert r.rec.pending(old) is None
    new_state = c.account_state(HOUR, r.new)
    assert (new_state.balance, new_state.nonce, new_state.owed) == (state_before.balance, state_before.nonce,
                                                                    state_before.owed)
    assert c.account_state(HOUR, old).balance == 0
    assert c.limits(HOUR, r.new) == (-300, 4_000)
    assert c.is_member(r.new) and not c.is_member(old) and c.is_frozen(old)
    info = c.gateway_at(r.chain.gateway(0), r.chain.now())
    assert info.member == r.new and info.active
    assert c.call("meterPointMember", meter_point_id("PRM-0")) == r.new
    assert list(c.call("gatewaysOf", r.new)) == [r.chain.gateway(0)] and list(c.call("gatewaysOf", old)) == []
    assert r.gov.preferences(r.new) == [2_500, 7_500] and r.gov.preferences(old) == [0, 0]

    # The old key can do nothing: pay, be paid, vote, set preferences, be replaced again.
    p = c.payment(old, r.chain.member(1), "HOUR", 10)
    with refused("AccountFrozen"):
        c.relay_payment(p, c.sign_payment(r.chain.members[0], p))
    p = c.payment(r.chain.member(1), old, "HOUR", 10)
    with refused("AccountFrozen"):
        c.relay_payment(p, c.sign_payment(r.chain.members[1], p))
    with refused("NotAMember"):
        r.gov.set_preferences(r.gov.sign_preferences(r.chain.members[0], old, [10_000, 0]))
    with refused("NotAMember"):
        r.rec.relay(r.rec.sign_request(r.chain.members[0], old, address_of(key(7002))))

    # The new key pays, and the gateway's claims now settle to it.
    p = c.payment(r.new, r.chain.member(1), "HOUR", 100)
    c.relay_payment(p, c.sign_payment(NEW, p))
    period = r.chain.day0
    claims = [r.chain.claim(0, period, 0, 500), r.chain.claim(1, period, 500, 0)]
    batch = build_batch(b"\x99" * 32, claims, [Entry(r.new, KWH, 500), Entry(r.chain.member(1), KWH, -500)],
                        {r.chain.gateway(0): r.new, r.chain.gateway(1): r.chain.member(1)},
                        period_id=period, period_end=period + DAY)
    c.settle_batch(batch)
    assert c.balance(KWH, r.new) == 500


def test_grants_to_the_old_key_and_requests_it_must_pay_move_to_the_new_key(r: R) -> None:
    c, old = r.chain.client, r.chain.member(0)
    older, shop = r.chain.member(1), r.chain.member(2)
    fund(r.chain, HOUR, {0: 700, 1: 1_000})
    h, q = r.helpers, r.requests
    h.relay(h.sign_grant(r.chain.members[1], older, old, kind=PAY, unit=HOUR, monthly=300,
                         expires_at=r.chain.now() + 90 * DAY))
    h.relay(h.sign_pay_for(r.chain.members[0], old, older, shop, HOUR, 100))  # spent before the loss
    expires = r.chain.now() + 30 * DAY
    to_pay = q.create(q.sign_request(r.chain.members[2], shop, old, HOUR, 50, expires_at=expires))
    to_refuse = q.create(q.sign_request(r.chain.members[2], shop, old, HOUR, 60, expires_at=expires))
    r.rec.request_by_board(old, r.new)
    r.wait_delay()
    r.rec.execute(old)

    grant = h.grant(older, r.new)
    assert grant is not None and (grant.kind, grant.monthly, grant.spent) == (PAY, 300, 100)
    assert h.grant(older, old) is None and not h.can_view(older, old) and h.remaining(older, old) == 0
    assert h.can_view(older, r.new) and h.remaining(older, r.new) == 200
    assert q.get(to_pay).payer == q.get(to_refuse).payer == r.new  # type: ignore[union-attr]

    # The old key can do nothing with them.
    with refused("HelperReplaced"):
        h.relay(h.sign_pay_for(r.chain.members[0], old, older, shop, HOUR, 10))
    with refused("NotThePayer"):
        q.relay(q.sign_pay(r.chain.members[0], old, to_pay, 50))
    with refused("NotThePayer"):
        q.relay(q.sign_refuse(r.chain.members[0], old, to_refuse))
    with refused("BadGrant"):  # nor be granted anything again
        h.relay(h.sign_grant(r.chain.members[1], older, old, kind=PAY, unit=HOUR, monthly=1,
                             expires_at=r.chain.now() + DAY))

    # The new key uses them; the month's spending carried over.
    with refused("AboveAllowance"):
        h.relay(h.sign_pay_for(NEW, r.new, older, shop, HOUR, 201))
    h.relay(h.sign_pay_for(NEW, r.new, older, shop, HOUR, 200))
    q.relay(q.sign_pay(NEW, r.new, to_pay, 50))
    q.relay(q.sign_refuse(NEW, r.new, to_refuse))
    assert [q.get(i).status for i in (to_pay, to_refuse)] == [PAID, REFUSED]  # type: ignore[union-attr]
    assert c.account_state(HOUR, shop).balance == 100 + 200 + 50
    # The member revokes the moved grant by naming the new key.
    h.relay(h.sign_revoke(r.chain.members[1], older, r.new))
    assert h.grant(older, r.new) is None and h.grant(older, old) is None


def test_only_recovery_records_a_succession(r: R) -> None:
    other_client = outsider(r.chain, key(4347))
    for part in (r.helpers, r.requests):
        with refused("NotRecovery"):
            type(part)(other_client, part.address).send("migrate", r.chain.member(0), r.new)
    with refused("AccessControlUnauthorizedAccount"):
        RecoveryClient(other_client, r.rec.address).add_migration(r.helpers)


def test_a_cancelled_replacement_changes_nothing(r: R) -> None:
    c, old = r.chain.client, r.chain.member(0)
    fund(r.chain, HOUR, {0: 700})
    before = c.account_state(HOUR, old)
    r.rec.relay(r.rec.sign_request(r.chain.members[0], old, r.new))  # the member asks (new phone)
    with refused("BadIntentSignature"):  # only the old key cancels by intent
        r.rec.relay(r.rec.sign_cancel(NEW, old))
    r.rec.relay(r.rec.sign_cancel(r.chain.members[0], old))
    r.wait_delay()
    with refused("NoRequest"):
        r.rec.execute(old)
    assert c.account_state(HOUR, old) == before  # the stored word is untouched (demurrage accrues lazily)
    assert c.is_member(old) and not c.is_frozen(old)
    assert not c.is_member(r.new) and c.account_state(HOUR, r.new).balance == 0
    assert c.gateway_at(r.chain.gateway(0), r.chain.now()).member == old


def test_guardians_approve_instead_of_the_board(r: R) -> None:
    c, old = r.chain.client, r.chain.member(0)
    guardians = [r.chain.member(i) for i in (1, 2, 3)]
    r.rec.relay(r.rec.sign_guardians(r.chain.members[0], old, guardians, 2))
    assert r.rec.guardians(old) == (guardians, 2)
    r.rec.relay(r.rec.sign_approval(r.chain.members[1], guardians[0], old, r.new))
    assert r.rec.pending(old) is None  # one of two
    with refused("AlreadyApproved"):
        r.rec.relay(r.rec.sign_approval(r.chain.members[1], guardians[0], old, r.new))
    stranger = key(7003)
    with refused("NotAGuardian"):
        r.rec.relay(r.rec.sign_approval(stranger, address_of(stranger), old, r.new))
    r.rec.relay(r.rec.sign_approval(r.chain.members[2], guardians[1], old, r.new))
    assert r.rec.pending(old).to == r.new  # type: ignore[union-attr]
    r.wait_delay()
    r.rec.execute(old)
    assert c.is_member(r.new) and r.rec.guardians(r.new) == (guardians, 2)


def test_approvals_for_another_address_or_an_old_round_do_not_add_up(r: R) -> None:
    old = r.chain.member(0)
    guardians = [r.chain.member(i) for i in (1, 2)]
    r.rec.relay(r.rec.sign_guardians(r.chain.members[0], old, guardians, 2))
    r.rec.relay(r.rec.sign_approval(r.chain.members[1], guardians[0], old, r.new))
    r.rec.relay(r.rec.sign_approval(r.chain.members[2], guardians[1], old, address_of(key(7004))))
    assert r.rec.pending(old) is None
    r.rec.relay(r.rec.sign_guardians(r.chain.members[0], old, guardians, 2))  # a new round
    r.rec.relay(r.rec.sign_approval(r.chain.members[2], guardians[1], old, r.new))
    assert r.rec.pending(old) is None


def test_request_refusals(r: R) -> None:
    c, old = r.chain.client, r.chain.member(0)
    with refused("SameAccount"):
        r.rec.request_by_board(old, old)
    with refused("NotAMember"):
        r.rec.request_by_board(address_of(key(7005)), r.new)
    r.rec.request_by_board(old, r.new)
    with refused("RequestPending"):
        r.rec.request_by_board(old, address_of(key(7006)))
    r.rec.cancel_by_board(old)
    with refused("NoRequest"):
        r.rec.cancel_by_board(old)
    r.rec.request_by_board(old, r.chain.member(1))  # an existing member cannot be the new key
    r.wait_delay()
    with refused("AccountInUse"):
        r.rec.execute(old)
    signed = r.rec.sign_request(r.chain.members[1], r.chain.member(1), r.new)
    with refused("BadIntentSignature"):  # the relayer redirects the request
        r.rec.relay(replace(signed, args=(r.chain.member(1), address_of(key(7007)))))
    with refused("IntentExpired"):
        r.rec.relay(r.rec.sign_request(r.chain.members[1], r.chain.member(1), r.new, ttl=-1))
    r.rec.relay(signed)
    with refused("BadNonce"):
        r.rec.relay(signed)
    assert c.is_member(r.chain.member(1))


def test_guardian_lists_are_checked(r: R) -> None:
    old = r.chain.member(0)
    for guardians, threshold in (([r.chain.member(1)], 2), ([r.chain.member(1)], 0), ([old], 1),
                                 ([r.chain.member(1)] * 9, 1)):
        with refused("BadGuardians"):
            r.rec.relay(r.rec.sign_guardians(r.chain.members[0], old, guardians, threshold))


def test_unauthorised_callers_are_refused(r: R) -> None:
    other_client = outsider(r.chain, key(4346))
    other = RecoveryClient(other_client, r.rec.address)
    for call in (lambda: other.request_by_board(r.chain.member(0), r.new),
                 lambda: other.cancel_by_board(r.chain.member(0)),
                 lambda: other.set_delay(1)):
        with refused("AccessControlUnauthorizedAccount"):
            call()
    with refused("AccessControlUnauthorizedAccount"):
        other_client.transact(other_client.ledger.functions.replaceAccount(r.chain.member(0), r.new))


def test_governance_sets_the_delay(r: R) -> None:
    r.rec.set_delay(3600)
    r.rec.request_by_board(r.chain.member(0), r.new)
    devnet.advance_time(r.chain.w3, 3601)
    r.rec.execute(r.chain.member(0))
    assert r.chain.client.is_member(r.new)


def test_the_indexer_moves_the_balances_of_a_replaced_account(r: R, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from community.chain.indexer import Indexer

    c, old = r.chain.client, r.chain.member(0)
    fund(r.chain, HOUR, {0: 700})
    r.rec.request_by_board(old, r.new)
    r.wait_delay()
    r.rec.execute(old)
    indexer = Indexer(c, sa.create_engine(f"sqlite:///{tmp_path}/chain.db"))
    indexer.sync()
    assert indexer.balance(HOUR, old) == 0
    assert indexer.balance(HOUR, r.new) == c.account_state(HOUR, r.new).balance == 700
