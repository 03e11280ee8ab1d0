"""Standing donation orders on chain (`StandingOrders`, domain "Quartier Standing Orders").

A member gives a neighbour, every settlement period, a fixed number of Wh or a share of
their claimed export. The member signs the order (or its cancellation), the community's
relayer submits it; settlement then executes the active orders inside the period's batch,
and the ledger checks each donation against the order (`Settlement._donate`).

    StandingOrder(address donor,address beneficiary,uint64 wh,uint16 shareBp,uint64 nonce,uint64 deadline)
    CancelStandingOrder(address donor,uint64 order,uint64 nonce,uint64 deadline)
"""

from __future__ import annotations

from dataclasses import dataclass

from coincurve import PrivateKey

from community.chain.accounts import Signed, _IntentPart
from community.chain.client import ChainClient
from community.chain.parts import tx_hash
from quartier.hashing import to_checksum_address

SET_TYPE = ("StandingOrder(address donor,address beneficiary,uint64 wh,uint16 shareBp,uint64 nonce,"
            "uint64 deadline)")
CANCEL_TYPE = "CancelStandingOrder(address donor,uint64 order,uint64 nonce,uint64 deadline)"
BASIS_POINTS = 10_000


@dataclass(frozen=True)
class OnChainOrder:
    id: int
    donor: str
    beneficiary: str
    wh: int  # per period; 0 for a share order
    share_bp: int  # 1/100 % of the donor's export; 0 for a fixed order
    active: bool


class StandingOrdersClient(_IntentPart):
    ARTIFACT = "StandingOrders"
    DOMAIN_NAME = "Quartier Standing Orders"

    @classmethod
    def deploy_for(cls, client: ChainClient) -> StandingOrdersClient:
        """Deploys the orders contract and points the ledger's settlement at it."""
        orders = cls.deploy(client)
        client.transact(client._fn("setStandingOrders", orders.address))
        return orders

    def sign_set(self, key: PrivateKey, donor: str, beneficiary: str, *, wh: int = 0, share_bp: int = 0,
                 ttl: int = 3600, nonce: int | None = None) -> Signed:
        args = (to_checksum_address(donor), to_checksum_address(beneficiary), wh, share_bp)
        return self._signed(key, "set", SET_TYPE, donor, args, args, ttl, nonce)

    def sign_cancel(self, key: PrivateKey, donor: str, order: int, *, ttl: int = 3600,
                    nonce: int | None = None) -> Signed:
        args = (to_checksum_address(donor), order)
        return self._signed(key, "cancel", CANCEL_TYPE, donor, args, args, ttl, nonce)

    def set(self, intent: Signed) -> int:
        """Relays a signed order; returns its id."""
        receipt = self.relay(intent)
        (ev,) = self.events(receipt, "OrderSet")
        return int(ev["args"]["order"])

    def cancel(self, intent: Signed) -> str:
        return tx_hash(self.relay(intent))

    def order(self, order_id: int) -> OnChainOrder:
        donor, share_bp, active, beneficiary, wh = self.call("orderOf", order_id)
        return OnChainOrder(order_id, str(donor), str(beneficiary), int(wh), int(share_bp), bool(active))

    def active(self) -> list[OnChainOrder]:
        """Every active order, in id order (the order settlement runs them in)."""
        n = int(self.call("orderCount"))
        return [o for o in (self.order(i) for i in range(1, n + 1)) if o.active]
