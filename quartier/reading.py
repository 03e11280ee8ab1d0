"""The signed reading: canonical body, EIP-191 signature, per-gateway hash chain.

This is the wire contract between gateways, the community server, the contracts and
anyone who audits them (docs/protocol.md). Pure: bytes and values in, values or a
typed `ReadingError` out.

A body is canonical JSON — UTF-8 (in fact ASCII), keys sorted, no whitespace, integers
and ASCII strings only — so that the signed bytes are the only representation and an
independent implementation can rebuild them from the values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from coincurve import PrivateKey

from quartier.hashing import is_checksum_address, keccak256
from quartier.signing import SignatureError, recover_personal, sign_personal

VERSION = 1
GENESIS_PREV = "0" * 64
REQUIRED_FIELDS = frozenset({"v", "gw", "dev", "seq", "ts", "prev", "m"})
# Optional fields (docs/protocol.md): `flags` marks readings a gateway found doubtful
# (stale, counter going backwards, meter replaced...); `meter` is the meter's own id, so
# a replaced meter starts a new segment. Verifiers accept readings with and without them.
OPTIONAL_FIELDS = frozenset({"flags", "meter"})
KNOWN_FLAGS = frozenset(
    {"stale", "counter_backwards", "implausible", "meter_replaced", "asleep", "clock_adjusted"}
)

# Limits, so that a hostile peer cannot make us hold or hash arbitrary amounts of data.
MAX_BODY_BYTES = 2048  # a 3-phase meter with every measurement is ~400 bytes
MAX_MEASUREMENTS = 32
MAX_FLAGS = 8
MAX_STRING = 64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # fits int64 in any language; JS needs BigInt above 2^53

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Printable ASCII without '"' and '\\', so a canonical string never needs an escape.
_STRING = re.compile(r'^[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}$')
_HEX32 = re.compile(r"^[0-9a-f]{64}$")


class ReadingError(ValueError):
    """A reading that must be refused; `reason` is a short stable code for counters."""

    reason = "invalid"


class NonCanonicalBody(ReadingError):
    reason = "non_canonical"


class FloatNotAllowed(ReadingError):
    reason = "float"


class UnknownField(ReadingError):
    reason = "unknown_field"


class MissingField(ReadingError):
    reason = "missing_field"


class WrongVersion(ReadingError):
    reason = "wrong_version"


class BadValue(ReadingError):
    reason = "bad_value"


class BadEnvelope(ReadingError):
    reason = "bad_envelope"


class BadSignature(ReadingError):
    reason = "bad_signature"


class SignatureMismatch(ReadingError):
    reason = "signature_mismatch"


class SeqNotContiguous(ReadingError):
    reason = "seq_gap"


class PrevMismatch(ReadingError):
    reason = "prev_mismatch"


@dataclass(frozen=True, slots=True)
class Reading:
    """The values of a reading body."""

    gw: str
    dev: str
    seq: int
    ts: int
    prev: str
    m: dict[str, int]
    flags: tuple[str, ...] = ()
    meter: str | None = None
    v: int = VERSION

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "v": self.v,
            "gw": self.gw,
            "dev": self.dev,
            "seq": self.seq,
            "ts": self.ts,
            "prev": self.prev,
            "m": dict(self.m),
        }
        if self.flags:
            d["flags"] = list(self.flags)
        if self.meter is not None:
            d["meter"] = self.meter
        return d


@dataclass(frozen=True, slots=True)
class SignedReading:
    """A reading with its exact signed bytes and signature, as it travels."""

    reading: Reading
    body: bytes
    sig: bytes
    body_hash: str = field(default="")  # hex keccak256(body): the next reading's `prev`

    def envelope(self) -> bytes:
        return encode_envelope(self.body, self.sig)


# --- encoding -----------------------------------------------------------------------


def _check_int(name: str, value: object, lo: int = INT_MIN, hi: int = INT_MAX) -> int:
    if isinstance(value, float):
        raise FloatNotAllowed(f"field {name}: floats are not allowed, use an integer unit ({value!r})")
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(f"field {name}: expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise BadValue(f"field {name}: {value} is outside [{lo}, {hi}]")
    return value


def _check_string(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise BadValue(f"field {name}: expected a string, got {type(value).__name__}")
    if not _STRING.match(value):
        raise BadValue(
            f"field {name}: {value[:80]!r} must be 1-{MAX_STRING} printable ASCII characters "
            "without quotes or backslashes"
        )
    return value


def validate(d: dict[str, Any]) -> Reading:
    """Check the values of a body dict and return them as a Reading."""
    keys = set(d)
    unknown = keys - REQUIRED_FIELDS - OPTIONAL_FIELDS
    if unknown:
        raise UnknownField(f"unknown top-level field(s): {', '.join(sorted(unknown))}")
    missing = REQUIRED_FIELDS - keys
    if missing:
        raise MissingField(f"missing field(s): {', '.join(sorted(missing))}")
    if isinstance(d["v"], bool) or d["v"] != VERSION:
        raise WrongVersion(f"format version {d['v']!r} is not supported (expected {VERSION})")
    gw = d["gw"]
    if not isinstance(gw, str) or not is_checksum_address(gw):
        raise BadValue(f"field gw: {str(gw)[:60]!r} is not an EIP-55 checksummed address")
    dev = _check_string("dev", d["dev"])
    seq = _check_int("seq", d["seq"], 1, INT_MAX)
    ts = _check_int("ts", d["ts"], 0, INT_MAX)
    prev = d["prev"]
    if not isinstance(prev, str) or not _HEX32.match(prev):
        raise BadValue("field prev: expected 64 lowercase hex characters")
    m = d["m"]
    if not isinstance(m, dict) or not m:
        raise BadValue("field m: expected a non-empty object of measurements")
    if len(m) > MAX_MEASUREMENTS:
        raise BadValue(f"field m: {len(m)} measurements, at most {MAX_MEASUREMENTS}")
    for name, value in m.items():
        if not _NAME.match(name):
            raise BadValue(f"measurement name {name[:40]!r} must match {_NAME.pattern}")
        _check_int(f"m.{name}", value)
    flags: tuple[str, ...] = ()
    if "flags" in d:
        raw = d["flags"]
        if not isinstance(raw, list) or not raw or len(raw) > MAX_FLAGS:
            raise BadValue(f"field flags: expected a non-empty list of at most {MAX_FLAGS} names")
        for f in raw:
            if not isinstance(f, str) or not _NAME.match(f):
                raise BadValue(f"flag {str(f)[:40]!r} must match {_NAME.pattern}")
        if raw != sorted(set(raw)):
            raise NonCanonicalBody("field flags: must be sorted and without duplicates")
        flags = tuple(raw)
    meter = _check_string("meter", d["meter"]) if "meter" in d else None
    return Reading(gw=gw, dev=dev, seq=seq, ts=ts, prev=prev, m=dict(m), flags=flags, meter=meter)


def canonical_bytes(d: dict[str, Any]) -> bytes:
    # With the value checks in validate(), json.dumps produces no escapes and no floats,
    # so its output is exactly the canonical form described in docs/protocol.md.
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def encode(reading: Reading) -> bytes:
    d = reading.as_dict()
    validate(d)
    return canonical_bytes(d)


def _reject_float(text: str) -> Any:
    raise FloatNotAllowed(f"floats are not allowed in a reading body ({text[:30]})")


def _reject_constant(text: str) -> Any:
    raise FloatNotAllowed(f"{text} is not allowed in a reading body")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise NonCanonicalBody("duplicate keys in an object")
    return d


def decode(body: bytes) -> Reading:
    """Parse signed bytes into a Reading, refusing anything but the canonical form."""
    if len(body) > MAX_BODY_BYTES:
        raise BadValue(f"body is {len(body)} bytes, at most {MAX_BODY_BYTES}")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise NonCanonicalBody("body is not ASCII") from None
    try:
        d = json.loads(
            text,
            parse_float=_reject_float,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except ReadingError:
        raise
    except (ValueError, RecursionError) as exc:
        raise NonCanonicalBody(f"body is not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise NonCanonicalBody("body is not a JSON object")
    reading = validate(d)
    if canonical_bytes(d) != body:
        raise NonCanonicalBody("body is not in canonical form (keys sorted, no whitespace)")
    return reading


def body_hash(body: bytes) -> str:
    return keccak256(body).hex()


# --- signing and verification -------------------------------------------------------


def sign(key: PrivateKey, reading: Reading) -> SignedReading:
    body = encode(reading)
    return SignedReading(reading, body, sign_personal(key, body), body_hash(body))


def encode_envelope(body: bytes, sig: bytes) -> bytes:
    # The body travels as a JSON string holding the exact signed bytes. Its only
    # characters that need escaping are its quotes (strings in a body never hold '\\').
    return b'{"r":"' + body.replace(b'"', b'\\"') + b'","sig":"0x' + sig.hex().encode() + b'"}'


def parse_envelope(payload: bytes | str) -> tuple[bytes, bytes]:
    """Split a wire envelope into (body bytes, 65-byte signature)."""
    try:
        env = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise BadEnvelope(f"envelope is not JSON: {exc}") from None
    if not isinstance(env, dict) or set(env) != {"r", "sig"}:
        raise BadEnvelope('envelope must be an object with exactly "r" and "sig"')
    r, sig = env["r"], env["sig"]
    if not isinstance(r, str) or not isinstance(sig, str):
        raise BadEnvelope('"r" and "sig" must be strings')
    if not re.fullmatch(r"0x[0-9a-fA-F]{130}", sig):
        raise BadEnvelope('"sig" must be 0x followed by 130 hex characters (r, s, v)')
    try:
        body = r.encode("ascii")
    except UnicodeEncodeError:
        raise NonCanonicalBody("body is not ASCII") from None
    return body, bytes.fromhex(sig[2:])


def verify(body: bytes, sig: bytes) -> SignedReading:
    """Decode a body and check that its signature recovers to its `gw`."""
    reading = decode(body)
    try:
        signer = recover_personal(body, sig)
    except SignatureError as exc:
        raise BadSignature(f"seq {reading.seq}: {exc}") from None
    if signer != reading.gw:
        raise SignatureMismatch(
            f"seq {reading.seq}: signature recovers to {signer}, not to gateway {reading.gw}"
        )
    return SignedReading(reading, body, sig, body_hash(body))


def verify_envelope(payload: bytes | str) -> SignedReading:
    body, sig = parse_envelope(payload)
    return verify(body, sig)


# --- the chain ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last reading of a gateway's chain: what the next one must follow."""

    seq: int = 0
    hash: str = GENESIS_PREV


def next_reading(
    head: ChainHead, gw: str, dev: str, ts: int, m: dict[str, int], **optional: Any
) -> Reading:
    """The reading that continues `head` (seq + 1, prev = hash of the last body)."""
    return Reading(gw=gw, dev=dev, seq=head.seq + 1, ts=ts, prev=head.hash, m=m, **optional)


def check_follows(head: ChainHead, reading: Reading) -> None:
    """Raise unless `reading` is exactly the next link after `head`."""
    if reading.seq != head.seq + 1:
        raise SeqNotContiguous(
            f"gateway {reading.gw}: seq {reading.seq} does not follow seq {head.seq}"
        )
    if reading.prev != head.hash:
        raise PrevMismatch(
            f"gateway {reading.gw}: seq {reading.seq} names prev {reading.prev[:12]}…, "
            f"but seq {head.seq} hashes to {head.hash[:12]}…"
        )
