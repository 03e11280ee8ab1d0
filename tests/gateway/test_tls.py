"""MQTT over TLS with a client certificate, against a real Mosquitto that requires one."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gw_helpers import QUARTIER, Procs, free_port, wait_port, write_config

Key = ec.EllipticCurvePrivateKey


def _cert(name: str, issuer: tuple[x509.Name, Key] | None, ca: bool = False,
          san: str | None = None) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    return b.sign(issuer_key, hashes.SHA256()), key


def _write(path: Path, cert: x509.Certificate, key: Key) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    os.chmod(path.with_suffix(".key"), 0o644)  # mosquitto may run as its own user


def test_publishes_over_tls_with_a_client_certificate(tmp_path: Path, procs: Procs) -> None:
    ca, ca_key = _cert("Quartier test CA", None, ca=True)
    server, server_key = _cert("localhost", (ca.subject, ca_key), san="localhost")
    client, client_key = _cert("gateway", (ca.subject, ca_key))
    tls = tmp_path / "tls"
    tls.mkdir()
    tls.chmod(0o755)
    tmp_path.chmod(0o755)
    (tls / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write(tls / "server", server, server_key)
    _write(tls / "client", client, client_key)
    port = free_port()
    conf = tmp_path / "mq.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"cafile {tls}/ca.crt\ncertfile {tls}/server.crt\nkeyfile {tls}/server.key\n"
                    "require_certificate true\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    procs.start([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                tmp_path / "mq.log")
    wait_port(port)
    sim = procs.sim(tmp_path)
    device = {"name": "inverter", "driver": "sunspec", "url": f"tcp://127.0.0.1:{sim}",
              "interval": "1s", "timeout": "5s"}
    client_files = 'cert = "tls/client.crt"\nkey = "tls/client.key"\n'
    config = write_config(tmp_path, f"mqtts://localhost:{port}", [device],
                          extra='ca = "tls/ca.crt"\n' + client_files)
    run = subprocess.run([QUARTIER, "gateway", "run", "--config", str(config), "--once",
                          "--timeout", "20"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1])["outbox_depth"] == 0
    # without the client certificate the broker refuses, and the reading stays in the outbox
    config.write_text(config.read_text().replace(client_files, ""))
    run = subprocess.run([QUARTIER, "gateway", "run", "--config", str(config), "--once",
                          "--timeout", "3"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "outbox not flushed" in run.stderr
