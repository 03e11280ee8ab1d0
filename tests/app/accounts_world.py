"""A small community for the accounts tests: four members and a board login, keys in
custody, the ledger and its suite on the in-process EVM (or no chain at all)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from community import registry
from community.app import AppSettings, create_app, services
from community.app.relay import provision_member
from community.app.sessions import create_account
from community.custody import Custody
from community.db import open_db

PASSWORD = "correct horse battery"
MEMBERS = {"alice": "Alice", "bob": "Bob", "gran": "Granny Rose", "lea": "Léa"}
BOARD = "board1"


@dataclass
class World:
    url: str
    engine: sa.Engine
    app: Any
    chain: Any | None
    suite: Any | None
    custody: Custody | None

    def client(self, user: str) -> TestClient:
        c = TestClient(self.app)
        r = c.post("/api/login", json={"username": user, "password": PASSWORD})
        assert r.status_code == 200, r.text
        c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        return c

    def address(self, member: str) -> str:
        from community.app.relay import ledger_address

        with self.engine.connect() as conn:
            address = ledger_address(conn, member)
        assert address
        return address


def make_world(tmp: Path, *, with_chain: bool) -> World:
    url = f"sqlite:///{tmp}/q.sqlite"
    engine = open_db(url)
    services.init_app_tables(engine)
    chain = suite = custody = None
    if with_chain:
        from community.chain.client import ChainClient
        from community.chain.suite import deploy_suite

        chain = ChainClient()
        chain.deploy("accounts-test")
        suite = deploy_suite(chain)
        custody = Custody.from_file(tmp / "kek")
    now = int(time.time())
    with engine.begin() as conn:
        for m, name in MEMBERS.items():
            registry.add_member(conn, m, name)
            create_account(conn, m, PASSWORD, member_id=m, display_name=name, now=now)
            if custody is not None:
                provision_member(conn, custody, m, chain)
        create_account(conn, BOARD, PASSWORD, role="board", display_name="The board", now=now)
    app = create_app(AppSettings(database_url=url, community="accounts-test", chain=chain, custody=custody,
                                 suite=suite, default_lang="en"))
    return World(url, engine, app, chain, suite, custody)
