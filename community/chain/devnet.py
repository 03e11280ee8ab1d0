"""Development chains: a local anvil node (from contracts/node_modules, pinned in
contracts/package.json), and clock and snapshot control that works the same on anvil and
on the in-process EVM. Used by the tests, the benchmarks and the demo.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANVIL = Path(__file__).resolve().parents[2] / "contracts" / "node_modules" / ".bin" / "anvil"
# anvil's first default account (mnemonic "test test ... junk"), funded at genesis.
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


class AnvilError(RuntimeError):
    """anvil is missing or did not start."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Anvil:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start(port: int | None = None, *, gas_limit: int = 60_000_000, timeout: float = 20.0,
          extra_args: tuple[str, ...] = ()) -> Anvil:
    if not ANVIL.exists():
        raise AnvilError(f"{ANVIL} is missing: run `make contracts/node_modules/.installed`")
    port = port or _free_port()
    process = subprocess.Popen(
        [str(ANVIL), "--port", str(port), "--silent", "--gas-limit", str(gas_limit), *extra_args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise AnvilError(f"anvil exited with code {process.returncode}: {err.strip()}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return Anvil(port, process)
        time.sleep(0.05)
    process.kill()
    raise AnvilError(f"anvil did not listen on port {port} within {timeout} s")


def _tester(w3: Any) -> Any:
    from web3.providers.eth_tester import EthereumTesterProvider

    provider = w3.provider
    return provider.ethereum_tester if isinstance(provider, EthereumTesterProvider) else None


def _rpc(w3: Any, method: str, params: list[Any]) -> Any:
    response = w3.provider.make_request(method, params)
    if "error" in response:
        raise AnvilError(f"{method}: {response['error']}")
    return response.get("result")


def advance_time(w3: Any, seconds: int) -> int:
    """Moves the chain's clock forward and mines a block; returns the new block time."""
    now = int(w3.eth.get_block("latest")["timestamp"])
    target = now + seconds
    tester = _tester(w3)
    if tester is not None:
        tester.time_travel(target)
    else:
        _rpc(w3, "evm_setNextBlockTimestamp", [target])
        _rpc(w3, "evm_mine", [])
    return int(w3.eth.get_block("latest")["timestamp"])


def snapshot(w3: Any) -> Any:
    tester = _tester(w3)
    return tester.take_snapshot() if tester is not None else _rpc(w3, "evm_snapshot", [])


def revert(w3: Any, snapshot_id: Any) -> None:
    tester = _tester(w3)
    if tester is not None:
        tester.revert_to_snapshot(snapshot_id)
    else:
        _rpc(w3, "evm_revert", [snapshot_id])


def mine(w3: Any, blocks: int = 1) -> None:
    tester = _tester(w3)
    if tester is not None:
        tester.mine_blocks(blocks)
    else:
        _rpc(w3, "anvil_mine", [hex(blocks)])
