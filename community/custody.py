"""Members' ledger keys, held by the server by default, encrypted at rest.

Each member gets a secp256k1 key when their account is created. Its private half is
sealed with AES-256-GCM under a key-encryption key (KEK) that lives in a file outside the
database (`--kek-file`, or `QUARTIER_KEK_FILE`), so a copy of the database alone opens
nothing. The associated data binds each ciphertext to its member and address: a row
copied onto another member does not open. A key is decrypted only to sign one intent for
a member who has just authenticated, and is never logged nor kept.

A member may instead keep their own key (`quartier wallet`, a browser wallet) and register
its address here: the row then holds no ciphertext and the server can sign nothing for
them.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from coincurve import PrivateKey
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from quartier.hashing import to_checksum_address
from quartier.signing import address_of

KEK_ENV = "QUARTIER_KEK_FILE"
KEK_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random per seal, so at most a few million seals per KEK
AAD_PREFIX = b"quartier-custody-v1|"

metadata = sa.MetaData()

custody_keys = sa.Table(
    "custody_keys",
    metadata,
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("address", sa.String(42), nullable=False, unique=True),  # EIP-55
    sa.Column("mode", sa.String(8), nullable=False),  # server | self
    # Which KEK sealed the key (first 8 bytes of its SHA-256): a wrong KEK is named as
    # such rather than reported as a corrupt row.
    sa.Column("kek_id", sa.String(16), nullable=True),
    sa.Column("nonce", sa.LargeBinary(NONCE_BYTES), nullable=True),
    sa.Column("ciphertext", sa.LargeBinary(64), nullable=True),  # 32-byte key + 16-byte tag
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.CheckConstraint("mode IN ('server', 'self')", name="ck_custody_keys_mode"),
)


class CustodyError(RuntimeError):
    """A key that cannot be created, found or opened; the message says what to do."""


class SelfCustody(CustodyError):
    """The member keeps their own key: the server cannot sign for them."""


def create_tables(engine: sa.Engine) -> None:
    metadata.create_all(engine, checkfirst=True)


# --- the key-encryption key ----------------------------------------------------------------


def load_kek(path: Path, *, create: bool = True) -> bytes:
    """The KEK in `path` (64 hex digits); created with mode 0600 if missing and `create`."""
    if not path.exists():
        if not create:
            raise CustodyError(f"no key-encryption key at {path} (give --kek-file or {KEK_ENV})")
        path.parent.mkdir(parents=True, exist_ok=True)
        kek = os.urandom(KEK_BYTES)
        try:
            # O_EXCL and the mode at creation: never overwrite a KEK (every member key
            # sealed under it would be lost), never let it be readable by others.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_kek(path, create=False)
        with os.fdopen(fd, "w") as f:
            f.write(kek.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        return kek
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO) & ~stat.S_IRGRP:
        raise CustodyError(f"key-encryption key {path} is accessible to other users "
                           f"(mode {stat.S_IMODE(mode):o}): chmod 600 {path}")
    text = path.read_text().strip()
    try:
        kek = bytes.fromhex(text)
    except ValueError:
        kek = b""
    if len(kek) != KEK_BYTES:
        raise CustodyError(f"key-encryption key {path} is not {KEK_BYTES * 2} hex digits")
    return kek


def kek_id(kek: bytes) -> str:
    return hashlib.sha256(kek).hexdigest()[:16]


# --- custody ------------------------------------------------------------------------------


def register_address(conn: sa.Connection, member_id: str, address: str, now: int | None = None) -> str:
    """Self-custody: the member keeps their key; the server records only the address.
    Needs no KEK: nothing is sealed."""
    if conn.execute(sa.select(custody_keys.c.address)
                    .where(custody_keys.c.member_id == member_id)).first() is not None:
        raise CustodyError(f"member {member_id!r} already has a ledger key")
    address = to_checksum_address(address)
    conn.execute(custody_keys.insert().values(
        member_id=member_id, address=address, mode="self", kek_id=None, nonce=None,
        ciphertext=None, created_at=int(time.time()) if now is None else now))
    return address


@dataclass(frozen=True)
class MemberKey:
    """What is known of a member's key without opening it."""

    member_id: str
    address: str
    mode: str  # server | self

    @property
    def held_by_server(self) -> bool:
        return self.mode == "server"


def _aad(member_id: str, address: str) -> bytes:
    return AAD_PREFIX + member_id.encode() + b"|" + address.encode()


