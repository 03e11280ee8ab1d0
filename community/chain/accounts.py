"""Member accounts that survive real life: replacement, helpers and payment requests.

Each is a contract beside the ledger, driven by members' signed intents that the
community's relayer submits (see `parts.Part`):

- `RecoveryClient` (domain "Quartier Recovery"): replace address A by B after a delay,
  opened by the board, by A itself, or by A's guardians (m of n); A can cancel during
  the delay.
      Replace(address from,address to,uint64 nonce,uint64 deadline)
      CancelReplace(address from,uint64 nonce,uint64 deadline)
      ApproveReplace(address guardian,address from,address to,uint64 nonce,uint64 deadline)
      Guardians(address member,address[] guardians,uint8 threshold,uint64 nonce,uint64 deadline)
- `HelpersClient` (domain "Quartier Helpers"): a member grants another the right to pay
  for them up to a monthly amount, or to see their account, until a date.
      Grant(address member,address helper,uint8 kind,uint8 unit,uint256 monthly,uint64 expiresAt,
            uint64 nonce,uint64 deadline)
      Revoke(address member,address helper,uint64 nonce,uint64 deadline)
      PayFor(address helper,address member,address to,uint8 unit,uint256 amount,bytes32 memoHash,
             uint64 nonce,uint64 deadline)
- `RequestsClient` (domain "Quartier Requests"): ask to be paid; pay all or part, refuse,
  withdraw.
      Request(address requester,address payer,uint8 unit,uint256 amount,bytes32 memoHash,
              uint64 expiresAt,uint64 nonce,uint64 deadline)
      PayRequest(address payer,uint256 request,uint256 amount,uint64 nonce,uint64 deadline)
      RefuseRequest(address payer,uint256 request,uint64 nonce,uint64 deadline)
      WithdrawRequest(address requester,uint256 request,uint64 nonce,uint64 deadline)

Memos are ciphertext only (encrypted to payer, payee and the board's auditor key): the
contracts sign and emit them as bytes and never see plaintext.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey

from community.chain.client import ChainClient
from community.chain.eip712 import word
from community.chain.intents import memo_hash
from community.chain.parts import Part, tx_hash
from quartier.hashing import keccak256, to_checksum_address

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class Signed:
    """A member's signed intent for one of these contracts: the call's arguments (without
    the nonce, deadline and signature, which follow them) ready to relay."""

    function: str
    args: tuple[Any, ...]
    signer: str
    nonce: int
    deadline: int
    signature: bytes


class _IntentPart(Part):
    def _signed(self, key: PrivateKey, function: str, type_string: str, signer: str,
                typed: Sequence[Any], args: Sequence[Any], ttl: int, nonce: int | None) -> Signed:
        signer = to_checksum_address(signer)
        nonce = self.nonce(signer) if nonce is None else nonce
        deadline = self.deadline(ttl)
        sig = self.sign(key, type_string, (*typed, nonce, deadline))
        return Signed(function, tuple(args), signer, nonce, deadline, sig)

    def relay(self, intent: Signed) -> Any:
        """Submits a signed intent (the relayer pays the gas); returns the receipt."""
        return self.send(intent.function, *intent.args, intent.nonce, intent.deadline, intent.signature)


# ---- account replacement ----


@dataclass(frozen=True)
class ReplacementRequest:
    to: str
    ready_at: int


class RecoveryClient(_IntentPart):
    ARTIFACT = "AccountRecovery"
    DOMAIN_NAME = "Quartier Recovery"
    LEDGER_ROLES = ("RECOVERY_ROLE",)

    @classmethod
    def deploy_with(cls, client: ChainClient, governance: Part | None = None) -> RecoveryClient:
        """Deploys account recovery; with `governance`, fund preferences move too."""
        rec = cls.deploy(client, governance.address if governance else ZERO_ADDRESS)
        if governance is not None:
            governance.grant_role("RECOVERY_ROLE", rec.address)
        return rec

    def set_delay(self, seconds: int) -> str:
        return tx_hash(self.send("setDelay", seconds))

    def add_migration(self, target: Part) -> str:
        """`target` (helpers, payment requests) follows every replacement executed from
        now on: what was addressed to the old key answers to the new one."""
        return tx_hash(self.send("addMigration", target.address))

    def delay(self) -> int:
        return int(self.call("delay"))

    def sign_guardians(self, key: PrivateKey, member: str, guardians: Sequence[str], threshold: int, *,
                       ttl: int = 3600, nonce: int | None = None) -> Signed:
        gs = [to_checksum_address(g) for g in guardians]
        packed = keccak256(b"".join(word(g) for g in gs))
        return self._signed(key, "setGuardians",
                            "Guardians(address member,address[] guardians,uint8 threshold,uint64 nonce,"
                            "uint64 deadline)", member, (member, packed, threshold),
                            (to_checksum_address(member), gs, threshold), ttl, nonce)

    def guardians(self, member: str) -> tuple[list[str], int]:
        m = to_checksum_address(member)
        return [str(g) for g in self.call("guardiansOf", m)], int(self.call("threshold", m))

    def request_by_board(self, old: str, new: str) -> str:
        """The board asks, after checking the member's identity."""
        return tx_hash(self.send("requestByBoard", to_checksum_address(old), to_checksum_address(new)))

    def sign_request(self, key: PrivateKey, old: str, new: str, *, ttl: int = 3600,
                     nonce: int | None = None) -> Signed:
        """The member, still holding the old key, asks to move to a new one."""
        args = (to_checksum_address(old), to_checksum_address(new))
        return self._signed(key, "requestByMember", "Replace(address from,address to,uint64 nonce,uint64 deadline)",
                            old, args, args, ttl, nonce)

    def sign_approval(self, key: PrivateKey, guardian: str, old: str, new: str, *, ttl: int = 3600,
                      nonce: int | None = None) -> Signed:
        args = (to_checksum_address(guardian), to_checksum_address(old), to_checksum_address(new))
        return self._signed(key, "approve",
                            "ApproveReplace(address guardian,address from,address to,uint64 nonce,uint64 deadline)",
                            guardian, args, args, ttl, nonce)

    def sign_cancel(self, key: PrivateKey, old: str, *, ttl: int = 3600, nonce: int | None = None) -> Signed:
        """The old key cancels a replacement during the delay."""
        args = (to_checksum_address(old),)
        return self._signed(key, "cancel", "CancelReplace(address from,uint64 nonce,uint64 deadline)", old,
                            args, args, ttl, nonce)

    def cancel_by_board(self, old: str) -> str:
        return tx_hash(self.send("cancelByBoard", to_checksum_address(old)))

    def execute(self, old: str) -> str:
        """Anyone, once the delay has run."""
        return tx_hash(self.send("execute", to_checksum_address(old)))

    def pending(self, old: str) -> ReplacementRequest | None:
        to, ready_at = self.call("requests", to_checksum_address(old))
        return None if int(to, 16) == 0 else ReplacementRequest(str(to), int(ready_at))


