"""The community's certificate authority for the MQTT broker.

Mosquitto authenticates gateways by TLS client certificate and, with
`use_identity_as_username true`, takes the certificate's common name as the MQTT user
name; the ACL pattern `quartier/+/%u/reading` then lets a gateway publish only under its
own address. So a gateway certificate's CN is exactly the gateway's EIP-55 address, the
same string that names it in topics and signs its readings, and this CA refuses to issue
one for anything else.

The functions that build keys, certificates and CRLs take the time as an argument and do
no I/O; `CADirectory` is the thin layer that keeps them in a directory:

    ca.key (0600)  ca.crt  crl.pem  issued.json  (community name, serials, revocations)

Keys are ECDSA P-256: TLS 1.2/1.3 cannot sign with secp256k1, so the TLS key is a
second key beside the gateway's signing key, bound to it by the CN.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from quartier.hashing import is_checksum_address

CA_DAYS = 3650  # the CA outlives many gateway certificates; rotating it re-enrols everyone
GATEWAY_DAYS = 825  # the CA/Browser Forum's former ceiling: a Pi is re-enrolled every ~2 years
SERVER_DAYS = 825
CRL_DAYS = 30  # a CRL past its nextUpdate is refused by OpenSSL: reissue monthly (a timer)
BACKDATE = timedelta(minutes=5)  # tolerate a Pi whose clock is a little behind

Kind = Literal["gateway", "server", "client"]

_COMMUNITY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SERVICE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class CAError(Exception):
    """A request this CA refuses, or a CA directory that cannot be used."""


@dataclass(frozen=True)
class Issued:
    """One certificate this CA issued, as recorded in issued.json."""

    serial: int
    kind: Kind
    subject: str  # CN: the gateway address, the broker host, or the service name
    not_after: str  # ISO 8601, UTC
    revoked_at: str | None = None
    reason: str | None = None


# --- pure: keys, certificates, CRLs --------------------------------------------------


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def check_community(name: str) -> str:
    if not _COMMUNITY.match(name):
        raise CAError(f"community {name!r} must be 1-64 lowercase letters, digits, '_' or '-' "
                      "(it is a topic level)")
    return name


def check_address(address: str) -> str:
    """The gateway's address, EIP-55 checksummed (its exact spelling is the MQTT user)."""
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", address):
        raise CAError(f"{address!r} is not an Ethereum address (0x and 40 hex digits)")
    if not is_checksum_address(address):
        raise CAError(f"{address} is not EIP-55 checksummed: copy it as `quartier keys show --key FILE` "
                      "prints it (topics and ACLs compare it exactly)")
    return address


def check_service(name: str) -> str:
    if not _SERVICE.match(name) or name.startswith("0x"):
        raise CAError(f"service name {name!r} must be lowercase letters, digits and '-', "
                      "starting with a letter (e.g. quartier-ingest)")
    return name


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST.match(host.removeprefix("*.")):
        raise CAError(f"{host!r} is neither a host name nor an IP address")
    return x509.DNSName(host)


def create_ca(community: str, now: datetime, days: int = CA_DAYS,
              key: ec.EllipticCurvePrivateKey | None = None
              ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    check_community(community)
    key = key or new_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Quartier {community}"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"Quartier {community} community CA"),
    ])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
          public_key: ec.EllipticCurvePublicKey, subject: x509.Name, serial: int,
          now: datetime, days: int, usage: x509.ObjectIdentifier,
          sans: list[x509.GeneralName]) -> x509.Certificate:
    not_after = min(now + timedelta(days=days), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _subject(ca_cert: x509.Certificate, cn: str) -> x509.Name:
    org = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(org[0].value))] if org else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ec_public(key: object, what: str) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CAError(f"{what}: expected an EC P-256 public key, got {type(key).__name__}")
    return key


def issue_gateway(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                  address: str, public_key: ec.EllipticCurvePublicKey, serial: int,
                  now: datetime, days: int = GATEWAY_DAYS) -> x509.Certificate:
    """A TLS client certificate whose CN is the gateway's EIP-55 address."""
    check_address(address)
    return _leaf(ca_key, ca_cert, public_key, _subject(ca_cert, address), serial, now, days,
                 ExtendedKeyUsageOID.CLIENT_AUTH, [])


