"""`quartier allocate` through the real root CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from quartier.cli import app

runner = CliRunner()

DOC = {
    "interval": "2024-06-01T12:00:00Z",
    "producers": {"p1": 300, "p2": 100},
    "consumers": {"c1": 200, "c2": 100, "c3": 300},
    "static": {"c1": 50, "c2": 50},
    "donations": [{"from": "p2", "to": "c3"}],
}


def _run(tmp_path: Path, doc: object, *args: str):
    f = tmp_path / "in.json"
    f.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return runner.invoke(app, ["allocate", *args, str(f)])


def test_allocate_each_key(tmp_path: Path) -> None:
    received = {}
    for key in ("prorata", "static", "priority"):
        result = _run(tmp_path, DOC, "--key", key)
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert set(out) >= {"allocations", "to_grid", "from_grid"}
        got: dict[str, int] = {}
        for a in out["allocations"]:
            got[a["to"]] = got.get(a["to"], 0) + a["wh"]
        received[key] = got
        assert sum(got.values()) + sum(out["to_grid"].values()) == 400
    assert received["prorata"] == {"c1": 133, "c2": 67, "c3": 200}
    assert received["static"] == {"c1": 200, "c2": 100, "c3": 100}
    assert received["priority"] == {"c1": 120, "c2": 60, "c3": 220}


def test_allocate_default_key_is_prorata(tmp_path: Path) -> None:
    assert json.loads(_run(tmp_path, DOC).stdout)["key"] == "prorata"


def test_allocate_errors_are_one_line(tmp_path: Path) -> None:
    bad = dict(DOC, producers={"p1": "300"})
    result = _run(tmp_path, bad)
    assert result.exit_code == 2
    assert "producers.p1: must be an integer number of Wh" in result.stderr
    assert "Traceback" not in result.output
    result = _run(tmp_path, "{not json")
    assert result.exit_code == 2 and "not valid JSON" in result.stderr
    result = runner.invoke(app, ["allocate", str(tmp_path / "missing.json")])
    assert result.exit_code == 2 and "cannot read" in result.stderr
    result = _run(tmp_path, DOC, "--key", "dynamic")
    assert result.exit_code == 2 and "key: unknown key 'dynamic'" in result.stderr
