"""The committed artifacts are what the pinned solc makes of the sources."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from community.chain.artifacts import ARTIFACTS_DIR

CONTRACTS = ARTIFACTS_DIR.parent


def test_artifacts_match_a_fresh_compilation(tmp_path: Path) -> None:
    subprocess.run(["node", str(CONTRACTS / "build.mjs"), "--out", str(tmp_path)], check=True,
                   capture_output=True, timeout=240)
    committed = sorted(p.name for p in ARTIFACTS_DIR.glob("*.json"))
    assert committed == sorted(p.name for p in tmp_path.glob("*.json"))
    for name in committed:
        fresh, ours = (json.loads((d / name).read_text()) for d in (tmp_path, ARTIFACTS_DIR))
        assert fresh["bytecode"] == ours["bytecode"], f"{name}: run `make contracts` and commit"
        assert fresh["deployedBytecode"] == ours["deployedBytecode"]
        assert fresh["abi"] == ours["abi"]
        assert fresh["compiler"] == ours["compiler"]


def test_the_compiler_is_the_pinned_one() -> None:
    pinned = json.loads((CONTRACTS / "package.json").read_text())["dependencies"]["solc"]
    art = json.loads((ARTIFACTS_DIR / "CommunityLedger.json").read_text())
    assert art["compiler"].startswith(f"solc {pinned}+")
