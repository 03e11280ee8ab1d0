"""Fixtures shared by the whole suite: real servers on free ports, stopped afterwards."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port, mosquitto_binary, wait_port

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Broker:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    conf: Path

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def start(self) -> None:
        """(Re)start on the same port, e.g. after stop() in an outage test."""
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)


def start_mosquitto(tmp: Path, persistence: bool = False) -> Broker:
    port = free_port()
    conf = tmp / f"mosquitto-{port}.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true",
             f"persistence {'true' if persistence else 'false'}",
             "max_queued_messages 1000000", "max_inflight_messages 100"]
    if persistence:
        lines += [f"persistence_location {tmp}/", f"persistence_file mosquitto-{port}.db"]
    conf.write_text("\n".join(lines) + "\n")
    broker = Broker("127.0.0.1", port, None, conf)  # type: ignore[arg-type]
    broker.start()
    return broker


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on a free port, for this test only."""
    broker = start_mosquitto(tmp_path)
    yield broker
    broker.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on 127.0.0.1:5432 (trust auth), dropped afterwards."""
    import sqlalchemy as sa

    admin_url = os.environ.get("QUARTIER_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    name = f"quartier_test_{os.getpid()}_{free_port()}"
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is needed on 127.0.0.1:5432 with trust auth ({exc.orig}); "
                    "start it with: pg_ctlcluster 15 main start")
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