# ---- helpers ----

VIEW, PAY = 1, 2


@dataclass(frozen=True)
class HelperGrant:
    kind: int  # VIEW or PAY
    unit: int
    expires_at: int
    month: int
    monthly: int
    spent: int


class HelpersClient(_IntentPart):
    ARTIFACT = "Helpers"
    DOMAIN_NAME = "Quartier Helpers"
    LEDGER_ROLES = ("OPERATOR_ROLE",)

    @classmethod
    def constructor_args(cls, client: ChainClient, *extra_args: Any) -> tuple[Any, ...]:
        return (client.ledger_address,)

    def sign_grant(self, key: PrivateKey, member: str, helper: str, *, kind: int, unit: int | str = 0,
                   monthly: int = 0, expires_at: int, ttl: int = 3600, nonce: int | None = None) -> Signed:
        """The member lets `helper` pay up to `monthly` a month in `unit` (PAY), or see
        their account (VIEW), until `expires_at`."""
        args = (to_checksum_address(member), to_checksum_address(helper), kind, self.client.unit_id(unit),
                monthly, expires_at)
        return self._signed(key, "grant",
                            "Grant(address member,address helper,uint8 kind,uint8 unit,uint256 monthly,"
                            "uint64 expiresAt,uint64 nonce,uint64 deadline)", member, args, args, ttl, nonce)

    def sign_revoke(self, key: PrivateKey, member: str, helper: str, *, ttl: int = 3600,
                    nonce: int | None = None) -> Signed:
        args = (to_checksum_address(member), to_checksum_address(helper))
        return self._signed(key, "revoke", "Revoke(address member,address helper,uint64 nonce,uint64 deadline)",
                            member, args, args, ttl, nonce)

    def sign_pay_for(self, key: PrivateKey, helper: str, member: str, to: str, unit: int | str, amount: int,
                     *, memo: bytes = b"", ttl: int = 3600, nonce: int | None = None) -> Signed:
        """The helper's payment from `member` to `to`; `memo` is ciphertext."""
        u = self.client.unit_id(unit)
        h, m, t = (to_checksum_address(a) for a in (helper, member, to))
        return self._signed(key, "payFor",
                            "PayFor(address helper,address member,address to,uint8 unit,uint256 amount,"
                            "bytes32 memoHash,uint64 nonce,uint64 deadline)", helper,
                            (h, m, t, u, amount, memo_hash(memo)), (h, m, t, u, amount, memo), ttl, nonce)

    def grant(self, member: str, helper: str) -> HelperGrant | None:
        # grantOf: a grant made to an account `helper` replaced is `helper`'s
        kind, unit, expires, month, monthly, spent = self.call("grantOf", to_checksum_address(member),
                                                                to_checksum_address(helper))
        return None if kind == 0 else HelperGrant(int(kind), int(unit), int(expires), int(month), int(monthly),
                                                  int(spent))

    def can_view(self, member: str, helper: str) -> bool:
        return bool(self.call("canView", to_checksum_address(member), to_checksum_address(helper)))

    def remaining(self, member: str, helper: str) -> int:
        return int(self.call("remaining", to_checksum_address(member), to_checksum_address(helper)))

    def acted_for(self, member: str) -> list[dict[str, Any]]:
        """Every payment helpers made for `member`: who acted, to whom, how much."""
        logs = self.contract.events.PaidFor().get_logs(
            from_block=0, argument_filters={"member": to_checksum_address(member)})
        return [{"helper": str(lg["args"]["helper"]), "to": str(lg["args"]["to"]), "unit": int(lg["args"]["unit"]),
                 "amount": int(lg["args"]["amount"]), "tx_hash": "0x" + bytes(lg["transactionHash"]).hex()}
                for lg in logs]


