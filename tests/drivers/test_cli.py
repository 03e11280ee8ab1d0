"""`quartier meter decode` on real captures: one JSON object per frame, exit code."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from quartier.cli import app
from tests.drivers.drivers_helpers import CAPTURES

runner = CliRunner()


def decode(fmt: str, path: Path) -> tuple[int, list[dict]]:
    result = runner.invoke(app, ["meter", "decode", "--format", fmt, str(path)])
    return result.exit_code, [json.loads(line) for line in result.stdout.splitlines() if line]


def test_decode_tic_capture() -> None:
    code, frames = decode("tic", CAPTURES / "tic_standard_tempo.tic")
    assert code == 0
    assert frames == [{"ok": True, "meter_id": "041776199277", "meter_point": "07361794479930",
                       "m": frames[0]["m"], "errors": []}]
    assert frames[0]["m"]["e_imp_wh"] == 21849106


def test_decode_several_frames_one_bad(tmp_path: Path) -> None:
    good = (CAPTURES / "tic_historique_base.tic").read_bytes()
    bad = good.replace(b"PAPP 00420 '", b"PAPP 00420 *")
    f = tmp_path / "capture.tic"
    f.write_bytes(good + bad + good)
    code, frames = decode("tic", f)
    assert code == 1
    assert [fr["ok"] for fr in frames] == [True, False, True]
    assert frames[1]["errors"] == ["TIC checksum mismatch on group PAPP: expected \"'\", got '*'"]


def test_decode_p1_captures(tmp_path: Path) -> None:
    f = tmp_path / "all.p1"
    f.write_bytes(b"".join(p.read_bytes() for p in sorted(CAPTURES.glob("*.p1"))))
    code, frames = decode("p1", f)
    assert code == 0 and len(frames) == 5 and all(fr["ok"] for fr in frames)


def test_decode_nothing_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "empty.tic"
    f.write_bytes(b"noise")
    code, frames = decode("tic", f)
    assert code == 1 and frames[0]["ok"] is False
