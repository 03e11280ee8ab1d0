"""Never lose a reading: kill -9 at random moments, a broker outage, failing devices.

Real Mosquitto, real simulators over TCP, the real `quartier gateway run` process; the
readings are checked by an independent subscriber (paho) and verifier (eth_account).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gw_helpers import (
    QUARTIER,
    Mosquitto,
    Procs,
    Subscriber,
    free_port,
    verify_stream,
    write_config,
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path)
    yield b
    b.stop()


def inverter(port: int, name: str = "inverter", interval: str = "200ms") -> dict[str, object]:
    return {"name": name, "driver": "sunspec", "url": f"tcp://127.0.0.1:{port}", "unit": 1,
            "role": "production", "interval": interval, "timeout": "500ms"}


def wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def status(config: Path) -> dict:  # type: ignore[type-arg]
    out = subprocess.run([QUARTIER, "gateway", "status", "--config", str(config)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path, broker: Mosquitto,
                                                procs: Procs) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rnd = random.Random(seed)
    sim = procs.sim(tmp_path, "--speed", "60")
    config = write_config(tmp_path, broker.url, [inverter(sim, interval="100ms")])
    sub = Subscriber(broker.port)
    try:
        gw = procs.gateway(config)
        time.sleep(2.0)
        for _ in range(5):
            time.sleep(rnd.uniform(0.2, 1.5))
            os.kill(gw.pid, signal.SIGKILL)
            gw.wait(5)
            gw = procs.gateway(config)
        time.sleep(2.0)
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(15) == 0
        last = status(config)["last_seq"]
        wait_for(lambda: any(r["seq"] == last for r in sub.readings()), 10, f"seq {last}")
    finally:
        sub.stop()
    arrival = verify_stream(sub.payloads)
    assert len(arrival) >= 20, f"only {len(arrival)} readings (seed {seed})"
    assert max(arrival) == last and status(config)["outbox_depth"] == 0


def test_broker_outage_loses_nothing_and_keeps_order(tmp_path: Path, broker: Mosquitto,
                                                     procs: Procs) -> None:
    sim = procs.sim(tmp_path, "--speed", "60")
    config = write_config(tmp_path, broker.url, [inverter(sim)],
                          extra='reconnect_min = "1s"\nreconnect_max = "2s"\n')
    sub = Subscriber(broker.port)
    gw = procs.gateway(config)
    try:
        wait_for(lambda: len(sub.readings()) >= 5, 20, "first readings")
        broker.stop()
        time.sleep(1.0)
        during = status(config)
        time.sleep(2.0)
        st = status(config)
        assert st["outbox_depth"] > 0 and not st["broker"]["connected"]  # kept, not lost
        assert st["last_seq"] > during["last_seq"]  # still polling and signing
        broker.start()
        wait_for(lambda: status(config)["broker"]["connected"], 20, "reconnection")
        time.sleep(1.0)
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(15) == 0
        last = status(config)["last_seq"]
        wait_for(lambda: any(r["seq"] == last for r in sub.readings()), 15, f"seq {last}")
    finally:
        sub.stop()
    arrival = verify_stream(sub.payloads)
    assert arrival == sorted(arrival), "readings arrived out of order"
    assert arrival[-1] == last


class _BadDevice:
    """A TCP peer that answers Modbus requests with garbage, or never answers."""

    def __init__(self, garbage: bool) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.garbage = garbage
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        try:
            while conn.recv(260):
                if self.garbage:
                    conn.sendall(b"\x00\x01\xde\xad\xbe\xef garbage \xff" * 3)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_failing_devices_do_not_stop_the_others(tmp_path: Path, broker: Mosquitto,
                                                procs: Procs) -> None:
    sim = procs.sim(tmp_path, "--speed", "60")
    garbage, silent = _BadDevice(garbage=True), _BadDevice(garbage=False)
    dead = free_port()  # nothing listens there
    config = write_config(tmp_path, broker.url, [
        inverter(sim, "good", interval="200ms"),
        inverter(garbage.port, "garbage", interval="200ms"),
        inverter(silent.port, "silent", interval="200ms"),
        inverter(dead, "dead", interval="200ms"),
    ])
    sub = Subscriber(broker.port)
    gw = procs.gateway(config)
    def settled() -> bool:
        devs = status(config)["devices"]
        good = [r for r in sub.readings() if r["dev"] == "good"]
        return len(good) >= 15 and all(
            devs[n]["failures"] >= 2 and devs[n]["backoff_s"] > 0
            for n in ("garbage", "silent", "dead"))

    try:
        wait_for(settled, 60, "good readings and failures of the others")
        st = status(config)
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(15)
        sub.stop()
        garbage.close()
        silent.close()
    devs = st["devices"]
    # the good device kept its pace while the others failed and backed off
    assert devs["good"]["polls"] >= 15, devs["good"]
    assert devs["good"]["state"] == "ok" and devs["good"]["errors"] == {}
    # the driver's own counters: every answer of the good inverter was ok, the silent one
    # only timed out, and the garbage one gave nothing that decoded
    assert devs["good"]["counters"]["ok"] >= devs["good"]["readings"]
    assert devs["good"]["counters"]["timeout"] == 0
    assert devs["silent"]["counters"]["ok"] == 0 and devs["silent"]["counters"]["timeout"] >= 1
    assert devs["garbage"]["counters"]["ok"] == 0
    for name in ("garbage", "silent", "dead"):
        d = devs[name]
        assert d["state"] == "failing" and d["readings"] == 0, (name, d)
        assert d["failures"] >= 2 and d["last_error"], (name, d)
        assert d["backoff_s"] > 0, (name, d)  # backing off, not hammering
    assert "timeout" in devs["silent"]["errors"], devs["silent"]
    assert "connection" in devs["dead"]["errors"], devs["dead"]
    assert {r["dev"] for r in sub.readings()} == {"good"}
    verify_stream(sub.payloads)


def test_once_flushes_and_says_why_it_could_not(tmp_path: Path, broker: Mosquitto,
                                                procs: Procs) -> None:
    sim = procs.sim(tmp_path)
    config = write_config(tmp_path, broker.url, [{**inverter(sim), "timeout": "5s"}])
    run = subprocess.run([QUARTIER, "gateway", "run", "--config", str(config), "--once"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == {"last_seq": 1, "outbox_depth": 0,
                                                       "problems": []}
    broker.stop()
    run = subprocess.run([QUARTIER, "gateway", "run", "--config", str(config), "--once",
                          "--timeout", "2"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "outbox not flushed" in run.stderr and "1 reading(s) left" in run.stderr
    assert status(config)["outbox_depth"] == 1  # kept for the next run
