"""Fixtures of the web app's tests: the neighbourhood of appsim.py, served."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from community.app import AppSettings, create_app

from .appsim import COMMUNITY, Served, _Server, free_port, seed


@pytest.fixture(scope="session")
def neighbourhood(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The seeded neighbourhood, settled on chain, served on a free port."""
    from community.chain.client import ChainClient

    url = f"sqlite:///{tmp_path_factory.mktemp('app')}/q.sqlite"
    chain = ChainClient()
    chain.deploy(COMMUNITY)
    homes = seed(url, chain)
    app = create_app(AppSettings(database_url=url, community=COMMUNITY, chain=chain))
    port = free_port()
    with _Server(app, port):
        yield Served(f"http://127.0.0.1:{port}", url, homes, chain, app.state.engine)


@pytest.fixture(scope="session")
def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The neighbourhood without a chain, seeded once; tests work on copies."""
    path = tmp_path_factory.mktemp("seeded") / "q.sqlite"
    seed(f"sqlite:///{path}", None)
    return path


@pytest.fixture
def plain_app(tmp_path: Path, seeded_file: Path) -> Any:
    """The app over a fresh copy of the seeded neighbourhood (no chain), for TestClient tests."""
    for suffix in ("", "-wal", "-shm"):
        source = seeded_file.with_name(seeded_file.name + suffix)
        if source.exists():
            shutil.copy(source, tmp_path / f"q.sqlite{suffix}")
    return create_app(AppSettings(database_url=f"sqlite:///{tmp_path}/q.sqlite", community=COMMUNITY))
