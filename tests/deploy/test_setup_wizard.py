"""`quartier gateway setup` against real simulators: a SunSpec inverter over Modbus TCP
and a Linky TIC meter on a pty; then the community signs the Pi's certificate request."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from community.ca import CADirectory
from gateway import config as gwconfig
from gateway.setup_wizard import (
    Answers,
    FoundDevice,
    from_modbus_probe,
    from_serial_probe,
    render_config,
    scan_subnet,
    unique_names,
)
from quartier.cli import app
from tests.support import free_port, wait_port

QUARTIER = str(Path(sys.executable).with_name("quartier"))
runner = CliRunner()


@pytest.fixture
def sims() -> Iterator[tuple[int, str]]:
    port = free_port()
    inverter = subprocess.Popen([QUARTIER, "sim", "sunspec", "--host", "127.0.0.1", "--port",
                                 str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meter = subprocess.Popen([QUARTIER, "sim", "tic", "--mode", "historique", "--interval",
                              "0.2"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_port(port)
        assert meter.stdout is not None
        pty = meter.stdout.readline().strip()
        assert pty.startswith("/dev/"), pty
        yield port, pty
    finally:
        for p in (inverter, meter):
            p.terminate()
            p.wait(10)


def test_setup_finds_devices_and_writes_a_config_the_gateway_loads(
        tmp_path: Path, sims: tuple[int, str]) -> None:
    port, pty = sims
    root = tmp_path / "root"
    result = runner.invoke(app, [
        "gateway", "setup", "--root", str(root), "--community", "lesvignes",
        "--mqtt-url", "mqtts://mqtt.lesvignes.example:8883",
        "--modbus", f"tcp://127.0.0.1:{port}", "--serial", pty, "--no-serial-scan", "--yes"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert [(d["name"], d["driver"], d["role"]) for d in summary["devices"]] == [
        ("inverter", "sunspec", "production"), ("meter", "tic", "grid")]

    written = root / "etc/quartier/gateway.toml"
    cfg = gwconfig.load(written)
    assert cfg.community == "lesvignes"
    assert cfg.key == Path("/etc/quartier/gateway.key")  # the path on the Pi, not the root's
    assert cfg.outbox == Path("/var/lib/quartier/outbox.sqlite")
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.tls) == ("mqtt.lesvignes.example", 8883, True)
    assert cfg.mqtt.cert == Path("/etc/quartier/tls/gateway.crt")
    by_name = {d.name: d.spec for d in cfg.devices}
    assert by_name["inverter"].url == f"tcp://127.0.0.1:{port}"
    assert (by_name["meter"].port, by_name["meter"].mode) == (pty, "historique")

    # The signing key was created, and a TLS request names its address.
    key_doc = json.loads((root / "etc/quartier/gateway.key").read_text())
    assert key_doc["address"] == summary["address"]
    csr = x509.load_pem_x509_csr((root / "etc/quartier/tls/gateway.csr").read_bytes())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == summary["address"]

    # Enrolment: the community signs the request; the key stays on the Pi.
    ca = CADirectory.init(tmp_path / "ca", "lesvignes", datetime.now(UTC))
    bundle = ca.issue_gateway(summary["address"], tmp_path / "issued", datetime.now(UTC), csr=csr)
    assert bundle.key is None
    cert = x509.load_pem_x509_certificate(bundle.cert.read_bytes())
    assert cert.public_key() == csr.public_key()

    # Running it again keeps what is there unless told otherwise.
    again = runner.invoke(app, [
        "gateway", "setup", "--root", str(root), "--community", "lesvignes",
        "--mqtt-url", "mqtt://127.0.0.1:1883", "--no-serial-scan", "--yes"])
    assert again.exit_code == 1 and "--force" in again.stderr


def test_setup_refuses_a_bad_community(tmp_path: Path) -> None:
    result = runner.invoke(app, ["gateway", "setup", "--root", str(tmp_path), "--community",
                                 "Les Vignes", "--mqtt-url", "mqtt://h:1883", "--yes",
                                 "--no-serial-scan"])
    assert result.exit_code == 2 and "--community" in result.stderr


def test_scan_finds_a_modbus_port_on_localhost(sims: tuple[int, str]) -> None:
    port, _ = sims
    assert scan_subnet("127.0.0.1/32", ports=[port]) == [f"tcp://127.0.0.1:{port}"]


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
_devices = st.one_of(
    st.builds(FoundDevice, name=st.sampled_from(["inverter", "meter"]), driver=st.just("sunspec"),
              role=st.sampled_from(["production", "grid"]),
              url=st.integers(1, 65535).map(lambda p: f"tcp://192.168.1.20:{p}"),
              unit=st.integers(0, 247), summary=st.text(max_size=40)),
    st.builds(FoundDevice, name=st.just("meter"), driver=st.sampled_from(["tic", "p1"]),
              role=st.just("grid"), port=st.sampled_from(["/dev/ttyAMA0", "/dev/ttyUSB0"]),
              summary=st.text(max_size=40)),
)


@given(community=_names.filter(lambda s: s[0] != "-"), devices=st.lists(_devices, max_size=4),
       tls=st.booleans())
def test_every_rendered_config_loads(community: str, devices: list[FoundDevice],
                                     tls: bool) -> None:
    a = Answers(community=community, mqtt_url="mqtts://b:8883" if tls else "mqtt://b:1883",
                key=Path("/etc/quartier/gateway.key"), outbox=Path("/var/lib/q/o.sqlite"),
                devices=unique_names(devices), tls_dir=Path("/etc/quartier/tls") if tls else None)
    text = render_config(a)
    tomllib.loads(text)
    cfg = gwconfig.loads(text, Path("/etc/quartier/gateway.toml"))
    assert [d.name for d in cfg.devices] == [d.name for d in a.devices]
    assert len({d.name for d in cfg.devices}) == len(devices)


def test_probe_answers_become_devices() -> None:
    meter = from_modbus_probe({"url": "tcp://h:502", "unit": 2, "models": [1, 203],
                               "manufacturer": "Eastron", "model": "SDM"})
    assert (meter.name, meter.role, meter.unit) == ("meter", "grid", 2)
    inverter = from_modbus_probe({"url": "tcp://h:502", "unit": 1, "models": [1, 103, 160]})
    assert (inverter.name, inverter.role) == ("inverter", "production")
    p1 = from_serial_probe({"port": "/dev/ttyUSB0", "protocol": "p1",
                            "line": "LineSettings(baudrate=115200, ...)", "serial": "E0043"})
    assert (p1.driver, p1.mode) == ("p1", "5")
