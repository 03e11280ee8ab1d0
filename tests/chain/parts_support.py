"""Helpers shared by the tests of the community's contracts beside the ledger."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey

from community.chain.client import ChainClient, LedgerRevert
from community.chain.intents import Entry
from quartier.signing import address_of
from tests.chain.conftest import DAY, Chain


def refused(name: str):  # type: ignore[no-untyped-def]
    return pytest.raises(LedgerRevert, match=rf"ledger refused: {name}\(")


def outsider(chain: Chain, secret: PrivateKey) -> ChainClient:
    """A client for another key (funded for gas), attached to the same ledger."""
    chain.client.send_value(address_of(secret), 10**18)
    return ChainClient(w3=chain.w3, key=secret, ledger=chain.client.ledger_address)


def fund(chain: Chain, unit: int, amounts: dict[int, int], period_offset: int = 5) -> None:
    """Gives members balances in a unit that is not metered, through a settlement batch."""
    entries = [Entry(chain.member(i), unit, a) for i, a in amounts.items()]
    entries.append(Entry(chain.client.address, unit, -sum(amounts.values())))
    chain.client.set_limits(unit, chain.client.address, -10**12, 10**12)
    chain.client.settle_batch(chain.batch(chain.day0 - period_offset * DAY, {}, extra=entries))