# ---- payment requests ----

OPEN, PAID, REFUSED, WITHDRAWN = 1, 2, 3, 4


@dataclass(frozen=True)
class PaymentRequest:
    request: int
    requester: str
    unit: int
    status: int
    expires_at: int
    payer: str | None  # None: anyone may pay
    amount: int
    paid: int


class RequestsClient(_IntentPart):
    ARTIFACT = "PaymentRequests"
    DOMAIN_NAME = "Quartier Requests"
    LEDGER_ROLES = ("OPERATOR_ROLE",)

    def sign_request(self, key: PrivateKey, requester: str, payer: str | None, unit: int | str, amount: int, *,
                     memo: bytes = b"", expires_at: int, ttl: int = 3600, nonce: int | None = None) -> Signed:
        """`payer` None: anyone may pay (a link or a QR code)."""
        r, p = to_checksum_address(requester), to_checksum_address(payer or ZERO_ADDRESS)
        u = self.client.unit_id(unit)
        return self._signed(key, "request",
                            "Request(address requester,address payer,uint8 unit,uint256 amount,bytes32 memoHash,"
                            "uint64 expiresAt,uint64 nonce,uint64 deadline)", requester,
                            (r, p, u, amount, memo_hash(memo), expires_at), (r, p, u, amount, memo, expires_at),
                            ttl, nonce)

    def create(self, intent: Signed) -> int:
        (ev,) = self.events(self.relay(intent), "Requested")
        return int(ev["args"]["request"])

    def request_for_fund(self, payer: str, unit: int | str, amount: int, *, memo: bytes = b"",
                         expires_at: int) -> int:
        """The board asks a member to pay the fund."""
        receipt = self.send("requestForFund", to_checksum_address(payer), self.client.unit_id(unit), amount, memo,
                            expires_at)
        (ev,) = self.events(receipt, "Requested")
        return int(ev["args"]["request"])

    def sign_pay(self, key: PrivateKey, payer: str, request: int, amount: int, *, ttl: int = 3600,
                 nonce: int | None = None) -> Signed:
        args = (to_checksum_address(payer), request, amount)
        return self._signed(key, "pay",
                            "PayRequest(address payer,uint256 request,uint256 amount,uint64 nonce,uint64 deadline)",
                            payer, args, args, ttl, nonce)

    def sign_refuse(self, key: PrivateKey, payer: str, request: int, *, ttl: int = 3600,
                    nonce: int | None = None) -> Signed:
        args = (to_checksum_address(payer), request)
        return self._signed(key, "refuse",
                            "RefuseRequest(address payer,uint256 request,uint64 nonce,uint64 deadline)",
                            payer, args, args, ttl, nonce)

    def sign_withdraw(self, key: PrivateKey, requester: str, request: int, *, ttl: int = 3600,
                      nonce: int | None = None) -> Signed:
        args = (to_checksum_address(requester), request)
        return self._signed(key, "withdraw",
                            "WithdrawRequest(address requester,uint256 request,uint64 nonce,uint64 deadline)",
                            requester, args, args, ttl, nonce)

    def get(self, request: int) -> PaymentRequest | None:
        requester, unit, status, expires, payer, amount, paid = self.call("requests", request)
        if status == 0:
            return None
        payer = self.call("payerOf", request)  # after any replacement of the payer
        return PaymentRequest(request, str(requester), int(unit), int(status), int(expires),
                              None if int(payer, 16) == 0 else str(payer), int(amount), int(paid))

    def history(self, request: int) -> list[dict[str, Any]]:
        """The request's events in order: requested, paid (each part), refused, withdrawn."""
        out: list[dict[str, Any]] = []
        for name in ("Requested", "RequestPaid", "RequestRefused", "RequestWithdrawn"):
            for lg in getattr(self.contract.events, name)().get_logs(
                    from_block=0, argument_filters={"request": request}):
                out.append({"event": name, "block": int(lg["blockNumber"]), "index": int(lg["logIndex"]),
                            **{k: v for k, v in lg["args"].items() if k != "request"}})
        out.sort(key=lambda e: (e["block"], e["index"]))
        return out
