"""The ledger's chain client: deploy, register, settle (idempotently), pay, read.

One class, `ChainClient`, over web3.py. With `rpc_url=None` it runs an in-process EVM
(eth-tester on py-evm), the embedded default for one box and the demo; otherwise it talks
JSON-RPC to a node (anvil in tests, the communities' proof-of-authority network in
production). Every transaction is built, signed with the client's key and sent raw, so
the node never holds a key; nonces come from the node's pending count under a lock, and
every send awaits its receipt (and `confirmations` blocks on top of it).

Settlement is idempotent: `settle_batch` first asks the chain whether the period is
settled, and journals the signed transaction before broadcasting it, so a crash between
send and receipt is reconciled on the next call by rebroadcasting the same transaction
(same nonce, same hash) rather than signing a second one. The contract refuses a period
settled twice in any case.
"""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from coincurve import PrivateKey
from eth_abi import decode as abi_decode
from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound

from community.chain import artifacts
from community.chain.intents import Batch, Payment, compact_signature
from quartier.claim import community_hash
from quartier.hashing import keccak256, to_checksum_address
from quartier.signing import address_of

ROLE_GRID = 1
ROLE_PRODUCTION = 2
ROLE_NAMES = ("REGISTRAR_ROLE", "SETTLER_ROLE", "BOARD_ROLE", "GOVERNOR_ROLE")
EMBEDDED_FUNDING_WEI = 10**22


class ChainError(RuntimeError):
    """A chain operation that failed: a node error, a timeout, a failed transaction."""


class LedgerRevert(ChainError):
    """The ledger refused a call with one of its custom errors, decoded."""

    def __init__(self, name: str, args: dict[str, Any]) -> None:
        self.name = name
        self.args_by_name = args
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        super().__init__(f"ledger refused: {name}({shown})")


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def decode_revert(data: str | bytes | None) -> ChainError:
    """A typed error from revert data (a ledger custom error, Error(string) or unknown)."""
    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else (data or b"")
    if len(raw) >= 4:
        entry = artifacts.error_selectors().get(raw[:4])
        if entry is not None:
            types = [artifacts._abi_type(i) for i in entry["inputs"]]
            values = abi_decode(types, raw[4:])
            return LedgerRevert(entry["name"], {i["name"]: v for i, v in zip(entry["inputs"], values, strict=True)})
        if raw[:4] == keccak256(b"Error(string)")[:4]:
            return ChainError(f"ledger refused: {abi_decode(['string'], raw[4:])[0]}")
    return ChainError(f"ledger refused with revert data 0x{raw.hex()}")


def _revert_exceptions() -> tuple[type[BaseException], ...]:
    from eth_tester.exceptions import TransactionFailed

    return (ContractCustomError, ContractLogicError, TransactionFailed)


def _revert_error(exc: BaseException) -> ChainError:
    """The typed error behind a web3 revert exception, from either backend.

    A JSON-RPC node's revert carries its data; the in-process EVM reports the raw revert
    bytes as the repr in its message ("execution reverted: b'...'").
    """
    data = getattr(exc, "data", None)
    if data is None and exc.args and isinstance(exc.args[0], str):
        text = exc.args[0].removeprefix("execution reverted: ")
        if text[:2] in ("b'", 'b"'):
            try:
                data = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                data = None
        elif text:
            return ChainError(f"ledger refused: {text}")
    return decode_revert(data)


# ---- backends ----


def embedded_web3() -> Web3:
    """An in-process EVM (eth-tester, py-evm), with automatic mining."""
    from eth_tester import EthereumTester, PyEVMBackend
    from web3.providers.eth_tester import EthereumTesterProvider

    params = PyEVMBackend.generate_genesis_params(overrides={"gas_limit": 60_000_000})
    tester = EthereumTester(PyEVMBackend(genesis_parameters=params))
    return Web3(EthereumTesterProvider(tester))


