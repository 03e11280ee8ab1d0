"""Every community contract beside the ledger, deployed and wired together in one call.

Roles after `deploy_suite`: the exchange, conversion, helpers and requests hold the
ledger's `OPERATOR_ROLE`; the ledger's settlement checks donations against the standing
orders; recovery holds `RECOVERY_ROLE` on the ledger and on governance;
governance holds `GOVERNOR_ROLE` on the ledger, the exchange, conversion and recovery and
may target them in proposals; helpers, requests and standing orders follow recovery's
replacements. The deployer keeps its roles (admin, governor, board) until
it hands them over.
"""

from __future__ import annotations

from dataclasses import dataclass

from community.chain.accounts import HelpersClient, RecoveryClient, RequestsClient
from community.chain.client import ChainClient
from community.chain.conversion import ConversionClient
from community.chain.exchange import ExchangeClient
from community.chain.governance import GovernanceClient
from community.chain.orders import StandingOrdersClient


@dataclass(frozen=True)
class Suite:
    exchange: ExchangeClient
    conversion: ConversionClient
    governance: GovernanceClient
    recovery: RecoveryClient
    helpers: HelpersClient
    requests: RequestsClient
    orders: StandingOrdersClient

    def addresses(self) -> dict[str, str]:
        return {name: getattr(self, name).address
                for name in ("exchange", "conversion", "governance", "recovery", "helpers", "requests",
                             "orders")}


def deploy_suite(client: ChainClient) -> Suite:
    exchange = ExchangeClient.deploy(client)
    conversion = ConversionClient.deploy(client)
    governance = GovernanceClient.deploy_for(client, exchange, conversion)
    recovery = RecoveryClient.deploy_with(client, governance)
    governance.set_target(recovery.address)
    recovery.grant_role("GOVERNOR_ROLE", governance.address)
    helpers, requests = HelpersClient.deploy(client), RequestsClient.deploy(client)
    recovery.add_migration(helpers)
    recovery.add_migration(requests)
    orders = StandingOrdersClient.deploy_for(client)
    recovery.add_migration(orders)
    return Suite(exchange, conversion, governance, recovery, helpers, requests, orders)


def attach_suite(client: ChainClient, addresses: dict[str, str]) -> Suite:
    """The suite at `addresses` (as `Suite.addresses()` gave them)."""
    return Suite(ExchangeClient(client, addresses["exchange"]), ConversionClient(client, addresses["conversion"]),
                 GovernanceClient(client, addresses["governance"]), RecoveryClient(client, addresses["recovery"]),
                 HelpersClient(client, addresses["helpers"]), RequestsClient(client, addresses["requests"]),
                 StandingOrdersClient(client, addresses["orders"]))
