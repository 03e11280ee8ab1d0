"""Fixtures of the billing tests: a settled month (built once), copied for each test."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from community.db import open_db
from tests.bills.billsim import Month, build_month


@pytest.fixture(scope="session")
def _settled_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Month]:
    path = tmp_path_factory.mktemp("bills-template") / "q.sqlite"
    return path, build_month(path)


@pytest.fixture
def month(_settled_template: tuple[Path, Month], tmp_path: Path) -> Month:
    """A fresh copy of the settled month (same chain: later settlements go on it too)."""
    src, tmpl = _settled_template
    dst = tmp_path / "q.sqlite"
    with closing(sqlite3.connect(src)) as a, closing(sqlite3.connect(dst)) as b:
        a.backup(b)  # consistent with the WAL, unlike a file copy
    url = f"sqlite:///{dst}"
    return Month(url, open_db(url), tmpl.chain)
