"""A meter sending nothing but bad checksums, ten frames a second: the gateway counts
every one exactly, keeps running, and logs the error class once, not once per frame."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gw_helpers import QUARTIER, Mosquitto, Procs, write_config
from test_durability import status, wait_for


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path)
    yield b
    b.stop()


def test_bad_checksums_are_counted_not_flooded(tmp_path: Path, broker: Mosquitto,
                                              procs: Procs) -> None:
    frames = 120  # 12 s at 10 frames a second
    sim = subprocess.Popen(
        [QUARTIER, "sim", "tic", "--mode", "historique", "--pty", "--interval", "0.1",
         "--bad-checksum-rate", "1.0", "--count", str(frames)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert sim.stdout is not None
        pty = sim.stdout.readline().strip()
        config = write_config(tmp_path, broker.url, [
            {"name": "linky", "driver": "tic", "port": pty, "mode": "historique",
             "role": "grid", "interval": "200ms"},
        ])
        gw = procs.gateway(config)
        sim.wait(60)  # every frame written
        time.sleep(1.0)

        def counted() -> bool:
            c = status(config)["devices"]["linky"].get("counters", {})
            return c.get("checksum", 0) + c.get("frame", 0) >= frames * 0.9

        wait_for(counted, 30, "the gateway to count the frames")
        st = status(config)["devices"]["linky"]
        gw.send_signal(signal.SIGTERM)
        gw.wait(15)
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait(10)
    c = st["counters"]
    # nothing good came, and (almost) every bad frame was counted as what it was: frames
    # written before the gateway opened the pty may be lost by the kernel, never miscounted
    assert c.get("ok", 0) == 0 and st["readings"] == 0
    assert frames * 0.9 <= c["checksum"] <= frames and c.get("frame", 0) <= 2
    assert st["state"] == "failing" and st["errors"].get("checksum", 0) >= 1
    log = config.with_name("gateway.log").read_text()
    flood = [line for line in log.splitlines()
             if "event=device_error" in line and "kind=checksum" in line]
    # one line for the first error; the next one no earlier than a minute later
    assert len(flood) == 1, flood
