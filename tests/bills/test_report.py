"""Board report, the accountant's ZIP (CSV + XLSX) and the DSO coefficient file."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook
from typer.testing import CliRunner

from community.bills.report import board_report, dso_rows, fund_allocation
from quartier.cli import app
from tests.bills.billsim import METERS, Month

MONTH = "2024-06"


def test_board_report_and_accountant_zip(month: Month, tmp_path: Path) -> None:
    from community.app import tables

    tables.metadata.create_all(month.engine)
    june = 1717400000
    with month.engine.begin() as conn:
        o1 = conn.execute(tables.offers.insert().values(
            member_id="erin", kind="hours", description="Bike repair", unit="HOUR", quantity=200,
            status="open", created_at=june, category="repairs")).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(tables.trades.insert().values(
            offer_id=o1, buyer="bob", seller="erin", unit="HOUR", quantity=150, pay_unit="KWH",
            pay_amount=1500, description="Bike repair", status="settled", created_at=june + 60))
        conn.execute(tables.entries.insert(), [
            {"ts": june + 60, "account": "bob", "unit": "HOUR", "amount": -150, "reason": "trade",
             "counterparty": "erin", "ref": "trade:1"},
            {"ts": june + 60, "account": "erin", "unit": "HOUR", "amount": 150, "reason": "trade",
             "counterparty": "bob", "ref": "trade:1"},
        ])
        conn.execute(tables.fund_preferences.insert(), [
            {"member_id": "alice", "shares": json.dumps({"pensions": 4000, "roads": 6000}), "ts": june},
            {"member_id": "bob", "shares": json.dumps({"pensions": 10000}), "ts": june},
        ])
        report = board_report(conn, MONTH)
    assert report["trades_by_category"]["repairs"]["trades"] == 1
    assert report["hours_by_category"] == {"repairs": 150}
    assert report["members_active"] == ["alice", "bob", "carol", "dave", "erin"]
    assert report["totals"]["community_wh"] == report["totals"]["shared_wh"] > 0
    # the fund paid the export beyond the community
    assert report["fund"]["out"]["KWH"]["export"] == report["totals"]["exported_wh"]
    assert report["fund"]["allocation_bp"] == {"pensions": 7000, "roads": 3000}

    r = CliRunner().invoke(app, ["bills", "report", "--month", MONTH, "--out", str(tmp_path),
                                 "--database-url", month.url])
    assert r.exit_code == 0, r.output
    z = zipfile.ZipFile(tmp_path / f"{MONTH}-accountant.zip")
    names = set(z.namelist())
    assert {f"{MONTH}-statements.csv", f"{MONTH}-movements.csv", f"{MONTH}-accounts.xlsx",
            f"{MONTH}-dso-coefficients.csv", f"{MONTH}-board-report.json"} <= names
    rows = list(csv.DictReader(io.StringIO(z.read(f"{MONTH}-statements.csv").decode())))
    assert sum(int(r["community_wh"]) for r in rows) == report["totals"]["community_wh"]
    wb = load_workbook(io.BytesIO(z.read(f"{MONTH}-accounts.xlsx")))
    ws = wb["statements"]
    header = [c.value for c in ws[1]]
    col = header.index("grid_wh")
    assert sum(row[col] for row in ws.iter_rows(min_row=2, values_only=True)) == report["totals"]["grid_wh"]
    assert any(r[3] == "HOUR" for r in wb["movements"].iter_rows(min_row=2, values_only=True))

    dso = list(csv.reader((tmp_path / f"{MONTH}-dso-coefficients.csv").open(), delimiter=";"))
    assert dso[0] == ["Horodate", "Identifiant_PRM", "Coefficient", "Energie_allouee_Wh",
                      "Production_partagee_Wh"]
    consumers = {mp for meters in METERS.values() for role, mp, _ in meters if role == "grid"}
    assert {r[1] for r in dso[1:]} <= consumers
    per_interval: dict[str, Decimal] = {}
    for h, _, coef, wh, pool in dso[1:]:
        per_interval[h] = per_interval.get(h, Decimal(0)) + Decimal(coef)
        assert Decimal(coef) <= Decimal(wh) / int(pool) < Decimal(coef) + Decimal("0.000001")
    assert per_interval and max(per_interval.values()) <= 1
    assert sum(int(r[3]) for r in dso[1:]) == report["totals"]["community_wh"]


@given(st.dictionaries(st.sampled_from("abcdef"),
                       st.dictionaries(st.sampled_from(["x", "y", "z"]), st.integers(0, 10_000), min_size=1),
                       min_size=1),
       st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 10**9)))
def test_fund_allocation_is_a_weighted_average(prefs: dict[str, dict[str, int]], weights: dict[str, int]) -> None:
    out = fund_allocation(prefs, weights)
    if any(sum(p.values()) for p in prefs.values()):
        assert 10_000 - len(out) <= sum(out.values()) <= 10_000
    assert all(v >= 0 for v in out.values())


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["p1", "p2"]),
                          st.sampled_from(["c1", "c2", "c3", "grid"]), st.integers(0, 5000)), max_size=30))
def test_dso_coefficients_never_sum_above_one(flows: list[tuple[int, str, str, int]]) -> None:
    rows = dso_rows([(t * 900, p, c, wh) for t, p, c, wh in flows],
                    {"c1": "100", "c2": "200", "c3": "300"})
    sums: dict[str, Decimal] = {}
    for h, _, coef, _, _ in rows:
        sums[h] = sums.get(h, Decimal(0)) + Decimal(coef)
    assert all(v <= 1 for v in sums.values())
