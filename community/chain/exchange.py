"""The exchange: community reference rates and two-leg trades on a maker's signed offer.

    Offer(address maker,uint8 give,uint256 amount,uint8 want,uint64 nonce,uint64 deadline)
    Take(address taker,bytes32 offer,uint64 deadline)
    CancelOffer(address maker,uint64 nonce,uint64 deadline)
    domain "Quartier Exchange", version "1", chain id, the exchange's address

A market in the app: a member publishes an offer (`offer` then `sign_offer` with the
member's key), another takes it (`sign_take` with theirs, then `take`, which the relayer
submits). Amounts are base units (1 Wh, 0.01 h, 1 g); the price is `quote(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey

from community.chain import eip712
from community.chain.parts import Part, random_nonce, tx_hash
from quartier.hashing import to_checksum_address

OFFER_TYPE = "Offer(address maker,uint8 give,uint256 amount,uint8 want,uint64 nonce,uint64 deadline)"
TAKE_TYPE = "Take(address taker,bytes32 offer,uint64 deadline)"
CANCEL_TYPE = "CancelOffer(address maker,uint64 nonce,uint64 deadline)"


@dataclass(frozen=True, slots=True)
class Offer:
    """`maker` gives `amount` of unit `give` for its reference price in unit `want`."""

    maker: str
    give: int
    amount: int
    want: int
    nonce: int
    deadline: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "maker", to_checksum_address(self.maker))

    def values(self) -> tuple[str, int, int, int, int, int]:
        return (self.maker, self.give, self.amount, self.want, self.nonce, self.deadline)

    def struct_hash(self) -> bytes:
        return eip712.struct_hash(OFFER_TYPE, self.values())


@dataclass(frozen=True)
class Trade:
    tx_hash: str
    offer_hash: bytes
    maker: str
    taker: str
    nonce: int
    give: int
    amount: int
    want: int
    price: int


class ExchangeClient(Part):
    ARTIFACT = "Exchange"
    DOMAIN_NAME = "Quartier Exchange"
    LEDGER_ROLES = ("OPERATOR_ROLE",)

    # -- rates (governance) --

    def set_rate(self, base: int | str, quote: int | str, base_amount: int, quote_amount: int) -> str:
        """`base_amount` base units of `base` are worth `quote_amount` of `quote` (both ways)."""
        u = self.client.unit_id
        return tx_hash(self.send("setRate", u(base), u(quote), base_amount, quote_amount))

    def rate(self, give: int | str, want: int | str) -> tuple[int, int]:
        """(give_amount, want_amount); (0, 0) when there is no rate."""
        a, b = self.call("rateOf", self.client.unit_id(give), self.client.unit_id(want))
        return int(a), int(b)

    def quote(self, give: int | str, amount: int, want: int | str) -> int:
        """The price of `amount` of `give` in `want`; refuses (NoRate, InexactTrade) as a trade would."""
        return int(self.call("quote", self.client.unit_id(give), amount, self.client.unit_id(want)))

    # -- offers and trades (member intents) --

    def offer(self, maker: str, give: int | str, amount: int, want: int | str, *,
              nonce: int | None = None, ttl: int = 7 * 86_400, deadline: int | None = None) -> Offer:
        """An unsigned offer with a fresh nonce and a deadline `ttl` seconds from now."""
        return Offer(maker, self.client.unit_id(give), amount, self.client.unit_id(want),
                     random_nonce() if nonce is None else nonce,
                     self.deadline(ttl) if deadline is None else deadline)

    def sign_offer(self, key: PrivateKey, offer: Offer) -> bytes:
        return self.sign(key, OFFER_TYPE, offer.values())

    def offer_digest(self, offer: Offer) -> bytes:
        return eip712.digest(self.domain, OFFER_TYPE, offer.values())

    def sign_take(self, key: PrivateKey, taker: str, offer: Offer, deadline: int) -> bytes:
        return self.sign(key, TAKE_TYPE, (taker, offer.struct_hash(), deadline))

    def take(self, offer: Offer, maker_sig: bytes, taker: str, taker_deadline: int, taker_sig: bytes) -> Trade:
        """Relays a trade: both legs move at the reference rate, or nothing does."""
        receipt = self.send("take", offer.values(), maker_sig, to_checksum_address(taker), taker_deadline,
                            taker_sig)
        (ev,) = self.events(receipt, "Traded")
        a: Any = ev["args"]
        return Trade(tx_hash(receipt), bytes(a["offer"]), str(a["maker"]), str(a["taker"]), int(a["nonce"]),
                     int(a["give"]),
                     int(a["amount"]), int(a["want"]), int(a["price"]))

    def sign_cancel(self, key: PrivateKey, maker: str, nonce: int, deadline: int) -> bytes:
        return self.sign(key, CANCEL_TYPE, (maker, nonce, deadline))

    def cancel_offer(self, maker: str, nonce: int, deadline: int, sig: bytes) -> str:
        return tx_hash(self.send("cancelOffer", to_checksum_address(maker), nonce, deadline, sig))

    def is_used(self, maker: str, nonce: int) -> bool:
        """Taken or cancelled."""
        return bool(self.call("offerUsed", to_checksum_address(maker), nonce))
