"""Gateway key files: a secp256k1 key, optionally encrypted with a passphrase.

A key file is JSON: `{"version": 1, "address": "0x…", "private_key": "0x…"}`, or, when
encrypted, `"crypto"` in place of `"private_key"`: scrypt (n=2**15, r=8, p=1) derives a
256-bit key from the passphrase, AES-256-GCM seals the private key with the address as
associated data (so a file whose address was edited does not open).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from coincurve import PrivateKey
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from quartier.signing import address_of

KEY_FILENAME = "gateway.key"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # ~0.1 s on a Pi 4; OWASP's minimum is 2**15


class KeyFileError(Exception):
    """A key file that cannot be written, read or opened."""


@dataclass(frozen=True)
class GatewayKey:
    private: PrivateKey
    address: str

    @classmethod
    def generate(cls) -> GatewayKey:
        key = PrivateKey()
        return cls(key, address_of(key))

    @classmethod
    def from_bytes(cls, secret: bytes) -> GatewayKey:
        key = PrivateKey(secret)
        return cls(key, address_of(key))


def _kdf(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(
        passphrase.encode("utf-8")
    )


def dumps(key: GatewayKey, passphrase: str | None = None) -> str:
    doc: dict[str, object] = {"version": 1, "address": key.address}
    secret = key.private.secret
    if passphrase:
        salt, nonce = os.urandom(16), os.urandom(12)
        ct = AESGCM(_kdf(passphrase, salt)).encrypt(nonce, secret, key.address.encode())
        doc["crypto"] = {
            "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
            "salt": salt.hex(), "cipher": "aes-256-gcm", "nonce": nonce.hex(),
            "ciphertext": ct.hex(),
        }
    else:
        doc["private_key"] = "0x" + secret.hex()
    return json.dumps(doc, indent=2) + "\n"


def loads(text: str, passphrase: str | None = None, *, source: str = "key file") -> GatewayKey:
    try:
        doc = json.loads(text)
        address = doc["address"]
    except (ValueError, KeyError, TypeError):
        raise KeyFileError(f"{source}: not a Quartier key file (JSON with an address)") from None
    if "private_key" in doc:
        key = GatewayKey.from_bytes(bytes.fromhex(str(doc["private_key"]).removeprefix("0x")))
    elif "crypto" in doc:
        if not passphrase:
            raise KeyFileError(
                f"{source} is encrypted: give its passphrase (--passphrase-file or "
                "QUARTIER_KEY_PASSPHRASE)"
            )
        c = doc["crypto"]
        if c.get("kdf") != "scrypt" or c.get("cipher") != "aes-256-gcm":
            raise KeyFileError(f"{source}: unsupported encryption {c.get('kdf')}/{c.get('cipher')}")
        kek = Scrypt(salt=bytes.fromhex(c["salt"]), length=32, n=c["n"], r=c["r"], p=c["p"]).derive(
            passphrase.encode("utf-8")
        )
        try:
            secret = AESGCM(kek).decrypt(
                bytes.fromhex(c["nonce"]), bytes.fromhex(c["ciphertext"]), address.encode()
            )
        except InvalidTag:
            raise KeyFileError(f"{source}: wrong passphrase (or the file was altered)") from None
        key = GatewayKey.from_bytes(secret)
    else:
        raise KeyFileError(f"{source}: has neither private_key nor crypto")
    if key.address != address:
        raise KeyFileError(f"{source}: the key is for {key.address}, the file says {address}")
    return key


def write_new(directory: Path, passphrase: str | None = None) -> tuple[Path, GatewayKey]:
    """Create DIR/gateway.key with mode 0600; refuse to overwrite an existing key."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILENAME
    key = GatewayKey.generate()
    try:
        # O_EXCL: never overwrite a key (a lost key is a lost identity); mode 0600 from
        # the start, not chmod after, so the secret is never readable by others.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists: refusing to overwrite a gateway key") from None
    with os.fdopen(fd, "w") as f:
        f.write(dumps(key, passphrase))
        f.flush()
        os.fsync(f.fileno())
    return path, key


def read(path: Path, passphrase: str | None = None) -> GatewayKey:
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    return loads(text, passphrase, source=str(path))
