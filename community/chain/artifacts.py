"""The compiled contracts committed in contracts/artifacts (ABI and bytecode)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "contracts" / "artifacts"


class ArtifactError(RuntimeError):
    """A contract artifact that is missing or unreadable."""


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


@cache
def load(name: str, directory: Path = ARTIFACTS_DIR) -> Artifact:
    path = directory / f"{name}.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: run `make contracts`") from None
    except ValueError as exc:
        raise ArtifactError(f"{path}: not JSON ({exc})") from None
    return Artifact(name, doc["abi"], doc["bytecode"], doc["deployedBytecode"])


def ledger() -> Artifact:
    return load("CommunityLedger")


@cache
def error_selectors() -> dict[bytes, dict[str, Any]]:
    """4-byte selector -> ABI entry of every custom error the contracts can raise."""
    from quartier.hashing import keccak256

    out: dict[bytes, dict[str, Any]] = {}
    # Every deployed contract's errors: the community's contracts bubble up the ledger's.
    names = sorted(p.stem for p in ARTIFACTS_DIR.glob("*.json"))
    for entry in (e for name in names for e in load(name).abi):
        if entry.get("type") == "error":
            sig = f"{entry['name']}({','.join(_abi_type(i) for i in entry['inputs'])})"
            out[keccak256(sig.encode())[:4]] = entry
    return out


def _abi_type(param: dict[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + t[5:]
    return t
