"""Billing: monthly statements (PDF, CSV), billing runs and credit notes, board reports,
the DSO allocation-coefficient file and the weekly digest e-mail. See docs/bills.md.

Functions the web app can call (each takes an open SQLAlchemy connection):
- `ledger.statement_for(conn, member, "YYYY-MM")`: a member's statement of a month; for any
  period, `ledger.load_period(conn, start, end)` then `statement.member_statement(data,
  member, tariff)`; `render.rows(statement, lang)` gives
  labelled rows, `render.render_pdf(statement, lang)` the PDF bytes, `render.to_csv` the CSV;
- `ledger.month_bounds("YYYY-MM")`, `ledger.settings(conn)`, `ledger.set_member(...)`,
  `ledger.unsubscribe(conn, token)` (the digest's unsubscribe link);
- `runs.current_statements(conn, number)`: a final run's statements with credit notes.
"""
