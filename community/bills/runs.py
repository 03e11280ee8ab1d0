"""Billing runs and credit notes (SQL and files): the board's side of statements.

- A draft run of a month can be repeated: each replaces the month's previous draft.
- A final run is numbered (1, 2, 3... across months) and closes its month: its statements
  are stored with their SHA-256 and never rewritten; another run of that month, draft or
  final, is refused. A final run is refused unless every figure reconciles with the ledger.
- A correction is a credit note: numbered, referencing the final run and the member, it
  stores the corrected statement (recomputed from what is settled now, with the member's
  current settings) and the difference per figure. The run's totals are its original
  totals plus the differences of its credit notes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from community.bills import render
from community.bills.ledger import last_settled_month, load_period, month_bounds, settings
from community.bills.schema import bills_credit_notes, bills_runs, bills_statements
from community.bills.statement import (
    ENERGY_FIELDS,
    MONEY_FIELDS,
    BillsError,
    Statement,
    member_statement,
    reconcile,
    statements,
    totals,
)


@dataclass(frozen=True)
class RunResult:
    run_id: int
    kind: str
    number: int | None
    month: str
    summary: dict[str, Any]
    statements: tuple[Statement, ...]
    files: tuple[Path, ...] = field(default_factory=tuple)


def safe_name(member: str) -> str:
    """A member id as a file name part (ids are free text in the registry)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", member)[:80] or "_"


def _final_of(conn: Connection, month: str) -> Any:
    return conn.execute(
        sa.select(bills_runs).where(bills_runs.c.month == month, bills_runs.c.kind == "final")
    ).first()


def summarise(stmts: Sequence[Statement], problems: Sequence[str]) -> dict[str, Any]:
    s = totals(stmts)
    money = {f: sum(getattr(x, f) or 0 for x in stmts) for f in MONEY_FIELDS}
    return {
        "members": s["members"],
        **{f: s[f] for f in ENERGY_FIELDS},
        **money,
        "reconciles": not problems,
        "problems": list(problems),
    }


def bill_month(
    engine: Engine,
    month: str | None = None,
    *,
    final: bool = False,
    out: Path | None = None,
    now_ms: int | None = None,
) -> RunResult:
    """Run the billing of `month` (default: the last month with settled data)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    with engine.begin() as conn:
        if month is None:
            month = last_settled_month(conn)
            if month is None:
                raise BillsError("no settled period yet: settle a day first (quartier settle)")
        start, end = month_bounds(month)
        closed = _final_of(conn, month)
        if closed is not None:
            raise BillsError(
                f"{month} is closed by final run no. {closed.number}: correct a statement with "
                f"`quartier bills credit --run {closed.number} --member ID --reason TEXT`"
            )
        data = load_period(conn, start, end)
        cfg = settings(conn)
        stmts = statements(data, {m: c.tariff_ct_kwh for m, c in cfg.items()})
        problems = reconcile(data, stmts)
        if final and not data.periods:
            raise BillsError(f"no settled period in {month}: nothing to close")
        if final and problems:
            raise BillsError(f"final run of {month} refused: {problems[0]} "
                             f"({len(problems)} problem(s); see a draft run's summary.json)")
        summary = {"month": month, "kind": "final" if final else "draft", "number": None,
                   "periods": len(data.periods), **summarise(stmts, problems)}
        number = None
        if final:
            last = conn.execute(sa.select(sa.func.max(bills_runs.c.number))).scalar()
            number = int(last or 0) + 1
            summary["number"] = number
        # A new draft replaces the month's draft; the final run supersedes it.
        old = [r.id for r in conn.execute(sa.select(bills_runs.c.id).where(
            bills_runs.c.month == month, bills_runs.c.kind == "draft"))]
        if old:
            conn.execute(bills_statements.delete().where(bills_statements.c.run_id.in_(old)))
            conn.execute(bills_runs.delete().where(bills_runs.c.id.in_(old)))
        key = conn.execute(bills_runs.insert().values(
            month=month, kind=summary["kind"], number=number, created_at=now_ms,
            periods=json.dumps(list(data.periods)), summary=json.dumps(summary, sort_keys=True),
        )).inserted_primary_key
        assert key is not None
        run_id = int(key[0])
        if stmts:
            conn.execute(bills_statements.insert(), [
                {"run_id": run_id, "member_id": s.member, "doc": s.canonical(), "sha256": s.sha256()}
                for s in stmts
            ])
    run = {"kind": summary["kind"], "number": number, "created_at": now_ms}
    files: list[Path] = []
    if out is not None:
        files = write_statements(out, stmts, {m: c.lang for m, c in cfg.items()}, run)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return RunResult(run_id, summary["kind"], number, month, summary, tuple(stmts), tuple(files))


def write_statements(
    out: Path, stmts: Sequence[Statement], langs: Mapping[str, str], run: Mapping[str, Any]
) -> list[Path]:
    """One PDF and one CSV per statement, named `<month>-<member>` so that they sort
    together, each in the member's language."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for s in stmts:
        lang = langs.get(s.member, "fr")
        stem = out / f"{s.month}-{safe_name(s.member)}"
        pdf, csv_ = stem.with_suffix(".pdf"), stem.with_suffix(".csv")
        pdf.write_bytes(render.render_pdf(s, lang, run=run))
        csv_.write_text(render.to_csv(s, lang), encoding="utf-8")
        files += [pdf, csv_]
    return files