class Custody:
    """Members' keys in SQL, sealed under one KEK kept outside the database."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != KEK_BYTES:
            raise CustodyError(f"a key-encryption key is {KEK_BYTES} bytes, got {len(kek)}")
        self._aead = AESGCM(kek)
        self.kek_id = kek_id(kek)

    def __repr__(self) -> str:  # never the key
        return f"Custody(kek_id={self.kek_id!r})"

    @classmethod
    def from_file(cls, path: Path, *, create: bool = True) -> Custody:
        return cls(load_kek(path, create=create))

    def get(self, conn: sa.Connection, member_id: str) -> MemberKey | None:
        row = conn.execute(sa.select(custody_keys.c.address, custody_keys.c.mode)
                           .where(custody_keys.c.member_id == member_id)).first()
        return MemberKey(member_id, row.address, row.mode) if row else None

    def address(self, conn: sa.Connection, member_id: str) -> str | None:
        key = self.get(conn, member_id)
        return key.address if key else None

    def create(self, conn: sa.Connection, member_id: str, now: int | None = None) -> str:
        """A new server-held key for `member_id`; returns its address. Refuses to replace
        an existing key (replacing an account is the ledger's delayed replacement)."""
        if self.get(conn, member_id) is not None:
            raise CustodyError(f"member {member_id!r} already has a ledger key")
        key = PrivateKey()
        address = address_of(key)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, key.secret, _aad(member_id, address))
        conn.execute(custody_keys.insert().values(
            member_id=member_id, address=address, mode="server", kek_id=self.kek_id, nonce=nonce,
            ciphertext=sealed, created_at=int(time.time()) if now is None else now))
        return address

    def ensure(self, conn: sa.Connection, member_id: str, now: int | None = None) -> str:
        """The member's address, creating a server-held key if they have none."""
        key = self.get(conn, member_id)
        return key.address if key else self.create(conn, member_id, now)

    def register_address(self, conn: sa.Connection, member_id: str, address: str,
                         now: int | None = None) -> str:
        return register_address(conn, member_id, address, now)

    def adopt(self, conn: sa.Connection, member_id: str, address: str, key: PrivateKey | None,
              now: int | None = None) -> None:
        """After the ledger replaced the member's account: their row now holds `key`, sealed
        here (server custody), or only `address` when `key` is None (self-custody)."""
        address = to_checksum_address(address)
        values: dict[str, object] = {"address": address, "mode": "self", "kek_id": None, "nonce": None,
                                     "ciphertext": None, "created_at": int(time.time()) if now is None else now}
        if key is not None:
            if address_of(key) != address:
                raise CustodyError(f"the key given for member {member_id!r} is not for {address}")
            nonce = os.urandom(NONCE_BYTES)
            values |= {"mode": "server", "kek_id": self.kek_id, "nonce": nonce,
                       "ciphertext": self._aead.encrypt(nonce, key.secret, _aad(member_id, address))}
        conn.execute(custody_keys.delete().where(custody_keys.c.member_id == member_id))
        conn.execute(custody_keys.insert().values(member_id=member_id, **values))

    def unlock(self, conn: sa.Connection, member_id: str) -> PrivateKey:
        """The member's private key, for signing one intent now. Callers must have
        authenticated the member first and must not keep or log the key."""
        row = conn.execute(sa.select(custody_keys).where(custody_keys.c.member_id == member_id)).first()
        if row is None:
            raise CustodyError(f"member {member_id!r} has no ledger key")
        if row.mode == "self":
            raise SelfCustody(f"member {member_id!r} keeps their own key ({row.address}): "
                              "they sign their intents themselves")
        if row.kek_id != self.kek_id:
            raise CustodyError(
                f"the key of member {member_id!r} was sealed under key-encryption key "
                f"{row.kek_id}, not the one given ({self.kek_id}): check --kek-file / {KEK_ENV}")
        try:
            secret = self._aead.decrypt(bytes(row.nonce), bytes(row.ciphertext), _aad(member_id, row.address))
        except InvalidTag:
            raise CustodyError(f"the stored key of member {member_id!r} does not open: the row "
                               "was altered or copied from another member") from None
        key = PrivateKey(secret)
        if address_of(key) != row.address:
            raise CustodyError(f"the stored key of member {member_id!r} is not for {row.address}")
        return key
