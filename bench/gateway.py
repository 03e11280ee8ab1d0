"""CPU per reading of the gateway's whole pipeline, as a multiple of one signature.

Full path, in this process: Modbus TCP read of a SunSpec simulator (a separate process)
→ sign → outbox (SQLite WAL, synchronous=FULL, group commit) → publish to a real
Mosquitto (a separate process) → PUBACK → delete from the outbox. Measured as this
process's CPU time (all its threads: pollers, writer, paho's network thread) divided by
the readings acknowledged. The simulator and the broker run in their own processes, so
their CPU is not counted.

Sign-only, in the same run: CPU per coincurve EIP-191 signature of a reading body.

Also: resident memory of a real `quartier gateway run` polling four simulated devices.

Prints one JSON line last:
{"readings_per_s", "cpu_us_per_reading", "sign_only_cpu_us", "overhead_ratio", ...}
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.config import load  # noqa: E402
from gateway.runtime import Gateway  # noqa: E402
from quartier import reading as rd  # noqa: E402
from quartier.keys import GatewayKey, write_new  # noqa: E402
from quartier.signing import sign_personal  # noqa: E402

# Threads polling concurrently, as four devices would.
POLLERS = int(os.environ.get("BENCH_POLLERS", "4"))
READINGS = int(os.environ.get("BENCH_READINGS", "12000"))
QUARTIER = str(Path(sys.executable).with_name("quartier"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout} s")


def start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def config(tmp: Path, mqtt_port: int, sim_ports: list[int], interval: str) -> Path:
    text = (f'[gateway]\nkey = "gateway.key"\ncommunity = "bench"\noutbox = "outbox.sqlite"\n'
            f'[mqtt]\nurl = "mqtt://127.0.0.1:{mqtt_port}"\n')
    for i, p in enumerate(sim_ports):
        text += (f'[[device]]\nname = "inv{i}"\ndriver = "sunspec"\n'
                 f'url = "tcp://127.0.0.1:{p}"\nunit = 1\nrole = "production"\n'
                 f'interval = "{interval}"\n')
    path = tmp / "gw.toml"
    path.write_text(text)
    return path


def sign_only(key: GatewayKey, body: bytes, n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        sign_personal(key.private, body)
    return (time.process_time() - t0) / n * 1e6


def full_path(cfg_path: Path, key: GatewayKey, n: int) -> tuple[float, float, bytes]:
    gw = Gateway(load(cfg_path), key)
    gw.start_io()
    if not gw.publisher.connected.wait(10):
        raise SystemExit("bench: no connection to the broker")
    for p in gw.pollers:  # discovery (the SunSpec model walk) is not the steady state
        if not p.poll():
            raise SystemExit(f"bench: {p.cfg.name}: {p.state.last_error}")
    while gw.outbox.depth:
        time.sleep(0.01)
    start_seq = gw.outbox.head.seq
    per = n // len(gw.pollers)

    def loop(poller) -> None:  # type: ignore[no-untyped-def]
        for _ in range(per):
            poller.poll()

    threads = [threading.Thread(target=loop, args=(p,)) for p in gw.pollers]
    w0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while gw.outbox.depth or gw.processed < gw.submitted:
        time.sleep(0.002)
    w1, c1 = time.perf_counter(), time.process_time()
    done = gw.outbox.head.seq - start_seq
    body = bytes(gw.outbox.db.execute(
        "SELECT body FROM energy ORDER BY seq DESC LIMIT 1").fetchone()[0])
    gw.stop(flush_s=0.5)
    if done < n * 0.95:
        raise SystemExit(f"bench: only {done} of {n} polls gave a reading")
    rd.decode(body)  # a real reading body, signed below for the sign-only figure
    return done / (w1 - w0), (c1 - c0) / done * 1e6, body


def rss_four_devices(cfg_path: Path, log: Path) -> float:
    gw = start([QUARTIER, "gateway", "run", "--config", str(cfg_path)], log)
    try:
        peak = 0.0
        for _ in range(20):
            time.sleep(0.5)
            try:
                status = Path(f"/proc/{gw.pid}/status").read_text()
            except OSError:
                break
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        return peak
    finally:
        gw.terminate()
        gw.wait(10)


def main() -> None:
    if shutil.which("mosquitto") is None:
        raise SystemExit("bench: mosquitto is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="quartier-gwbench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        mp = free_port()
        (tmp / "mq.conf").write_text(f"listener {mp} 127.0.0.1\nallow_anonymous true\n"
                                     "persistence false\nmax_inflight_messages 0\n")
        procs.append(start(["mosquitto", "-c", str(tmp / "mq.conf")], tmp / "mq.log"))
        ports = [free_port() for _ in range(POLLERS)]
        for port in ports:
            procs.append(start([QUARTIER, "sim", "sunspec", "--host", "127.0.0.1", "--port",
                                str(port), "--device", "inverter"], tmp / f"sim{port}.log"))
        wait_port(mp)
        for port in ports:
            wait_port(port)
        _, key = write_new(tmp)
        cfg_path = config(tmp, mp, ports, "1s")
        rate, cpu_us, body = full_path(cfg_path, key, READINGS)
        sig_us = sign_only(key, body, 5000)
        (tmp / "outbox.sqlite").unlink()
        for suffix in ("-wal", "-shm"):
            (tmp / f"outbox.sqlite{suffix}").unlink(missing_ok=True)
        rss = rss_four_devices(cfg_path, tmp / "gw.log")
        result = {
            "readings_per_s": round(rate, 1),
            "cpu_us_per_reading": round(cpu_us, 1),
            "sign_only_cpu_us": round(sig_us, 1),
            "overhead_ratio": round(cpu_us / sig_us, 2),
            "readings": READINGS,
            "pollers": POLLERS,
            "rss_mb_four_devices": round(rss, 1),
        }
        print(json.dumps(result))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
