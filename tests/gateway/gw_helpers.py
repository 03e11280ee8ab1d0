"""Helpers for the gateway's end-to-end tests: simulators, gateway processes, an
independent subscriber (paho) and verifier (eth_account)."""
# Imported as `gw_helpers` (a name no other test directory uses); fixtures in conftest.py.

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from tests.support import free_port, wait_port

QUARTIER = str(Path(sys.executable).with_name("quartier"))


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def sim(self, tmp: Path, *extra: str) -> int:
        port = free_port()
        self.start([QUARTIER, "sim", "sunspec", "--host", "127.0.0.1", "--port", str(port),
                    *extra], tmp / f"sim-{port}.log")
        wait_port(port, 20)
        return port

    def gateway(self, config: Path) -> subprocess.Popen[bytes]:
        return self.start([QUARTIER, "gateway", "run", "--config", str(config)],
                          config.with_name("gateway.log"))

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)


def write_config(tmp: Path, broker_url: str, devices: list[dict[str, object]],
                 extra: str = "") -> Path:
    if not (tmp / "gateway.key").exists():
        subprocess.run([QUARTIER, "keys", "new", "--out", str(tmp)], check=True,
                       capture_output=True)
    text = (f'[gateway]\nkey = "gateway.key"\ncommunity = "demo"\noutbox = "outbox.sqlite"\n'
            f'status_interval = "500ms"\n\n[mqtt]\nurl = "{broker_url}"\n' + extra)
    for d in devices:
        text += "\n[[device]]\n" + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in d.items())
    path = tmp / "gw.toml"
    path.write_text(text)
    return path


class Subscriber:
    """An independent MQTT client with a persistent session, recording payloads in order."""

    def __init__(self, port: int, topic: str = "quartier/demo/+/reading") -> None:
        import paho.mqtt.client as mqtt

        self.payloads: list[bytes] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"test-sub-{port}-{topic.rsplit('/', 1)[-1]}",
                                  clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: object, userdata: object, msg: object) -> None:
        with self.lock:
            self.payloads.append(msg.payload)  # type: ignore[attr-defined]

    def readings(self) -> list[dict[str, object]]:
        with self.lock:
            envs = [json.loads(p) for p in self.payloads]
        return [json.loads(e["r"]) for e in envs]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def verify_stream(payloads: list[bytes]) -> list[int]:
    """Check every signature with eth_account and the prev chain over distinct seqs;
    return the seqs in order of first arrival."""
    by_seq: dict[int, bytes] = {}
    first_arrival: list[int] = []
    for p in payloads:
        env = json.loads(p)
        body = env["r"].encode()
        b = json.loads(body)
        signer = Account.recover_message(encode_defunct(primitive=body), signature=env["sig"])
        assert signer == b["gw"], f"bad signature at seq {b['seq']}"
        if b["seq"] in by_seq:
            assert by_seq[b["seq"]] == body, f"two different readings with seq {b['seq']}"
        else:
            by_seq[b["seq"]] = body
            first_arrival.append(b["seq"])
    seqs = sorted(by_seq)
    missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
    assert not missing, f"seqs lost: {missing[:20]}"
    for a, b2 in itertools.pairwise(seqs):
        assert json.loads(by_seq[b2])["prev"] == keccak(by_seq[a]).hex().removeprefix("0x"), (
            f"prev chain broken at seq {b2}")
    return first_arrival


class Mosquitto:
    """A Mosquitto on a free port that can be stopped and started again on the same port;
    with persistence, so that subscribers' sessions survive a restart."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        store = tmp / f"mosquitto-{self.port}"
        store.mkdir()
        self.conf = tmp / f"mosquitto-{self.port}.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {store}/\npersistence_file mosquitto.db\n"
            "max_queued_messages 1000000\n"
            # Started as root, mosquitto drops to its own user, which may not write here.
            + ("user root\n" if os.geteuid() == 0 else ""))
        self.log = tmp / f"mosquitto-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(self.conf)],
                                        stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
