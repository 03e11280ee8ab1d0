"""Fixtures of the gateway's tests (helpers in gw_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gw_helpers import Procs


@pytest.fixture
def procs() -> Iterator[Procs]:
    ps = Procs()
    yield ps
    ps.stop_all()