def issue_client(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                 name: str, public_key: ec.EllipticCurvePublicKey, serial: int,
                 now: datetime, days: int = SERVER_DAYS) -> x509.Certificate:
    """A TLS client certificate for a server-side service (ingest, the web app)."""
    check_service(name)
    return _leaf(ca_key, ca_cert, public_key, _subject(ca_cert, name), serial, now, days,
                 ExtendedKeyUsageOID.CLIENT_AUTH, [])


def issue_server(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                 hosts: list[str], public_key: ec.EllipticCurvePublicKey, serial: int,
                 now: datetime, days: int = SERVER_DAYS) -> x509.Certificate:
    """The broker's certificate: the first host is the CN, all are subjectAltNames."""
    if not hosts:
        raise CAError("a server certificate needs at least one host name or IP address")
    sans = [_san(h) for h in hosts]
    return _leaf(ca_key, ca_cert, public_key, _subject(ca_cert, hosts[0]), serial, now, days,
                 ExtendedKeyUsageOID.SERVER_AUTH, sans)


def gateway_csr(key: ec.EllipticCurvePrivateKey, address: str) -> x509.CertificateSigningRequest:
    """A request made on the Pi, so the TLS key never leaves it."""
    check_address(address)
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
            .sign(key, hashes.SHA256()))


def csr_address(csr: x509.CertificateSigningRequest) -> str:
    if not csr.is_signature_valid:
        raise CAError("the certificate request's signature does not verify")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1:
        raise CAError("the certificate request must have exactly one CN (the gateway address)")
    return check_address(str(cns[0].value))


def build_crl(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
              revoked: list[tuple[int, datetime]], now: datetime,
              days: int = CRL_DAYS) -> x509.CertificateRevocationList:
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca_cert.subject)
               .last_update(now - BACKDATE)
               .next_update(now + timedelta(days=days)))
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
    return builder.sign(ca_key, hashes.SHA256())


def pem(obj: x509.Certificate | x509.CertificateRevocationList
        | x509.CertificateSigningRequest) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# --- the CA directory ------------------------------------------------------------------


