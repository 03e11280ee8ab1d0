"""The shipped broker config, for real: Mosquitto with deploy/mosquitto/quartier.conf and
acl, certificates from `quartier ca`, clients speaking paho-mqtt 2 over TLS."""

from __future__ import annotations

import json
import os
import queue
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from quartier.cli import app
from quartier.keys import GatewayKey
from tests.support import free_port, mosquitto_binary, wait_port

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
WAIT_S = 15.0  # an upper bound on waiting for an event, never a measured duration


def quartier(*args: str) -> dict[str, object]:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass
class Pki:
    root: Path
    ca_dir: Path
    gateways: dict[str, Path] = field(default_factory=dict)  # address -> bundle dir

    def bundle(self, name: str) -> Path:
        return self.root / name


@dataclass
class TlsBroker:
    port: int
    process: subprocess.Popen[bytes]
    log: Path


def render_conf(dest: Path, port: int, certs: Path) -> Path:
    """The shipped config with its paths pointed at `certs` and its listener at `port`."""
    text = (REPO / "deploy/mosquitto/quartier.conf").read_text()
    assert "listener 8883\n" in text
    text = text.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
    text = text.replace("/etc/mosquitto/quartier/", f"{certs}/")
    # Run as whoever runs the tests (as root, Mosquitto would otherwise switch to the
    # `mosquitto` user, who cannot read the test's 0600 keys).
    text += f"\nuser {'root' if os.geteuid() == 0 else os.environ.get('USER', 'nobody')}\n"
    text += f"log_dest file {dest / 'mosquitto.log'}\nlog_type all\npersistence false\n"
    conf = dest / "mosquitto.conf"
    conf.write_text(text)
    return conf


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    p = Pki(root, root / "ca")
    quartier("ca", "init", "--dir", str(p.ca_dir), "--community", "demo")
    quartier("ca", "issue-server", "--dir", str(p.ca_dir), "--host", "localhost",
             "--host", "127.0.0.1", "--out", str(root / "broker"))
    quartier("ca", "issue-client", "--dir", str(p.ca_dir), "--name", "quartier-ingest",
             "--out", str(root / "ingest"))
    quartier("ca", "issue-client", "--dir", str(p.ca_dir), "--name", "quartier-server",
             "--out", str(root / "server"))
    for label in ("a", "b", "revoked"):
        address = GatewayKey.generate().address
        quartier("ca", "issue-gateway", "--dir", str(p.ca_dir), "--address", address,
                 "--out", str(root / label))
        p.gateways[label] = root / label
        (root / label / "address").write_text(address)
    quartier("ca", "revoke", "--dir", str(p.ca_dir), (root / "revoked/address").read_text())
    # A certificate for gateway A's address from a CA the broker does not trust.
    quartier("ca", "init", "--dir", str(root / "rogue-ca"), "--community", "demo")
    quartier("ca", "issue-gateway", "--dir", str(root / "rogue-ca"), "--address",
             (root / "a/address").read_text(), "--out", str(root / "rogue"))
    # What install-server.sh puts in /etc/mosquitto/quartier/.
    certs = root / "etc-mosquitto-quartier"
    certs.mkdir()
    for src, dst in (("broker/server.crt", "server.crt"), ("broker/server.key", "server.key"),
                     ("ca/ca.crt", "ca.crt"), ("ca/crl.pem", "crl.pem")):
        (certs / dst).write_bytes((root / src).read_bytes())
    (certs / "acl").write_text((REPO / "deploy/mosquitto/acl").read_text())
    return p


@pytest.fixture(scope="module")
def broker(pki: Pki) -> Iterator[TlsBroker]:
    port = free_port()
    conf = render_conf(pki.root, port, pki.root / "etc-mosquitto-quartier")
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port)
    except TimeoutError:
        proc.kill()
        _, err = proc.communicate()
        log = (pki.root / "mosquitto.log")
        pytest.fail(f"mosquitto did not start: {err.decode()} "
                    f"{log.read_text() if log.exists() else ''}")
    yield TlsBroker(port, proc, pki.root / "mosquitto.log")
    proc.terminate()
    proc.wait(10)


