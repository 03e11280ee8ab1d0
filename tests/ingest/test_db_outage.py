"""Ingest rides out a PostgreSQL outage: the connection to the database is cut (a TCP relay
in front of the real server drops every connection and refuses new ones) while readings
keep arriving; once it is back, every reading is stored once, none quarantined."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

from community.db import open_db
from community.ingest import store
from tests.ingest.ingest_helpers import Gw, enrol, prime_session, publish, wait_for
from tests.ingest.test_mqtt import _count, _readings_for, _start_worker, _stop, _write_config
from tests.support import free_port

PG = ("127.0.0.1", 5432)


class Relay:
    """A TCP relay to PostgreSQL that can be cut (every connection dropped, the port
    closed) and restored on the same port: a database host gone from the network."""

    def __init__(self) -> None:
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self._server = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def cut(self) -> None:
        assert self._server is not None
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it
        self._server.close()
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(PG)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def test_ingest_rides_out_a_database_outage(mosquitto, postgres_url: str, tmp_path: Path) -> None:
    engine = open_db(postgres_url)
    gws = [Gw(40 + i) for i in range(4)]
    enrol(engine, gws)
    first, second = _readings_for(gws, 0, 50), _readings_for(gws, 50, 50)
    relay = Relay()
    through_relay = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}")
    cfg = _write_config(tmp_path, "ingest-outage", mosquitto.url, through_relay)
    prime_session(mosquitto.port, "ingest-outage")
    worker = _start_worker(cfg)
    try:
        publish(mosquitto.port, first)
        wait_for(lambda: _count(engine) == len(first), 60, "the first part stored")
        relay.cut()
        # Readings arriving after the registry's refresh time (10 s) into the outage: the
        # worker must not judge them without its registry, nor lose the ones it holds.
        time.sleep(11)
        publish(mosquitto.port, second, "pub-2")
        time.sleep(2)
        assert _count(engine) == len(first)
        assert worker.poll() is None, "ingest exited during the outage"
        relay.restore()
        wait_for(lambda: _count(engine) == len(first) + len(second), 90, "every reading stored")
    finally:
        err = _stop(worker)
        relay.cut()
    with engine.connect() as conn:
        st = store.stats(conn)
    assert st["accepted"] == len(first) + len(second), (st, err[-2000:])
    assert st["quarantined"] == 0 and st["gaps"] == 0 and st["duplicates"] >= 0, st
    assert "could not store a batch" in err or "retrying" in err  # the outage was seen and ridden out
    engine.dispose()
