"""Key files and the core commands, run as a user would."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from quartier import keys

QUARTIER = [sys.executable, "-m", "quartier.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QUARTIER, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_keys_new_show_and_refuse_overwrite(tmp_path: Path) -> None:
    r = run("keys", "new", "--out", str(tmp_path / "k"))
    assert r.returncode == 0, r.stderr
    addr = r.stdout.strip().splitlines()[-1]
    path = tmp_path / "k" / "gateway.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run("keys", "show", "--key", str(path)).stdout.strip() == addr
    again = run("keys", "new", "--out", str(tmp_path / "k"))
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    assert run("keys", "show", "--key", str(path)).stdout.strip() == addr


def test_encrypted_key_file(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    r = run("keys", "new", "--out", str(tmp_path), "--encrypt", "--passphrase-file", str(pw))
    assert r.returncode == 0, r.stderr
    addr = r.stdout.strip().splitlines()[-1]
    text = (tmp_path / "gateway.key").read_text()
    assert "private_key" not in text and "ciphertext" in text
    assert keys.read(tmp_path / "gateway.key", "correct horse").address == addr
    with pytest.raises(keys.KeyFileError, match="wrong passphrase"):
        keys.read(tmp_path / "gateway.key", "wrong")
    with pytest.raises(keys.KeyFileError, match="encrypted"):
        keys.read(tmp_path / "gateway.key")
    shown = run("keys", "show", "--key", str(tmp_path / "gateway.key"),
                env={"QUARTIER_KEY_PASSPHRASE": "correct horse"})
    assert shown.stdout.strip() == addr


def test_edited_address_is_detected(tmp_path: Path) -> None:
    _, _k = keys.write_new(tmp_path)
    doc = json.loads((tmp_path / "gateway.key").read_text())
    doc["address"] = Account.create().address
    with pytest.raises(keys.KeyFileError, match="the key is for"):
        keys.loads(json.dumps(doc))


def test_sign_continues_chain_and_verify_accepts(tmp_path: Path) -> None:
    run("keys", "new", "--out", str(tmp_path))
    key = str(tmp_path / "gateway.key")
    lines = []
    for i in range(3):
        r = run("readings", "sign", "--key", key, "--state", str(tmp_path / "s"), "--dev", "heat-pump",
                "--ts", str(1000 + i), "--m", f"e_imp_wh={10 + i}")
        assert r.returncode == 0, r.stderr
        lines.append(r.stdout.strip())
    for line in lines:
        env = json.loads(line)
        addr = Account.recover_message(encode_defunct(primitive=env["r"].encode()), signature=env["sig"])
        assert addr == json.loads(env["r"])["gw"]
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(lines) + "\n")
    r = run("verify", str(log))
    assert r.returncode == 0, r.stdout
    assert json.loads(r.stdout)["valid"] == 3
    log.write_text(lines[0] + "\n" + lines[2] + "\n")
    r = run("verify", str(log))
    assert r.returncode == 1
    assert json.loads(r.stdout)["gaps"][0]["after_seq"] == 1


def test_sign_refuses_floats_and_bad_pairs(tmp_path: Path) -> None:
    run("keys", "new", "--out", str(tmp_path))
    r = run("readings", "sign", "--key", str(tmp_path / "gateway.key"), "--state", str(tmp_path),
            "--dev", "x", "--m", "p_w=1.5")
    assert r.returncode != 0 and "not an integer" in r.stderr
    r = run("readings", "sign", "--key", str(tmp_path / "gateway.key"), "--state", str(tmp_path),
            "--dev", "x", "--m", "p_w")
    assert r.returncode != 0 and "NAME=INTEGER" in r.stderr