def connect(rpc_url: str | None, timeout: float = 30.0) -> Web3:
    if rpc_url is None:
        return embedded_web3()
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id  # noqa: B018 - fail early with a clear message
    except Exception as exc:
        raise ChainError(f"cannot reach the chain node at {rpc_url}: {exc}") from None
    return w3


def is_embedded(w3: Web3) -> bool:
    from web3.providers.eth_tester import EthereumTesterProvider

    return isinstance(w3.provider, EthereumTesterProvider)


def _private_key(key: bytes | str | PrivateKey) -> PrivateKey:
    if isinstance(key, PrivateKey):
        return key
    if isinstance(key, str):
        key = bytes.fromhex(key.strip().removeprefix("0x"))
    return PrivateKey(key)


# ---- the submission journal ----


@dataclass(frozen=True)
class Submission:
    ledger: str
    period_id: int
    tx_hash: str
    raw_tx: bytes
    status: str  # "sent", "mined", "failed"


class Journal(Protocol):
    """Where signed settlement transactions are recorded before they are broadcast."""

    def get(self, ledger: str, period_id: int) -> Submission | None: ...

    def put(self, submission: Submission) -> None: ...


class MemoryJournal:
    """For the embedded chain, which does not outlive the process either."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], Submission] = {}

    def get(self, ledger: str, period_id: int) -> Submission | None:
        return self._rows.get((ledger, period_id))

    def put(self, submission: Submission) -> None:
        self._rows[(submission.ledger, submission.period_id)] = submission


# ---- results ----


@dataclass(frozen=True)
class Deployment:
    ledger: str
    community: str
    community_hash: str
    fund: str
    admin: str
    chain_id: int
    block: int
    units: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger, "community": self.community,
            "community_hash": self.community_hash, "fund": self.fund, "admin": self.admin,
            "chain_id": self.chain_id, "block": self.block, "units": dict(self.units),
        }


@dataclass(frozen=True)
class UnitSpec:
    symbol: str
    decimals: int
    floor: int  # default floor, <= 0, in base units
    ceiling: int = 2**64 - 1  # default ceiling, base units; the maximum means none
    rate_ppb_per_day: int = 0  # demurrage
    metered: bool = False  # credits need gateway claims (the kWh unit)


DEFAULT_UNITS = (
    UnitSpec("KWH", 3, floor=-500_000, rate_ppb_per_day=0, metered=True),  # 1 Wh resolution
    UnitSpec("HOUR", 2, floor=-2_000),  # 0.01 h
    UnitSpec("KG", 3, floor=-50_000),  # 1 g
)


@dataclass(frozen=True)
class GatewayInfo:
    member: str
    meter_point: bytes
    roles: int
    active: bool


@dataclass(frozen=True)
class PeriodInfo:
    period_id: int
    intervals_root: bytes
    period_end: int
    settled_at: int
    claims: int
    entries: int


@dataclass(frozen=True)
class AccountState:
    balance: int
    touched_at: int
    dust: int
    nonce: int
    owed: int  # demurrage charged by payments, not yet collected into the fund
    flags: int


# ---- the client ----


class ChainClient:
    """The ledger as the community server (and its relayer) sees it."""

    # Any: web3's NewType-heavy signatures add nothing but casts at this boundary.
    w3: Any

    def __init__(
        self,
        rpc_url: str | None = None,
        key: bytes | str | PrivateKey | None = None,
        *,
        ledger: str | None = None,
        w3: Web3 | None = None,
        confirmations: int = 0,
        journal: Journal | None = None,
        receipt_timeout: float = 120.0,
    ) -> None:
        self.w3 = w3 if w3 is not None else connect(rpc_url)
        if key is None:
            if not is_embedded(self.w3):
                raise ChainError("a key is needed to send transactions to a node (--key FILE)")
            key = PrivateKey()
        self._key = _private_key(key)
        self.address = address_of(self._key)
        if is_embedded(self.w3) and self.w3.eth.get_balance(self.address) == 0:
            self._fund_from_tester()
        self.chain_id = int(self.w3.eth.chain_id)
        self.confirmations = confirmations
        self.journal: Journal = journal if journal is not None else MemoryJournal()
        self.receipt_timeout = receipt_timeout
        self._lock = threading.Lock()
        self._contract: Any = None
        if ledger is not None:
            self.attach(ledger)

    # -- plumbing --

    def _fund_from_tester(self) -> None:
        tester_account = self.w3.eth.accounts[0]
        h = self.w3.eth.send_transaction(
            {"from": tester_account, "to": self.address, "value": EMBEDDED_FUNDING_WEI})
        self.w3.eth.wait_for_transaction_receipt(h)

    def attach(self, ledger: str) -> None:
        self._contract = self.w3.eth.contract(address=to_checksum_address(ledger),
                                              abi=artifacts.ledger().abi)

    @property
    def ledger(self) -> Any:
        if self._contract is None:
            raise ChainError("no ledger: deploy() one or give its address")
        return self._contract

    @property
    def ledger_address(self) -> str:
        return str(self.ledger.address)

    def _sign(self, tx: dict[str, Any]) -> tuple[str, bytes]:
        signed = Account.sign_transaction(tx, self._key.secret)
        return "0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction)

    def _build(self, call: Any, gas: int | None = None) -> dict[str, Any]:
        """A transaction for `call`, its gas estimated (which surfaces a revert now)."""
        params: dict[str, Any] = {"from": self.address, "chainId": self.chain_id,
                                  "nonce": self.w3.eth.get_transaction_count(self.address, "pending")}
        try:
            if gas is None:
                gas = int(call.estimate_gas({"from": self.address}))
                gas = gas + gas // 5 + 10_000  # headroom: estimates are exact only for that state
            params["gas"] = gas
            return dict(call.build_transaction(params))
        except _revert_exceptions() as exc:
            raise _revert_error(exc) from None

    def _broadcast(self, raw_tx: bytes) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw_tx)
        except _revert_exceptions() as exc:
            raise _revert_error(exc) from None
        except ValueError as exc:
            # Rebroadcasting a transaction the node already has is fine.
            text = str(exc).lower()
            if "already" not in text and "known" not in text:
                raise ChainError(f"node refused the transaction: {exc}") from None

    def _await(self, tx_hash: str) -> Any:
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout,
                                                              poll_latency=0.02)
        except Exception as exc:
            raise ChainError(f"no receipt for {tx_hash} after {self.receipt_timeout} s: {exc}") from None
        if self.confirmations > 0:
            target = receipt["blockNumber"] + self.confirmations - 1
            deadline = time.monotonic() + self.receipt_timeout
            while self.w3.eth.block_number < target:
                if time.monotonic() > deadline:
                    raise ChainError(f"{tx_hash} has not reached {self.confirmations} confirmations")
                time.sleep(0.2)
            # Reorg-safety: the receipt must still be there once buried deep enough.
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise self._why_failed(tx_hash, receipt)
        return receipt

    def _why_failed(self, tx_hash: str, receipt: Any) -> ChainError:
        tx = self.w3.eth.get_transaction(tx_hash)
        try:
            self.w3.eth.call({"from": tx["from"], "to": tx["to"], "data": tx["input"],
                              "gas": tx["gas"]}, receipt["blockNumber"] - 1)
        except _revert_exceptions() as exc:
            return _revert_error(exc)
        except Exception as exc:  # a node that cannot replay: report what we know
            return ChainError(f"transaction {tx_hash} failed in block {receipt['blockNumber']}: {exc}")
        return ChainError(f"transaction {tx_hash} failed in block {receipt['blockNumber']} "
                          f"(out of gas at {receipt['gasUsed']}?)")

    def transact(self, call: Any, gas: int | None = None) -> Any:
        """Sends `call` from the client's key and returns the receipt."""
        with self._lock:
            tx_hash, raw = self._sign(self._build(call, gas))
            self._broadcast(raw)
        return self._await(tx_hash)

    def send_value(self, to: str, wei: int) -> Any:
        """Sends ether (gas money for another key on a development chain)."""
        with self._lock:
            tx = {"from": self.address, "to": to_checksum_address(to), "value": wei, "gas": 21_000,
                  "chainId": self.chain_id,
                  "nonce": self.w3.eth.get_transaction_count(self.address, "pending"),
                  "gasPrice": self.w3.eth.gas_price * 2}
            tx_hash, raw = self._sign(tx)
            self._broadcast(raw)
        return self._await(tx_hash)

    def _fn(self, name: str, *args: Any) -> Any:
        return getattr(self.ledger.functions, name)(*args)

    def call(self, name: str, *args: Any) -> Any:
        try:
            return self._fn(name, *args).call()
        except _revert_exceptions() as exc:
            raise _revert_error(exc) from None

    # -- deployment and configuration --

    def deploy(self, community: str, *, fund: str | None = None,
               units: Sequence[UnitSpec] = DEFAULT_UNITS) -> Deployment:
        art = artifacts.ledger()
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        fund_address = to_checksum_address(fund) if fund else self.address
        receipt = self.transact(factory.constructor(community_hash(community), self.address, fund_address),
                                gas=8_000_000)
        self.attach(receipt["contractAddress"])
        unit_ids = {u.symbol: self.add_unit(u) for u in units}
        return Deployment(self.ledger_address, community, "0x" + community_hash(community).hex(),
                          fund_address, self.address, self.chain_id, receipt["blockNumber"], unit_ids)

    def add_unit(self, spec: UnitSpec) -> int:
        receipt = self.transact(self._fn("addUnit", spec.symbol, spec.decimals, spec.floor, spec.ceiling,
                                         spec.rate_ppb_per_day, spec.metered))
        (event,) = self.ledger.events.UnitAdded().process_receipt(receipt)
        return int(event["args"]["unit"])

    def set_unit(self, unit: int | str, floor: int, ceiling: int, rate_ppb_per_day: int) -> str:
        return self._tx_hash(self.transact(self._fn("setUnit", self.unit_id(unit), floor, ceiling,
                                                    rate_ppb_per_day)))

    def set_limits(self, unit: int | str, account: str, floor: int, ceiling: int) -> str:
        return self._tx_hash(self.transact(self._fn("setLimits", self.unit_id(unit),
                                                    to_checksum_address(account), floor, ceiling)))

    def clear_limits(self, unit: int | str, account: str) -> str:
        return self._tx_hash(self.transact(self._fn("clearLimits", self.unit_id(unit),
                                                    to_checksum_address(account))))

    def grant_role(self, role: str, account: str) -> str:
        role_id = keccak256(role.encode()) if role != "DEFAULT_ADMIN_ROLE" else b"\x00" * 32
        return self._tx_hash(self.transact(self._fn("grantRole", role_id, to_checksum_address(account))))

    def units(self) -> dict[str, int]:
        count = int(self.call("unitCount"))
        return {str(self.call("unitSymbol", u)): u for u in range(count)}

    def unit_id(self, unit: int | str) -> int:
        if isinstance(unit, int):
            return unit
        try:
            return self.units()[unit]
        except KeyError:
            raise ChainError(f"the ledger has no unit {unit!r}") from None

    @staticmethod
    def _tx_hash(receipt: Any) -> str:
        return "0x" + bytes(receipt["transactionHash"]).hex()

    # -- registry --

    def register_member(self, account: str) -> str:
        return self._tx_hash(self.transact(self._fn("registerMember", to_checksum_address(account))))

    def remove_member(self, account: str) -> str:
        return self._tx_hash(self.transact(self._fn("removeMember", to_checksum_address(account))))

    def is_member(self, account: str) -> bool:
        return bool(self.call("isMember", to_checksum_address(account)))

    def register_meter_point(self, meter_point: str | bytes, member: str) -> str:
        return self._tx_hash(self.transact(self._fn("registerMeterPoint", meter_point_id(meter_point),
                                                    to_checksum_address(member))))

    def register_gateway(self, gateway: str, member: str, meter_point: str | bytes,
                         roles: int = ROLE_GRID | ROLE_PRODUCTION, active_from: int = 0) -> str:
        return self._tx_hash(self.transact(self._fn(
            "registerGateway", to_checksum_address(gateway), to_checksum_address(member),
            meter_point_id(meter_point), roles, active_from)))

    def revoke_gateway(self, gateway: str, at: int = 0) -> str:
        return self._tx_hash(self.transact(self._fn("revokeGateway", to_checksum_address(gateway), at)))

    def gateway_at(self, gateway: str, ts: int) -> GatewayInfo:
        member, meter_point, roles, active = self.call("gatewayAt", to_checksum_address(gateway), ts)
        return GatewayInfo(str(member), bytes(meter_point), int(roles), bool(active))

    # -- settlement --

    def is_settled(self, period_id: int) -> bool:
        return bool(self.call("isSettled", period_id))

    def period(self, period_id: int) -> PeriodInfo | None:
        root, end, settled_at, claims, entries = self.call("periods", period_id)
        if settled_at == 0:
            return None
        return PeriodInfo(period_id, bytes(root), int(end), int(settled_at), int(claims), int(entries))

    def intervals_root(self, period_id: int) -> bytes | None:
        info = self.period(period_id)
        return info.intervals_root if info else None

    def settlement_tx(self, period_id: int) -> str | None:
        """The hash of the transaction that settled `period_id`, from its event."""
        logs = self.ledger.events.PeriodSettled().get_logs(
            from_block=0, argument_filters={"periodId": period_id})
        return "0x" + bytes(logs[0]["transactionHash"]).hex() if logs else None

    def settle_batch(self, batch: Batch) -> str:
        """Settles one period and returns the settling transaction's hash; a no-op returning
        the original hash when the period is already settled."""
        ledger = self.ledger_address
        pid = batch.period_id
        with self._lock:
            if self.is_settled(pid):
                return self.settlement_tx(pid) or ""
            previous = self.journal.get(ledger, pid)
            tx_hash = None
            if previous is not None and previous.status == "sent":
                # A crash came between send and receipt: the journaled transaction is either
                # known to the node (await it) or rebroadcast as is, same nonce, same hash.
                try:
                    if not self._known(previous.tx_hash):
                        self._broadcast(previous.raw_tx)
                    tx_hash = previous.tx_hash
                except ChainError:
                    # Its nonce went to another transaction: it can never be mined.
                    self.journal.put(replace(previous, status="failed"))
            if tx_hash is None:
                call = self._fn("settle", pid, batch.period_end, batch.intervals_root,
                                list(batch.claims), list(batch.entries), list(batch.donations))
                tx_hash, raw = self._sign(self._build(call))
                self.journal.put(Submission(ledger, pid, tx_hash, raw, "sent"))
                self._broadcast(raw)
        submission = self.journal.get(ledger, pid)
        assert submission is not None
        try:
            self._await(tx_hash)
        except LedgerRevert as exc:
            self.journal.put(replace(submission, status="failed"))
            if exc.name == "PeriodAlreadySettled":
                return self.settlement_tx(pid) or tx_hash
            raise
        self.journal.put(replace(submission, status="mined"))
        return tx_hash

    def _known(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)
            return True
        except TransactionNotFound:
            return False

    # -- balances --

    def balance(self, unit: int | str, account: str) -> int:
        return int(self.call("balanceOf", self.unit_id(unit), to_checksum_address(account)))

    def account_state(self, unit: int | str, account: str) -> AccountState:
        b, t, d, n, o, f = self.call("accountState", self.unit_id(unit), to_checksum_address(account))
        return AccountState(int(b), int(t), int(d), int(n), int(o), int(f))

    def collect(self, unit: int | str, accounts: Sequence[str]) -> str:
        """Sweeps the demurrage these accounts owe into the fund."""
        return self._tx_hash(self.transact(self._fn(
            "collect", self.unit_id(unit), [to_checksum_address(a) for a in accounts])))

    def unit_state(self, unit: int | str) -> dict[str, int]:
        pending, rate, floor, ceiling, flags = self.call("unitState", self.unit_id(unit))
        return {"pending": pending, "rate_ppb_per_day": rate, "floor": floor, "ceiling": ceiling,
                "flags": flags}

    def limits(self, unit: int | str, account: str) -> tuple[int, int]:
        floor, ceiling = self.call("limitsOf", self.unit_id(unit), to_checksum_address(account))
        return int(floor), int(ceiling)

    def nonce_of(self, unit: int | str, account: str) -> int:
        return int(self.call("nonceOf", self.unit_id(unit), to_checksum_address(account)))

    # -- member payments (relayed intents) --

    def payment(self, sender: str, to: str, unit: int | str, amount: int, *,
                deadline: int | None = None, ttl: int = 3600, memo: bytes = b"") -> Payment:
        """An unsigned payment intent with the payer's next nonce and a deadline."""
        unit_id = self.unit_id(unit)
        if deadline is None:
            deadline = int(self.w3.eth.get_block("latest")["timestamp"]) + ttl
        return Payment(sender, to, unit_id, amount, self.nonce_of(unit_id, sender), deadline, memo)

    def sign_payment(self, key: PrivateKey, payment: Payment) -> bytes:
        return payment.sign(key, self.chain_id, self.ledger_address)

    def relay_payment(self, payment: Payment, signature: bytes) -> str:
        """Submits a member's signed payment; the relayer (this client) pays the gas."""
        r, vs = compact_signature(signature)
        if payment.memo:
            call = self._fn("payWithMemo", payment.sender, payment.to, payment.unit, payment.amount,
                            payment.nonce, payment.deadline, payment.memo, r, vs)
        else:
            call = self._fn("pay_p5CR", *pack_payment(payment), r, vs)
        return self._tx_hash(self.transact(call))

    # -- board controls --

    def pause(self, reason: str) -> str:
        return self._tx_hash(self.transact(self._fn("pause", reason)))

    def resume(self, reason: str) -> str:
        return self._tx_hash(self.transact(self._fn("resume", reason)))

    def freeze(self, account: str, reason: str) -> str:
        return self._tx_hash(self.transact(self._fn("freeze", to_checksum_address(account), reason)))

    def unfreeze(self, account: str, reason: str) -> str:
        return self._tx_hash(self.transact(self._fn("unfreeze", to_checksum_address(account), reason)))

    def is_paused(self) -> bool:
        return bool(self.call("paused"))

    def is_frozen(self, account: str) -> bool:
        return bool(self.call("frozen", to_checksum_address(account)))


def pack_payment(payment: Payment) -> tuple[int, int]:
    """The two words of the compact `pay(head, body, r, vs)` call."""
    if payment.nonce >= 2**32 or payment.deadline >= 2**40:
        raise ChainError("nonce or deadline too large for the compact form: use a memo payment")
    head = (int(payment.sender, 16) | payment.unit << 160 | payment.nonce << 168
            | payment.deadline << 216)
    return head, int(payment.to, 16) | payment.amount << 160


def meter_point_id(meter_point: str | bytes) -> bytes:
    """A meter point (PRM, EAN) as the bytes32 the registry keys it by: keccak256 of its id."""
    if isinstance(meter_point, bytes):
        if len(meter_point) != 32:
            raise ChainError(f"a meter point id is 32 bytes, got {len(meter_point)}")
        return meter_point
    return keccak256(meter_point.encode("utf-8"))


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise ChainError(f"timed out waiting for {what}")
        time.sleep(0.1)
