"""The community's contracts beside the ledger (exchange, governance, conversion out,
accounts), each driven through the ledger's `ChainClient`: same key, nonces, receipts and
error decoding. A part is deployed next to a ledger and given the ledger role it needs.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from coincurve import PrivateKey

from community.chain import artifacts, eip712
from community.chain.client import ChainClient, _revert_error, _revert_exceptions
from quartier.hashing import keccak256, to_checksum_address


def role_id(role: str) -> bytes:
    return b"\x00" * 32 if role == "DEFAULT_ADMIN_ROLE" else keccak256(role.encode())


class Part:
    """One deployed community contract."""

    ARTIFACT: ClassVar[str]
    DOMAIN_NAME: ClassVar[str]
    # Ledger roles the part needs to do its job, granted at deployment.
    LEDGER_ROLES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract: Any = client.w3.eth.contract(address=to_checksum_address(address),
                                                    abi=artifacts.load(self.ARTIFACT).abi)

    @classmethod
    def deploy(cls, client: ChainClient, *extra_args: Any) -> Self:
        """Deploys next to the client's ledger, the client's key as admin and governor."""
        art = artifacts.load(cls.ARTIFACT)
        factory = client.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        receipt = client.transact(factory.constructor(*cls.constructor_args(client, *extra_args)), gas=6_000_000)
        part = cls(client, receipt["contractAddress"])
        for role in cls.LEDGER_ROLES:
            client.grant_role(role, part.address)
        return part

    @classmethod
    def constructor_args(cls, client: ChainClient, *extra_args: Any) -> tuple[Any, ...]:
        return (client.ledger_address, client.address, *extra_args)

    @property
    def address(self) -> str:
        return str(self.contract.address)

    @property
    def domain(self) -> eip712.Domain:
        return eip712.Domain(self.DOMAIN_NAME, self.client.chain_id, self.address)

    def call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self.contract.functions, name)(*args).call()
        except _revert_exceptions() as exc:
            raise _revert_error(exc) from None

    def send(self, name: str, *args: Any) -> Any:
        """Sends a transaction from the client's key (the relayer) and returns the receipt."""
        return self.client.transact(getattr(self.contract.functions, name)(*args))

    def events(self, receipt: Any, name: str) -> list[Any]:
        from web3.logs import DISCARD

        return list(getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD))

    def grant_role(self, role: str, account: str) -> str:
        return tx_hash(self.send("grantRole", role_id(role), to_checksum_address(account)))

    def nonce(self, account: str) -> int:
        return int(self.call("nonces", to_checksum_address(account)))

    def deadline(self, ttl: int) -> int:
        return int(self.client.w3.eth.get_block("latest")["timestamp"]) + ttl

    def sign(self, key: PrivateKey, type_string: str, values: Sequence[eip712.Value]) -> bytes:
        return eip712.sign(key, self.domain, type_string, values)


def tx_hash(receipt: Any) -> str:
    return "0x" + bytes(receipt["transactionHash"]).hex()


def random_nonce() -> int:
    """A fresh offer nonce: offers are used once, so any unused 64-bit number will do."""
    return secrets.randbits(63)
