"""Fixtures of the gateway's tests (helpers in gw_helpers.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # gw_helpers, whatever the import mode

from gw_helpers import Procs


@pytest.fixture
def procs() -> Iterator[Procs]:
    ps = Procs()
    yield ps
    ps.stop_all()