class Client:
    """A paho client whose connection outcome and messages arrive on queues."""

    def __init__(self, broker: TlsBroker, ca: Path, bundle: Path | None, stem: str = "gateway"):
        self.events: queue.Queue[tuple[str, object]] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.subscribed = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
        cert = str(bundle / f"{stem}.crt") if bundle else None
        key = str(bundle / f"{stem}.key") if bundle else None
        self.c.tls_set(ca_certs=str(ca), certfile=cert, keyfile=key,
                       cert_reqs=ssl.CERT_REQUIRED)
        self.c.on_connect = lambda c, u, f, rc, p: self.events.put(("connect", rc))
        self.c.on_disconnect = lambda c, u, f, rc, p: self.events.put(("disconnect", rc))
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.granted: list[mqtt.ReasonCode] = []
        self.c.on_subscribe = self._on_subscribe
        self.broker = broker

    def _on_subscribe(self, c: mqtt.Client, u: object, mid: int,
                      codes: list[mqtt.ReasonCode], p: object) -> None:
        self.granted = list(codes)
        self.subscribed.set()

    def connect(self) -> bool:
        """True when the broker accepted the session, False when it refused the client."""
        try:
            self.c.connect("127.0.0.1", self.broker.port, keepalive=30)
        except (ssl.SSLError, OSError):
            return False  # refused during the TLS handshake (TLS 1.2)
        self.c.loop_start()
        kind, rc = self.events.get(timeout=WAIT_S)
        # With TLS 1.3 the client finishes its side of the handshake first and learns of
        # the refusal when the broker's alert closes the connection.
        return kind == "connect" and not getattr(rc, "is_failure", True)

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT_S)  # PUBACK: Mosquitto acks even a publish it drops

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def address(pki: Pki, label: str) -> str:
    return (pki.gateways[label] / "address").read_text()


@pytest.fixture
def ingest(broker: TlsBroker, pki: Pki) -> Iterator[Client]:
    """The ingest service, on a shared subscription as several ingest processes would be."""
    client = Client(broker, pki.ca_dir / "ca.crt", pki.bundle("ingest"), "quartier-ingest")
    assert client.connect()
    client.c.subscribe("$share/ingest/quartier/demo/+/reading", qos=1)
    client.c.subscribe("quartier/demo/live", qos=1)
    assert client.subscribed.wait(WAIT_S)
    yield client
    client.close()


def received_until(sub: Client, marker: bytes) -> list[bytes]:
    """Payloads delivered up to and including `marker` (a positive control published last
    by the same client: Mosquitto keeps one client's QoS 1 order, so anything the broker let
    through before it has arrived by then)."""
    got: list[bytes] = []
    while True:
        m = sub.messages.get(timeout=WAIT_S)
        got.append(bytes(m.payload))
        if m.payload == marker:
            return got


def test_gateway_publishes_under_its_own_address_only(broker: TlsBroker, pki: Pki,
                                                       ingest: Client) -> None:
    a, b = address(pki, "a"), address(pki, "b")
    gw = Client(broker, pki.ca_dir / "ca.crt", pki.gateways["a"])
    assert gw.connect()
    try:
        gw.publish(f"quartier/demo/{a}/reading", b"own-1")
        gw.publish(f"quartier/demo/{b}/reading", b"forged-as-b")
        gw.publish("quartier/demo/live", b"forged-live")
        gw.publish(f"quartier/demo/{a}/reading", b"own-2")
        got = received_until(ingest, b"own-2")
    finally:
        gw.close()
    assert got == [b"own-1", b"own-2"]


def test_other_gateway_reaches_ingest_under_its_address(broker: TlsBroker, pki: Pki,
                                                        ingest: Client) -> None:
    b = address(pki, "b")
    gw = Client(broker, pki.ca_dir / "ca.crt", pki.gateways["b"])
    assert gw.connect()
    try:
        gw.publish(f"quartier/demo/{b}/reading", b"from-b")
        assert received_until(ingest, b"from-b") == [b"from-b"]
    finally:
        gw.close()


def test_gateway_cannot_read_other_gateways(broker: TlsBroker, pki: Pki) -> None:
    b = address(pki, "b")
    spy = Client(broker, pki.ca_dir / "ca.crt", pki.gateways["a"])
    assert spy.connect()
    gw = Client(broker, pki.ca_dir / "ca.crt", pki.gateways["b"])
    server = Client(broker, pki.ca_dir / "ca.crt", pki.bundle("server"), "quartier-server")
    try:
        # Mosquitto 2.0 grants the wildcard subscription and filters at delivery.
        spy.c.subscribe("quartier/demo/#", qos=1)
        assert spy.subscribed.wait(WAIT_S)
        assert gw.connect()
        assert server.connect()
        gw.publish(f"quartier/demo/{b}/reading", b"private")
        # Positive control, routed after B's reading was acknowledged: the live totals,
        # which gateways may read.
        server.publish("quartier/demo/live", b"totals")
        got = received_until(spy, b"totals")
    finally:
        for c in (gw, server, spy):
            c.close()
    assert got == [b"totals"]


@pytest.mark.parametrize("who", ["no certificate", "revoked", "other CA"])
def test_broker_refuses(broker: TlsBroker, pki: Pki, who: str) -> None:
    bundle = {"no certificate": None, "revoked": pki.gateways["revoked"],
              "other CA": pki.bundle("rogue")}[who]
    client = Client(broker, pki.ca_dir / "ca.crt", bundle)
    try:
        assert not client.connect()
    finally:
        client.c.loop_stop()
    # Positive control: the same broker accepts gateway A.
    ok = Client(broker, pki.ca_dir / "ca.crt", pki.gateways["a"])
    assert ok.connect()
    ok.close()
