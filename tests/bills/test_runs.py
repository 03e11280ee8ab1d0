"""Billing runs over a settled month: totals to the Wh, final runs closed, credit notes,
and the PDF carrying the CSV's figures in both languages."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from community.bills import render
from community.bills.ledger import load_period, month_bounds, set_member, statement_for
from community.bills.runs import bill_month, credit_note, current_statements, run_totals
from community.bills.schema import bills_statements
from community.bills.statement import ENERGY_FIELDS, BillsError, member_statement, totals
from community.db import claims, gateways
from community.settlement import schema as settle
from quartier.cli import app
from tests.bills.billsim import DAYS, LATE_DAY, Month

MONTH = "2024-06"


def pdf_text(data: bytes, tmp: Path) -> str:
    f = tmp / "x.pdf"
    f.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(f), "-"], capture_output=True, text=True,
                          check=True).stdout


def numbers(text: str) -> set[str]:
    """The numbers of a text as the bills check reads them: digits only."""
    return {re.sub(r"\D", "", n) for n in re.findall(r"\d[\d  ,.]*\d|\d", text)}


def test_a_month_sums_to_the_community_totals_to_the_wh(month: Month, tmp_path: Path) -> None:
    result = bill_month(month.engine, None, out=tmp_path / "out")
    s = result.summary
    assert result.month == MONTH and s["periods"] == len(DAYS) and s["kind"] == "draft"
    assert s["reconciles"] is True, s["problems"]
    assert s["members"] == 5
    # per-member statements add up to the run's totals
    assert {f: s[f] for f in ENERGY_FIELDS} == {f: v for f, v in totals(result.statements).items()
                                                if f in ENERGY_FIELDS}
    assert s["community_wh"] + s["grid_wh"] == s["consumed_wh"]
    assert s["community_wh"] == s["shared_wh"] <= s["produced_wh"]

    # ... and to what settlement stored, independently summed in SQL
    start, end = month_bounds(MONTH)
    f, p = settle.settle_flows, settle.settle_periods
    with month.engine.connect() as conn:
        shared = conn.execute(sa.select(sa.func.sum(f.c.wh)).where(f.c.consumer != "grid")).scalar()
        to_grid = conn.execute(sa.select(sa.func.sum(f.c.wh)).where(f.c.consumer == "grid")).scalar()
        settled_gws = [g for (g,) in conn.execute(
            sa.select(gateways.c.address).where(gateways.c.member_id != "dave"))]
        imported = conn.execute(sa.select(sa.func.sum(claims.c.imported_wh)).where(
            claims.c.gw.in_(settled_gws), claims.c.period_start >= start, claims.c.period_start < end)).scalar()
        dave = conn.execute(sa.select(sa.func.sum(claims.c.imported_wh)).where(
            claims.c.gw.notin_(settled_gws))).scalar()
        kwh = dict(conn.execute(
            sa.select(settle.settle_entries.c.account, sa.func.sum(settle.settle_entries.c.amount))
            .join(p, p.c.period_start == settle.settle_entries.c.period_start)
            .where(settle.settle_entries.c.unit == "KWH").group_by(settle.settle_entries.c.account)).all())
    assert s["community_wh"] == shared and s["exported_wh"] == to_grid
    # erin nets 20 Wh of her own export in 8 intervals a day: imported = drawn + netted
    netted = 20 * 8 * len(DAYS)
    assert s["consumed_wh"] + netted == int(imported or 0) + int(dave or 0)
    by_member = {x.member: x for x in result.statements}
    for member, amount in kwh.items():
        if member != "fund":
            (_, opening, closing), = (b for b in by_member[member].balances if b[0] == "KWH")
            assert closing - opening == amount

    # dave was carried after his first day: billed for that day only, and told so
    assert by_member["dave"].carried_periods == len(DAYS) - 1
    assert by_member["dave"].consumed_wh == 50 * 96


def test_sources_are_named_only_with_consent_and_shares_sum_to_100(month: Month) -> None:
    start, end = month_bounds(MONTH)
    with month.engine.begin() as conn:
        set_member(conn, "alice", name_consent=True)
        data = load_period(conn, start, end)
        assert statement_for(conn, "bob", MONTH) == member_statement(data, "bob")
    bob = member_statement(data, "bob")
    assert [src.name for src in bob.sources] == ["Alice Martin", None]  # erin did not agree
    assert sum(src.share_bp for src in bob.sources) == 10_000
    assert sum(src.wh for src in bob.sources) == bob.community_wh
    carol = member_statement(data, "carol")
    assert [(d.counterparty, d.amount > 0) for d in carol.donations_received] == [("Alice Martin", True)]
    alice = member_statement(data, "alice")
    assert alice.donations_given[0].counterparty == "Carol Petit"


def test_pdf_carries_the_csv_numbers_in_french_and_english(month: Month, tmp_path: Path) -> None:
    start, end = month_bounds(MONTH)
    with month.engine.begin() as conn:
        set_member(conn, "bob", tariff_ct_kwh="25.16")
        data = load_period(conn, start, end)
    s = member_statement(data, "bob", "25.16")
    assert s.saved_cents == round(s.community_wh * 25.16 / 1000)
    fr, en = pdf_text(render.render_pdf(s, "fr"), tmp_path), pdf_text(render.render_pdf(s, "en"), tmp_path)
    assert "Relevé d'énergie" in fr and "Energy statement" in en
    rows = list(csv.reader(render.to_csv(s, "fr").splitlines()))
    energy = [r for r in rows[1:] if r[4] == "Wh"]
    assert len(energy) >= 8
    for section, key, _, value, _ in energy:
        assert f"{value} Wh" in fr and f"{value} Wh" in en, (section, key, value)
    # the same figures in both languages: every number, once decimal separators are ignored
    assert numbers(fr) - {""} == numbers(en) - {""}
    assert "25,16 c€/kWh" in fr and "25.16 c€/kWh" in en


def test_a_final_run_is_numbered_and_refuses_change(month: Month, tmp_path: Path) -> None:
    draft1 = bill_month(month.engine, MONTH, out=tmp_path / "d1")
    draft2 = bill_month(month.engine, MONTH, out=tmp_path / "d2")
    assert draft1.summary == draft2.summary  # drafts repeat
    final = bill_month(month.engine, MONTH, final=True, out=tmp_path / "f")
    assert final.number == 1 and final.summary["number"] == 1
    with pytest.raises(BillsError, match=r"closed by final run no\. 1"):
        bill_month(month.engine, MONTH, final=True)
    with pytest.raises(BillsError, match=r"closed by final run no\. 1"):
        bill_month(month.engine, MONTH)
    # an altered stored statement is detected, not served
    with month.engine.begin() as conn:
        row = conn.execute(sa.select(bills_statements).where(bills_statements.c.member_id == "bob")).one()
        doc = json.loads(row.doc)
        doc["grid_wh"] += 1
        conn.execute(bills_statements.update().where(bills_statements.c.member_id == "bob",
                                                     bills_statements.c.run_id == row.run_id)
                     .values(doc=json.dumps(doc)))
    with month.engine.connect() as conn, pytest.raises(BillsError, match="altered"):
        current_statements(conn, 1)


def test_a_credit_note_corrects_one_member_and_the_totals_follow(month: Month, tmp_path: Path) -> None:
    final = bill_month(month.engine, MONTH, final=True)
    with pytest.raises(BillsError, match="nothing to correct"):
        credit_note(month.engine, 1, "bob", "check")
    # a day of the month is settled after the month was closed
    month.settle(LATE_DAY)
    note = credit_note(month.engine, 1, "bob", "4 June settled late", out=tmp_path)
    assert note["number"] == 1 and note["run_number"] == 1
    assert note["delta"]["consumed_wh"] == 100 * 96  # bob's extra day
    with month.engine.connect() as conn:
        now = current_statements(conn, 1)
        t = run_totals(conn, 1)
    original = {s.member: s for s in final.statements}
    assert now["alice"] == original["alice"]  # the others are unchanged
    assert now["bob"].consumed_wh == original["bob"].consumed_wh + 100 * 96
    assert now["bob"].periods == len(DAYS) + 1
    for f in ENERGY_FIELDS:
        assert t[f] == sum(getattr(s, f) for s in now.values()), f
    assert t["credit_notes"] == 1
    text = pdf_text((tmp_path / "credit-00001-bob.pdf").read_bytes(), tmp_path)
    assert "Avoir no. 1" in text and "facturation n° 1" in text and "+9600 Wh" in text
    assert "corrects_run" in (tmp_path / "credit-00001-bob.csv").read_text()
    # a new final run of the closed month stays refused
    with pytest.raises(BillsError, match="closed"):
        bill_month(month.engine, MONTH, final=True)


def test_cli_run_writes_one_pdf_and_csv_per_member(month: Month, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "bills"
    r = runner.invoke(app, ["bills", "member", "erin", "--lang", "en", "--tariff", "19,5",
                            "--database-url", month.url])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["bills", "run", "--database-url", month.url, "--out", str(out)])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["reconciles"] is True and s["members"] == 5
    pdfs, csvs = sorted(out.glob("*.pdf")), sorted(out.glob("*.csv"))
    assert [p.stem for p in pdfs] == [c.stem for c in csvs] and len(pdfs) == 5
    for pdf, csv_file in zip(pdfs, csvs, strict=True):
        text = numbers(pdf_text(pdf.read_bytes(), tmp_path))
        big = {re.sub(r"\D", "", c) for row in csv.reader(csv_file.open()) for c in row
               if re.search(r"\d{3,}", c) and row[4] == "Wh"}
        assert big and big <= text, (pdf.name, big - text)
    assert "Energy statement" in pdf_text((out / "2024-06-erin.pdf").read_bytes(), tmp_path)
    r = runner.invoke(app, ["bills", "run", "--month", "2024-13", "--database-url", month.url,
                            "--out", str(out)])
    assert r.exit_code == 1 and "expected YYYY-MM" in r.output
    r = runner.invoke(app, ["bills", "run", "--final", "--database-url", month.url, "--out", str(out)])
    assert r.exit_code == 0 and json.loads(r.stdout)["number"] == 1
    r = runner.invoke(app, ["bills", "run", "--final", "--database-url", month.url, "--out", str(out)])
    assert r.exit_code == 1 and "closed by final run no. 1" in r.output