def _write(path: Path, data: bytes, mode: int = 0o644, overwrite: bool = True) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a key."""
    if not overwrite and path.exists():
        raise CAError(f"{path} already exists: not overwriting it")
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    _write(path, key_pem(key), 0o600, overwrite=False)


@dataclass(frozen=True)
class Bundle:
    """What `issue-*` writes for one party: its key (unless from a CSR), cert and the CA."""

    key: Path | None
    cert: Path
    ca: Path


class CADirectory:
    """A community CA kept in a directory (see the module docstring for the files)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key_path = root / "ca.key"
        self.cert_path = root / "ca.crt"
        self.crl_path = root / "crl.pem"
        self.index_path = root / "issued.json"

    @classmethod
    def init(cls, root: Path, community: str, now: datetime,
             days: int = CA_DAYS) -> CADirectory:
        check_community(community)
        ca = cls(root)
        if ca.key_path.exists() or ca.cert_path.exists():
            raise CAError(f"{root} already holds a CA (ca.key/ca.crt): not overwriting it")
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        key, cert = create_ca(community, now, days)
        write_key(ca.key_path, key)
        _write(ca.cert_path, pem(cert))
        ca._save_index({"community": community, "issued": []})
        ca._write_crl(key, cert, [], now)
        return ca

    # -- state

    def _load(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        try:
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except FileNotFoundError:
            raise CAError(f"{self.root} holds no CA: run `quartier ca init --dir {self.root} "
                          "--community NAME` first") from None
        except (ValueError, TypeError) as exc:
            raise CAError(f"{self.root}: cannot read the CA key or certificate: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CAError(f"{self.key_path} is not an EC private key")
        return key, cert

    def _index(self) -> dict[str, object]:
        try:
            doc = json.loads(self.index_path.read_text())
        except FileNotFoundError:
            raise CAError(f"{self.index_path} is missing: the CA directory is incomplete") from None
        except ValueError as exc:
            raise CAError(f"{self.index_path} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("issued"), list):
            raise CAError(f"{self.index_path}: expected {{\"community\", \"issued\": [...]}}")
        return doc

    def _save_index(self, doc: dict[str, object]) -> None:
        _write(self.index_path, (json.dumps(doc, indent=2) + "\n").encode())

    @property
    def community(self) -> str:
        return str(self._index()["community"])

    def issued(self) -> list[Issued]:
        return [Issued(**e) for e in self._index()["issued"]]  # type: ignore[attr-defined]

    def _record(self, entry: Issued) -> None:
        doc = self._index()
        doc["issued"] = [*doc["issued"], asdict(entry)]  # type: ignore[misc]
        self._save_index(doc)

    def _write_crl(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
                   entries: list[Issued], now: datetime) -> None:
        revoked = [(e.serial, datetime.fromisoformat(e.revoked_at))
                   for e in entries if e.revoked_at]
        _write(self.crl_path, pem(build_crl(key, cert, revoked, now)))

    # -- issuing

    def _out(self, out: Path, stem: str, key: ec.EllipticCurvePrivateKey | None,
             cert: x509.Certificate) -> Bundle:
        out.mkdir(parents=True, exist_ok=True)
        key_path = out / f"{stem}.key" if key is not None else None
        cert_path, ca_path = out / f"{stem}.crt", out / "ca.crt"
        if key is not None and key_path is not None:
            write_key(key_path, key)
        _write(cert_path, pem(cert))
        _write(ca_path, self.cert_path.read_bytes())
        return Bundle(key_path, cert_path, ca_path)

    def issue_gateway(self, address: str, out: Path, now: datetime, days: int = GATEWAY_DAYS,
                      csr: x509.CertificateSigningRequest | None = None) -> Bundle:
        check_address(address)
        if csr is not None and csr_address(csr) != address:
            raise CAError(f"the certificate request is for {csr_address(csr)}, not {address}")
        # Re-issuing to an address (renewal, a replacement Pi) is allowed; earlier
        # certificates stay valid until `ca revoke` revokes them by address.
        ca_key, ca_cert = self._load()
        key = None if csr is not None else new_key()
        public = _ec_public(csr.public_key() if csr is not None else key.public_key(),  # type: ignore[union-attr]
                            "certificate request")
        serial = x509.random_serial_number()
        cert = issue_gateway(ca_key, ca_cert, address, public, serial, now, days)
        bundle = self._out(out, "gateway", key, cert)
        self._record(Issued(serial, "gateway", address, cert.not_valid_after_utc.isoformat()))
        return bundle

    def issue_server(self, hosts: list[str], out: Path, now: datetime,
                     days: int = SERVER_DAYS) -> Bundle:
        ca_key, ca_cert = self._load()
        key = new_key()
        serial = x509.random_serial_number()
        cert = issue_server(ca_key, ca_cert, hosts, key.public_key(), serial, now, days)
        bundle = self._out(out, "server", key, cert)
        self._record(Issued(serial, "server", hosts[0], cert.not_valid_after_utc.isoformat()))
        return bundle

    def issue_client(self, name: str, out: Path, now: datetime,
                     days: int = SERVER_DAYS) -> Bundle:
        ca_key, ca_cert = self._load()
        key = new_key()
        serial = x509.random_serial_number()
        cert = issue_client(ca_key, ca_cert, name, key.public_key(), serial, now, days)
        bundle = self._out(out, name, key, cert)
        self._record(Issued(serial, "client", name, cert.not_valid_after_utc.isoformat()))
        return bundle

    # -- revoking

    def revoke(self, subject: str, now: datetime, reason: str = "unspecified") -> list[Issued]:
        """Revoke every unrevoked certificate issued to `subject`; rewrite the CRL."""
        entries = self.issued()
        hits = [e for e in entries if e.subject == subject and not e.revoked_at]
        if not hits:
            known = any(e.subject == subject for e in entries)
            raise CAError(f"{subject}: every certificate is already revoked" if known
                          else f"this CA issued no certificate to {subject}")
        stamp = now.astimezone(UTC).replace(microsecond=0).isoformat()
        updated = [replace(e, revoked_at=stamp, reason=reason) if e in hits else e
                   for e in entries]
        doc = self._index()
        doc["issued"] = [asdict(e) for e in updated]
        self._save_index(doc)
        self.refresh_crl(now)
        return [replace(e, revoked_at=stamp, reason=reason) for e in hits]

    def refresh_crl(self, now: datetime) -> Path:
        ca_key, ca_cert = self._load()
        self._write_crl(ca_key, ca_cert, self.issued(), now)
        return self.crl_path
