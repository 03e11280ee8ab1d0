"""The whole suite deploys, is wired with the right roles, and governance reaches each part."""

from __future__ import annotations

from community.chain import devnet
from community.chain.governance import Rules
from community.chain.parts import role_id
from community.chain.suite import attach_suite, deploy_suite
from tests.chain.conftest import DAY, HOUR, KWH, Chain


def test_deploy_wire_and_govern_every_part(chain: Chain) -> None:
    c = chain.client
    suite = deploy_suite(c)
    again = attach_suite(c, suite.addresses())
    assert again.addresses() == suite.addresses()
    for part in (suite.exchange, suite.conversion, suite.helpers, suite.requests):
        assert c.call("hasRole", role_id("OPERATOR_ROLE"), part.address)
    assert c.call("hasRole", role_id("RECOVERY_ROLE"), suite.recovery.address)
    assert c.call("hasRole", role_id("GOVERNOR_ROLE"), suite.governance.address)
    gov = suite.governance
    gov.set_rules(Rules(DAY, 0, 2, 5_000))
    calls = [gov.rate_call(suite.exchange, HOUR, KWH, 100, 100_000),
             gov.caps_call(suite.conversion, HOUR, 100, 1_000),
             gov.call_data(suite.recovery.contract, "setDelay", 24 * 3600),
             gov.unit_call(HOUR, -1_500, 6_000, 500_000)]
    pids = [gov.propose(gov.sign_proposal(chain.members[0], chain.member(0), call, "setup")) for call in calls]
    for pid in pids:
        for who in (0, 1):
            gov.vote(gov.sign_vote(chain.members[who], chain.member(who), pid, True))
    devnet.advance_time(chain.w3, DAY + 1)
    for pid, call in zip(pids, calls, strict=True):
        gov.execute(pid, call)
    assert suite.exchange.rate(HOUR, KWH) == (100, 100_000)
    assert suite.conversion.caps(HOUR) == (100, 1_000)
    assert suite.recovery.delay() == 24 * 3600
    assert c.unit_state(HOUR)["floor"] == -1_500
