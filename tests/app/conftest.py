"""Fixtures of the web app's tests: the neighbourhood of appsim.py, served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from appsim import COMMUNITY, Served, _Server, free_port, seed

from community.app import AppSettings, create_app


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


@pytest.fixture
def plain_app(tmp_path: Path) -> Any:
    """The app over a seeded neighbourhood without a chain, for TestClient tests."""
    url = f"sqlite:///{tmp_path}/q.sqlite"
    seed(url, None)
    return create_app(AppSettings(database_url=url, community=COMMUNITY))