# --- reading runs back ---------------------------------------------------------------------


def run_by_number(conn: Connection, number: int) -> Any:
    row = conn.execute(sa.select(bills_runs).where(bills_runs.c.number == number)).first()
    if row is None:
        raise BillsError(f"no final billing run no. {number} (see `quartier bills runs`)")
    return row


def stored_statements(conn: Connection, run_id: int) -> dict[str, Statement]:
    """The statements of a run as issued, after checking each one's fingerprint."""
    out = {}
    for r in conn.execute(sa.select(bills_statements).where(bills_statements.c.run_id == run_id)):
        s = Statement.from_json(json.loads(r.doc))
        if s.sha256() != r.sha256:
            raise BillsError(f"statement of {r.member_id} in run {run_id} was altered after issue")
        out[r.member_id] = s
    return out


def current_statements(conn: Connection, number: int) -> dict[str, Statement]:
    """A final run's statements with every credit note applied (the latest one wins)."""
    run = run_by_number(conn, number)
    current = stored_statements(conn, run.id)
    notes = conn.execute(
        sa.select(bills_credit_notes).where(bills_credit_notes.c.run_id == run.id)
        .order_by(bills_credit_notes.c.number)
    )
    for n in notes:
        current[n.member_id] = Statement.from_json(json.loads(n.doc))
    return current


def run_totals(conn: Connection, number: int) -> dict[str, Any]:
    """The run's totals as issued plus every credit note's differences."""
    run = run_by_number(conn, number)
    summary = json.loads(run.summary)
    out = {k: summary[k] for k in ("members", *ENERGY_FIELDS, *MONEY_FIELDS)}
    notes = conn.execute(sa.select(bills_credit_notes.c.delta).where(bills_credit_notes.c.run_id == run.id))
    for (delta,) in notes:
        for k, v in json.loads(delta).items():
            out[k] = out.get(k, 0) + v
    out["credit_notes"] = conn.execute(
        sa.select(sa.func.count()).where(bills_credit_notes.c.run_id == run.id)).scalar()
    return out


def list_runs(conn: Connection) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "month": r.month, "kind": r.kind, "number": r.number,
         "created_at": r.created_at, **{k: v for k, v in json.loads(r.summary).items()
                                        if k in ("members", "consumed_wh", "reconciles")}}
        for r in conn.execute(sa.select(bills_runs).order_by(bills_runs.c.id))
    ]


# --- credit notes ---------------------------------------------------------------------------


def credit_note(
    engine: Engine,
    number: int,
    member: str,
    reason: str,
    *,
    out: Path | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """Correct `member`'s statement of final run `number`: recompute it from the settled
    data and settings of now, store the difference as a numbered credit note."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not reason.strip():
        raise BillsError("a credit note needs a reason (--reason)")
    with engine.begin() as conn:
        run = run_by_number(conn, number)
        previous = current_statements(conn, number).get(member)
        if previous is None:
            raise BillsError(f"member {member!r} has no statement in final run no. {number}")
        start, end = month_bounds(run.month)
        data = load_period(conn, start, end)
        cfg = settings(conn).get(member)
        corrected = member_statement(data, member, cfg.tariff_ct_kwh if cfg else None)
        problems = [p for p in reconcile(data, [corrected]) if p.startswith(f"{member}:")]
        if problems:
            raise BillsError(f"credit note refused: {problems[0]}")
        delta = {
            f: (getattr(corrected, f) or 0) - (getattr(previous, f) or 0)
            for f in (*ENERGY_FIELDS, *MONEY_FIELDS)
        }
        delta = {f: d for f, d in delta.items() if d}
        if corrected.canonical() == previous.canonical():
            raise BillsError(f"nothing to correct: {member}'s statement of run no. {number} "
                             "matches the ledger and settings of today")
        last = conn.execute(sa.select(sa.func.max(bills_credit_notes.c.number))).scalar()
        note_number = int(last or 0) + 1
        conn.execute(bills_credit_notes.insert().values(
            number=note_number, run_id=run.id, member_id=member, created_at=now_ms,
            reason=reason.strip(), delta=json.dumps(delta, sort_keys=True),
            doc=corrected.canonical(), sha256=corrected.sha256(),
        ))
        lang = cfg.lang if cfg else "fr"
    note = {"number": note_number, "run_number": number, "member": member, "reason": reason.strip(),
            "delta": delta, "created_at": now_ms}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"credit-{note_number:05d}-{safe_name(member)}"
        stem.with_suffix(".pdf").write_bytes(render.render_pdf(
            corrected, lang, credit=note, run={"kind": "final", "number": number, "created_at": now_ms}))
        extra = [render.Row("credit", f"delta_{f}", f, str(d), "Wh" if f.endswith("_wh") else "cents",
                            str(d)) for f, d in delta.items()]
        extra.insert(0, render.Row("credit", "corrects_run", "run", str(number), "", str(number)))
        stem.with_suffix(".csv").write_text(render.to_csv(corrected, lang, extra), encoding="utf-8")
        note["files"] = [str(stem.with_suffix(".pdf")), str(stem.with_suffix(".csv"))]
    return note
