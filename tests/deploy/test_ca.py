"""The community CA: what it issues, what it refuses, what it revokes."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from community import ca
from quartier.cli import app
from quartier.keys import GatewayKey

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
runner = CliRunner()


def cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


@pytest.fixture(scope="module")
def root() -> tuple[object, x509.Certificate]:
    return ca.create_ca("demo", NOW)


@settings(max_examples=20, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32).filter(lambda b: 0 < int.from_bytes(b) < 2**255))
def test_gateway_certificate_names_the_address(root, secret: bytes) -> None:
    ca_key, ca_cert = root
    address = GatewayKey.from_bytes(secret).address
    cert = ca.issue_gateway(ca_key, ca_cert, address, ca.new_key().public_key(), 7, NOW)
    assert cn(cert) == address
    cert.verify_directly_issued_by(ca_cert)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize("bad, why", [
    ("0x" + "ab" * 20, "EIP-55"),  # valid hex, not checksummed
    ("0x1234", "not an Ethereum address"),
    ("quartier-server", "not an Ethereum address"),
    ("0x" + "g" * 40, "not an Ethereum address"),
])
def test_gateway_certificate_refuses_anything_but_a_checksummed_address(root, bad, why) -> None:
    ca_key, ca_cert = root
    with pytest.raises(ca.CAError, match=why):
        ca.issue_gateway(ca_key, ca_cert, bad, ca.new_key().public_key(), 1, NOW)


def test_service_names_cannot_pass_for_a_gateway(root) -> None:
    ca_key, ca_cert = root
    with pytest.raises(ca.CAError, match="service name"):
        ca.issue_client(ca_key, ca_cert, "0xabc", ca.new_key().public_key(), 1, NOW)


def test_server_certificate_names_hosts_and_addresses(root) -> None:
    ca_key, ca_cert = root
    cert = ca.issue_server(ca_key, ca_cert, ["mqtt.lesvignes.example", "10.0.0.2"],
                           ca.new_key().public_key(), 9, NOW)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mqtt.lesvignes.example"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.2"]
    assert cn(cert) == "mqtt.lesvignes.example"
    with pytest.raises(ca.CAError, match="neither a host name"):
        ca.issue_server(ca_key, ca_cert, ["bad host!"], ca.new_key().public_key(), 9, NOW)


def test_leaf_never_outlives_the_ca(root) -> None:
    ca_key, ca_cert = root
    cert = ca.issue_server(ca_key, ca_cert, ["h"], ca.new_key().public_key(), 9, NOW,
                           days=100_000)
    assert cert.not_valid_after_utc == ca_cert.not_valid_after_utc


def test_directory_issue_csr_revoke(tmp_path: Path) -> None:
    d = ca.CADirectory.init(tmp_path / "ca", "demo", NOW)
    assert stat.S_IMODE(d.key_path.stat().st_mode) == 0o600
    with pytest.raises(ca.CAError, match="already holds a CA"):
        ca.CADirectory.init(tmp_path / "ca", "demo", NOW)

    # The Pi makes its own TLS key and a request; the CA signs the request.
    address = GatewayKey.generate().address
    pi_key = ca.new_key()
    csr = ca.gateway_csr(pi_key, address)
    bundle = d.issue_gateway(address, tmp_path / "gw", NOW, csr=csr)
    assert bundle.key is None
    cert = x509.load_pem_x509_certificate(bundle.cert.read_bytes())
    assert cert.public_key() == pi_key.public_key()
    other = GatewayKey.generate().address
    with pytest.raises(ca.CAError, match=f"request is for {address}"):
        d.issue_gateway(other, tmp_path / "gw2", NOW, csr=csr)

    renewed = d.issue_gateway(address, tmp_path / "gw3", NOW + timedelta(days=1))
    assert renewed.key is not None and stat.S_IMODE(renewed.key.stat().st_mode) == 0o600
    revoked = d.revoke(address, NOW + timedelta(days=2), "keyCompromise")
    assert len(revoked) == 2  # both certificates of that address
    crl = x509.load_pem_x509_crl(d.crl_path.read_bytes())
    assert crl.is_signature_valid(x509.load_pem_x509_certificate(d.cert_path.read_bytes())
                                  .public_key())  # type: ignore[arg-type]
    assert {r.serial_number for r in crl} == {e.serial for e in revoked}
    with pytest.raises(ca.CAError, match="already revoked"):
        d.revoke(address, NOW)
    with pytest.raises(ca.CAError, match="issued no certificate"):
        d.revoke(other, NOW)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ca", "issue-gateway", "--dir", str(tmp_path / "none"),
                                 "--address", GatewayKey.generate().address,
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "holds no CA" in result.stderr and "Traceback" not in result.output
    runner.invoke(app, ["ca", "init", "--dir", str(tmp_path / "ca"), "--community", "demo"])
    result = runner.invoke(app, ["ca", "issue-gateway", "--dir", str(tmp_path / "ca"),
                                 "--address", "0x" + "ab" * 20, "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "EIP-55" in result.stderr
