"""Statements as CSV, PDF (reportlab, A4, print-ready) and labelled rows for the web page.

`rows(statement, lang)` is the single list of (section, key, label, value, unit) that both
the CSV and the PDF are made of, so the two always carry the same figures. Energy values
are whole Wh in both; the PDF shows every number followed by its unit.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from community.bills import i18n
from community.bills.i18n import t
from community.bills.statement import KWH, Statement


@dataclass(frozen=True)
class Row:
    section: str
    key: str
    label: str
    value: str  # machine value: integer base units, or a decimal with a point
    unit: str
    shown: str  # the value as printed, in the reader's language


def _dec(n: int, scale: int) -> str:
    places = len(str(scale)) - 1
    return f"{Decimal(n) / scale:.{places}f}"


def rows(s: Statement, lang: str) -> list[Row]:
    out: list[Row] = []

    def energy(section: str, key: str, value: int, label: str | None = None) -> None:
        out.append(Row(section, key, label or t(lang, key), str(value), "Wh", i18n.wh(value)))

    out.append(Row("statement", "member", t(lang, "member"), s.member, "", s.name))
    out.append(Row("statement", "period", t(lang, "period"), s.month, "", s.month))
    out.append(Row("statement", "periods", t(lang, "periods"), str(s.periods), "days", str(s.periods)))
    if s.carried_periods:
        out.append(Row("statement", "carried", t(lang, "carried"), str(s.carried_periods), "days",
                       str(s.carried_periods)))
    energy("consumption", "consumed_wh", s.consumed_wh)
    energy("consumption", "community_wh", s.community_wh)
    energy("consumption", "grid_wh", s.grid_wh)
    energy("consumption", "self_consumed_wh", s.self_consumed_wh)
    energy("consumption", "total_consumption_wh", s.total_consumption_wh)
    out.append(Row("consumption", "self_sufficiency", t(lang, "self_sufficiency"),
                   _dec(s.self_sufficiency_bp, 100), "%", i18n.pct(s.self_sufficiency_bp, lang)))
    for i, src in enumerate(s.sources, 1):
        who = src.name or t(lang, "a_neighbour")
        out.append(Row("sources", f"source_{i}", who, str(src.wh), "Wh", i18n.wh(src.wh)))
        out.append(Row("sources", f"source_{i}_share", who, _dec(src.share_bp, 100), "%",
                       i18n.pct(src.share_bp, lang)))
    energy("production", "produced_wh", s.produced_wh)
    energy("production", "self_consumed_wh", s.self_consumed_wh)
    energy("production", "shared_wh", s.shared_wh)
    energy("production", "exported_wh", s.exported_wh)
    for line in s.kwh:
        energy("kwh", line.reason, line.amount, t(lang, f"kwh.{line.reason}"))
    for unit, opening, closing in s.balances:
        for key, v in (("opening", opening), ("closing", closing)):
            out.append(Row("balance", f"{unit}_{key}", f"{t(lang, 'balance')} {unit} ({t(lang, key)})",
                           str(v), _base(unit), i18n.amount(v, unit, lang)))
    for line in s.tokens:
        label = " ".join(x for x in (line.date, t(lang, f"reason.{line.reason}"), line.counterparty or "",
                                     line.memo) if x)
        out.append(Row("tokens", line.unit, label, str(line.amount), _base(line.unit),
                       i18n.amount(line.amount, line.unit, lang)))
    for unit, charged in s.demurrage:
        out.append(Row("demurrage", unit, f"{t(lang, 'demurrage')} {unit}", str(charged), _base(unit),
                       i18n.amount(charged, unit, lang)))
    for line in s.donations_given:
        energy("donations", "given", line.amount,
               t(lang, "given_to", who=line.counterparty or t(lang, "a_neighbour")))
    for line in s.donations_received:
        energy("donations", "received", line.amount,
               t(lang, "received_from", who=line.counterparty or t(lang, "a_neighbour")))
    if s.tariff_ct_kwh is not None:
        out.append(Row("tariff", "tariff_ct_kwh", t(lang, "tariff_price"), s.tariff_ct_kwh, "c€/kWh",
                       i18n.tariff(s.tariff_ct_kwh, lang)))
        for key, c in (("saved", s.saved_cents), ("grid_cost", s.grid_cost_cents),
                       ("earned", s.earned_cents)):
            assert c is not None
            out.append(Row("tariff", f"{key}_eur", t(lang, key), _dec(c, 100), "EUR", i18n.euros(c, lang)))
    return out


def _base(unit: str) -> str:
    return {"KWH": "Wh", "HOUR": "0.01 h", "KG": "g"}.get(unit, unit)


CSV_HEADER = ("section", "key", "label", "value", "unit")


def to_csv(s: Statement, lang: str, extra: Sequence[Row] = ()) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for r in [*rows(s, lang), *extra]:
        w.writerow((r.section, r.key, r.label, r.value, r.unit))
    return buf.getvalue()


# --- PDF ----------------------------------------------------------------------------------


def _styles() -> Any:
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet

    ss = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("qt", parent=ss["Title"], fontSize=18, spaceAfter=4, alignment=0),
        "h": ParagraphStyle("qh", parent=ss["Heading2"], fontSize=12, spaceBefore=10, spaceAfter=4),
        "p": ParagraphStyle("qp", parent=ss["BodyText"], fontSize=9.5, leading=12),
        "small": ParagraphStyle("qs", parent=ss["BodyText"], fontSize=7.5, leading=9),
    }


def _table(data: list[tuple[str, str]], indent: set[int] | None = None) -> Any:
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Table, TableStyle

    rows_ = [((" " * 4 if i in (indent or set()) else "") + a, b) for i, (a, b) in enumerate(data)]
    table = Table(rows_, colWidths=[120 * mm, 50 * mm], hAlign="LEFT")
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), "Helvetica", 9.5),
        ("ALIGN", (1, 0), (1, -1), "RIGHT"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    return table


def render_pdf(
    s: Statement,
    lang: str,
    *,
    run: Mapping[str, Any] | None = None,
    credit: Mapping[str, Any] | None = None,
    community: str = "Quartier",
) -> bytes:
    """The statement (or a credit note, with `credit`) as an A4 PDF in `lang`.

    `run`: {"kind": "draft"|"final", "number": n, "created_at": ms}; `credit`: {"number",
    "run_number", "reason", "delta": {field: Wh or cents}}."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    st = _styles()
    by_key = {(r.section, r.key): r for r in rows(s, lang)}
    buf = io.BytesIO()
    title = t(lang, "credit_note") if credit else t(lang, "title")
    doc = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm,
        bottomMargin=18 * mm, title=f"{title} {s.month} {s.member}", author=community,
    )
    story: list[Any] = []
    if credit:
        story.append(Paragraph(f"{title} no. {credit['number']} — {community}", st["title"]))
    else:
        story.append(Paragraph(f"{title} — {community}", st["title"]))
    head = [(t(lang, "member"), s.name), (t(lang, "period"), s.month),
            (t(lang, "periods"), str(s.periods))]
    if s.carried_periods:
        head.append((t(lang, "carried"), str(s.carried_periods)))
    if run:
        kind = t(lang, "final", n=run["number"]) if run.get("kind") == "final" else t(lang, "draft")
        head.append((t(lang, "run"), kind))
        issued = datetime.fromtimestamp(int(run["created_at"]) / 1000, UTC).strftime("%Y-%m-%d")
        head.append((t(lang, "issued"), issued))
    story.append(_table(head))

    if credit:
        story.append(Paragraph(t(lang, "corrects", n=credit["run_number"], month=s.month), st["h"]))
        story.append(Paragraph(f"{t(lang, 'reason')}: {_esc(str(credit['reason']))}", st["p"]))
        lines: list[tuple[str, str]] = [("", f"{t(lang, 'difference')} / {t(lang, 'corrected')}")]
        for f, d in credit["delta"].items():
            if f.endswith("_wh"):
                lines.append((t(lang, f), f"{d:+d} Wh / {i18n.wh(getattr(s, f))}"))
            elif f.endswith("_cents") and getattr(s, f) is not None:
                key = f.removesuffix("_cents")
                lines.append((t(lang, key), f"{i18n.euros(d, lang)} / {i18n.euros(getattr(s, f), lang)}"))
        story.append(_table(lines))

    def shown(section: str, key: str) -> str:
        return by_key[section, key].shown

    story.append(Paragraph(t(lang, "consumption"), st["h"]))
    story.append(_table([
        (t(lang, "consumed_wh"), shown("consumption", "consumed_wh")),
        (t(lang, "community_wh"), shown("consumption", "community_wh")),
        (t(lang, "grid_wh"), shown("consumption", "grid_wh")),
        (t(lang, "self_consumed_wh"), shown("consumption", "self_consumed_wh")),
        (t(lang, "total_consumption_wh"), shown("consumption", "total_consumption_wh")),
        (t(lang, "self_sufficiency"), shown("consumption", "self_sufficiency")),
    ], indent={1, 2}))

    story.append(Paragraph(t(lang, "sources"), st["h"]))
    if s.sources:
        story.append(_table([
            (src.name or t(lang, "a_neighbour"), f"{i18n.wh(src.wh)}   {i18n.pct(src.share_bp, lang)}")
            for src in s.sources
        ]))
    else:
        story.append(Paragraph(t(lang, "no_sources"), st["p"]))

    story.append(Paragraph(t(lang, "production"), st["h"]))
    story.append(_table([
        (t(lang, "produced_wh"), shown("production", "produced_wh")),
        (t(lang, "self_consumed_wh"), shown("production", "self_consumed_wh")),
        (t(lang, "shared_wh"), shown("production", "shared_wh")),
        (t(lang, "exported_wh"), shown("production", "exported_wh")),
    ], indent={1, 2, 3}))

    story.append(Paragraph(t(lang, "kwh"), st["h"]))
    kwh_rows = [(t(lang, f"kwh.{line.reason}"), i18n.wh(line.amount)) for line in s.kwh]
    for unit, opening, closing in s.balances:
        if unit == KWH:
            kwh_rows.insert(0, (f"{t(lang, 'balance')} ({t(lang, 'opening')})", i18n.wh(opening)))
            kwh_rows.append((f"{t(lang, 'balance')} ({t(lang, 'closing')})", i18n.wh(closing)))
    story.append(_table(kwh_rows, indent=set(range(1, len(kwh_rows) - 1))))

    story.append(Paragraph(t(lang, "tokens"), st["h"]))
    token_rows = [r for r in rows(s, lang) if r.section == "tokens"]
    other_balances = [(u, o, c) for u, o, c in s.balances if u != KWH]
    if token_rows or other_balances:
        story.append(_table(
            [(r.label, r.shown) for r in token_rows]
            + [(f"{t(lang, 'balance')} {u} ({t(lang, 'closing')})", i18n.amount(c, u, lang))
               for u, _, c in other_balances]
        ))
    else:
        story.append(Paragraph(t(lang, "no_tokens"), st["p"]))

    if s.demurrage:
        story.append(Paragraph(t(lang, "demurrage"), st["h"]))
        story.append(_table([(u, i18n.amount(c, u, lang)) for u, c in s.demurrage]))

    story.append(Paragraph(t(lang, "donations"), st["h"]))
    dons = [(t(lang, "given_to", who=x.counterparty or t(lang, "a_neighbour")), i18n.wh(x.amount))
            for x in s.donations_given]
    dons += [(t(lang, "received_from", who=x.counterparty or t(lang, "a_neighbour")), i18n.wh(x.amount))
             for x in s.donations_received]
    story.append(_table(dons) if dons else Paragraph(t(lang, "no_donations"), st["p"]))

    story.append(Paragraph(t(lang, "tariff"), st["h"]))
    if s.tariff_ct_kwh is not None:
        story.append(_table([
            (t(lang, "tariff_price"), shown("tariff", "tariff_ct_kwh")),
            (t(lang, "saved"), shown("tariff", "saved_eur")),
            (t(lang, "grid_cost"), shown("tariff", "grid_cost_eur")),
            (t(lang, "earned"), shown("tariff", "earned_eur")),
        ]))
    else:
        story.append(Paragraph(t(lang, "no_tariff"), st["p"]))
    story.append(Spacer(1, 8 * mm))
    story.append(Paragraph(t(lang, "footer", sha=s.sha256()[:16]), st["small"]))
    doc.build(story)
    return buf.getvalue()


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
