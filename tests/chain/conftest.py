"""One deployed ledger per module and backend (in-process EVM, real anvil); every test
starts from a snapshot of it and the chain is reverted afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from coincurve import PrivateKey

from community.chain import devnet
from community.chain.client import ChainClient, UnitSpec
from community.chain.intents import Batch, Donation, Entry, build_batch
from quartier.claim import PeriodClaim, sign_claim
from quartier.signing import address_of

COMMUNITY = "rue-des-lilas"
DAY = 86_400
KWH, HOUR = 0, 1
UNITS = (
    UnitSpec("KWH", 3, floor=-50_000, rate_ppb_per_day=0, metered=True),
    UnitSpec("HOUR", 2, floor=-1_000, ceiling=5_000, rate_ppb_per_day=1_000_000),  # 0.1 %/day
)


def key(n: int) -> PrivateKey:
    return PrivateKey(n.to_bytes(32, "big"))


@dataclass
class Chain:
    client: ChainClient
    backend: str
    members: list[PrivateKey] = field(default_factory=list)
    gateways: list[PrivateKey] = field(default_factory=list)
    day0: int = 0

    @property
    def w3(self):  # type: ignore[no-untyped-def]
        return self.client.w3

    def member(self, i: int) -> str:
        return address_of(self.members[i])

    def gateway(self, i: int) -> str:
        return address_of(self.gateways[i])

    def claim(self, i: int, period: int, imported: int, exported: int, *, signer: PrivateKey | None = None,
              gateway: str | None = None) -> tuple[PeriodClaim, bytes]:
        c = PeriodClaim(COMMUNITY, gateway or self.gateway(i), period, period + DAY, 1, 96, imported,
                        exported, exported, b"\x42" * 32)
        return c, sign_claim(signer or self.gateways[i], c)

    def batch(self, period: int, flows: dict[int, tuple[int, int, int]], extra: list[Entry] | None = None,
              claims: list[tuple[PeriodClaim, bytes]] | None = None,
              donations: list[Donation] | None = None) -> Batch:
        """flows: member index -> (imported, exported, net KWH entry)."""
        if claims is None:
            claims = [self.claim(i, period, imp, exp) for i, (imp, exp, _) in flows.items()]
        entries = [Entry(self.member(i), KWH, net) for i, (_, _, net) in flows.items()] + (extra or [])
        members_of = {self.gateway(i): self.member(i) for i in range(len(self.gateways))}
        return build_batch(b"\x99" * 32, claims, entries, members_of, period_id=period, period_end=period + DAY,
                           donations=donations or ())

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


@pytest.fixture(scope="module", params=["embedded", "anvil"])
def chain_module(request: pytest.FixtureRequest) -> Iterator[Chain]:
    node = None
    if request.param == "anvil":
        node = devnet.start()
        client = ChainClient(node.url, devnet.DEV_KEY)
    else:
        client = ChainClient(None)
    try:
        client.deploy(COMMUNITY, units=UNITS)
        chain = Chain(client, request.param, [key(1000 + i) for i in range(4)], [key(2000 + i) for i in range(4)])
        for i in range(4):
            client.register_member(chain.member(i))
            client.register_meter_point(f"PRM-{i}", chain.member(i))
            client.register_gateway(chain.gateway(i), chain.member(i), f"PRM-{i}", active_from=1)
        now = chain.now()
        chain.day0 = now - now % DAY - 10 * DAY
        yield chain
    finally:
        if node is not None:
            node.stop()


@pytest.fixture
def chain(chain_module: Chain) -> Iterator[Chain]:
    snap = devnet.snapshot(chain_module.w3)
    yield chain_module
    devnet.revert(chain_module.w3, snap)
