"""What ingest decides about each message, without I/O.

Two steps, both pure:
- `classify` looks at one MQTT message alone: topic, size, JSON shape, canonical body,
  signature, enrolled gateway matching the topic, clock. The result is a `ReadingOk`, a
  `ClaimOk` or a `Rejected` with a stable reason code.
- `check_chain` places verified readings of one gateway among the ones already stored
  (whatever the arrival order): the same seq with the same body is a duplicate, with
  another body a fork; `prev` must be the hash of the stored seq - 1; energy counters of
  a device never go down, except across a flagged meter replacement. Missing seqs are
  not errors: they are gaps, visible until the missing readings arrive.

Reason codes (docs/ingest.md) are the `ReadingError.reason` codes of quartier.reading
plus the ones defined here.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from quartier import reading as rd
from quartier.claim import ClaimError, PeriodClaim, decode_claim_message, verify_claim
from quartier.intervals import ENERGY_REGISTERS, NO_ENERGY_FLAGS, REPLACEMENT_FLAG

# A reading envelope is its body (<= 2048 bytes, quartier.reading) with some quotes
# escaped plus a 132-character signature: 4 KiB is generous; a claim is ~600 bytes.
MAX_PAYLOAD = 4096
FUTURE_TOLERANCE_MS = 5 * 60 * 1000  # gateways sync with NTP; 5 min absorbs a bad RTC at boot

# Reasons defined here (the rest come from quartier.reading.ReadingError subclasses).
OVERSIZED = "oversized"
BAD_TOPIC = "bad_topic"
TOPIC_MISMATCH = "topic_mismatch"
UNKNOWN_GATEWAY = "unknown_gateway"
REVOKED = "revoked"
FUTURE_TS = "future_ts"
FORK = "fork"
PREV_MISMATCH = "prev_mismatch"
COUNTER_BACKWARDS = "counter_backwards"
CLAIM_MALFORMED = "claim_malformed"
CLAIM_BAD_SIGNATURE = "claim_bad_signature"
CLAIM_WRONG_COMMUNITY = "claim_wrong_community"


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    mid: int = 0


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    detail: str
    gw: str | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class ReadingOk:
    signed: rd.SignedReading


@dataclass(frozen=True, slots=True)
class ClaimOk:
    claim: PeriodClaim
    sig: bytes
    message: str


@dataclass(frozen=True, slots=True)
class GatewayState:
    """What classification needs to know of a gateway from the registry."""

    address: str
    revoked: bool


Verdict = ReadingOk | ClaimOk | Rejected


@dataclass(frozen=True, slots=True)
class Topics:
    community: str

    @property
    def prefix(self) -> str:
        return f"quartier/{self.community}/"

    def subscriptions(self, group: str = "ingest") -> list[str]:
        base = f"quartier/{self.community}/+"
        if not group:  # one worker on a broker without shared subscriptions (embedded amqtt)
            return [f"{base}/reading", f"{base}/claim"]
        return [f"$share/{group}/{base}/reading", f"$share/{group}/{base}/claim"]

    def live(self) -> str:
        return f"quartier/{self.community}/live"

    def parse(self, topic: str) -> tuple[str, str] | None:
        """(gateway as written in the topic, kind) or None if not one of ours."""
        prefix = self.prefix
        if not topic.startswith(prefix):
            return None
        rest = topic[len(prefix):].split("/")
        if len(rest) != 2 or rest[1] not in ("reading", "claim") or not rest[0]:
            return None
        return rest[0], rest[1]


def classify(
    msg: Message,
    topics: Topics,
    gateways: Mapping[str, GatewayState],
    now_ms: int,
    *,
    max_payload: int = MAX_PAYLOAD,
    future_tolerance_ms: int = FUTURE_TOLERANCE_MS,
) -> Verdict:
    """Everything that can be said of one message alone. `gateways` is keyed by address."""
    parsed = topics.parse(msg.topic)
    if parsed is None:
        return Rejected(BAD_TOPIC, f"topic {msg.topic[:120]!r} is not quartier/{topics.community}/<gateway>/reading|claim")
    topic_gw, kind = parsed
    if len(msg.payload) > max_payload:
        return Rejected(OVERSIZED, f"payload of {len(msg.payload)} bytes on {msg.topic}, at most {max_payload}")
    if kind == "claim":
        return _classify_claim(msg, topics, topic_gw, gateways)
    try:
        signed = rd.verify_envelope(msg.payload)
    except rd.ReadingError as exc:
        return Rejected(exc.reason, f"{msg.topic}: {exc}")
    r = signed.reading
    if topic_gw.lower() != r.gw.lower():
        return Rejected(TOPIC_MISMATCH, f"reading signed by {r.gw} was published under {topic_gw}", r.gw, r.seq)
    state = gateways.get(r.gw)
    if state is None:
        return Rejected(UNKNOWN_GATEWAY, f"gateway {r.gw} is not enrolled: quartier gateways enrol --address {r.gw} ...", r.gw, r.seq)
    if state.revoked:
        return Rejected(REVOKED, f"gateway {r.gw} is revoked", r.gw, r.seq)
    if r.ts > now_ms + future_tolerance_ms:
        return Rejected(FUTURE_TS, f"gateway {r.gw} seq {r.seq}: ts {r.ts} is {(r.ts - now_ms) // 1000} s in the future", r.gw, r.seq)
    return ReadingOk(signed)


def _classify_claim(msg: Message, topics: Topics, topic_gw: str, gateways: Mapping[str, GatewayState]) -> Verdict:
    try:
        claim, sig = decode_claim_message(msg.payload)
    except ClaimError as exc:
        return Rejected(CLAIM_MALFORMED, f"{msg.topic}: {exc}")
    try:
        verify_claim(claim, sig)
    except ClaimError as exc:
        return Rejected(CLAIM_BAD_SIGNATURE, str(exc), claim.gateway)
    if topic_gw.lower() != claim.gateway.lower():
        return Rejected(TOPIC_MISMATCH, f"claim of {claim.gateway} was published under {topic_gw}", claim.gateway)
    if claim.community != topics.community:
        return Rejected(CLAIM_WRONG_COMMUNITY, f"claim of {claim.gateway} names community {claim.community!r}, not {topics.community!r}", claim.gateway)
    state = gateways.get(claim.gateway)
    if state is None:
        return Rejected(UNKNOWN_GATEWAY, f"claim from gateway {claim.gateway}, which is not enrolled", claim.gateway)
    if state.revoked:
        return Rejected(REVOKED, f"claim from gateway {claim.gateway}, which is revoked", claim.gateway)
    return ClaimOk(claim, sig, msg.payload.decode("utf-8", "replace"))


# --- the chain ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    """What chain checks need of a stored (or just accepted) reading."""

    seq: int
    dev: str
    hash: str
    prev: str
    regs: Mapping[str, int]
    flags: tuple[str, ...] = ()
    meter: str | None = None

    @property
    def carries_energy(self) -> bool:
        return not self.flags or NO_ENERGY_FLAGS.isdisjoint(self.flags)

    @classmethod
    def of(cls, s: rd.SignedReading) -> Link:
        r = s.reading
        m = r.m
        regs = {k: m[k] for k in ENERGY_REGISTERS if k in m}
        return cls(r.seq, r.dev, s.body_hash, r.prev, regs, r.flags, r.meter)


@dataclass
class ChainResult:
    accepted: list[rd.SignedReading] = field(default_factory=list)
    duplicates: list[rd.SignedReading] = field(default_factory=list)
    rejected: list[tuple[rd.SignedReading, Rejected]] = field(default_factory=list)


def _replaced(later: Link, earlier: Link) -> bool:
    return REPLACEMENT_FLAG in later.flags or (
        later.meter is not None and earlier.meter is not None and later.meter != earlier.meter
    )


def _backwards(later: Link, earlier: Link) -> str | None:
    # `regs` holds only the registers present, in ENERGY_REGISTERS order (Link.of, store).
    before = earlier.regs
    for reg, b in later.regs.items():
        a = before.get(reg)
        if a is not None and b < a:
            return f"{reg} went from {a} at seq {earlier.seq} to {b} at seq {later.seq}"
    return None


class _Known:
    def __init__(self, links: Iterable[Link]) -> None:
        self.by_seq: dict[int, Link] = {}
        self.dev_seqs: dict[str, list[int]] = {}
        for link in links:
            self.add(link)

    def add(self, link: Link) -> None:
        if link.seq in self.by_seq:
            return
        self.by_seq[link.seq] = link
        if link.carries_energy and link.regs:
            bisect.insort(self.dev_seqs.setdefault(link.dev, []), link.seq)

    def energy_neighbours(self, dev: str, seq: int) -> tuple[Link | None, Link | None]:
        seqs = self.dev_seqs.get(dev, [])
        i = bisect.bisect_left(seqs, seq)
        before = self.by_seq[seqs[i - 1]] if i > 0 else None
        j = i + 1 if i < len(seqs) and seqs[i] == seq else i
        after = self.by_seq[seqs[j]] if j < len(seqs) else None
        return before, after


def check_chain(gw: str, candidates: Sequence[rd.SignedReading], known: Iterable[Link]) -> ChainResult:
    """Place one gateway's verified readings among its stored ones.

    `known` must hold every stored reading of `gw` with a seq from (lowest candidate - 1)
    to (highest + 1), and for each device the nearest stored reading carrying energy
    below and above that span.
    """
    state = _Known(known)
    out = ChainResult()
    for s in sorted(candidates, key=lambda c: c.reading.seq):
        r = s.reading
        link = Link.of(s)
        stored = state.by_seq.get(r.seq)
        if stored is not None:
            if stored.hash == link.hash:
                out.duplicates.append(s)
            else:
                out.rejected.append((s, Rejected(
                    FORK, f"gateway {gw} seq {r.seq}: another body ({stored.hash[:12]}…) is "
                    f"already stored for this seq, this one hashes to {link.hash[:12]}…", gw, r.seq)))
            continue
        pred = state.by_seq.get(r.seq - 1)
        if r.seq == 1 and r.prev != rd.GENESIS_PREV:
            out.rejected.append((s, Rejected(PREV_MISMATCH, f"gateway {gw} seq 1 must name prev 0…0, not {r.prev[:12]}…", gw, r.seq)))
            continue
        if pred is not None and pred.hash != r.prev:
            out.rejected.append((s, Rejected(
                PREV_MISMATCH, f"gateway {gw} seq {r.seq} names prev {r.prev[:12]}…, but the stored "
                f"seq {pred.seq} hashes to {pred.hash[:12]}…", gw, r.seq)))
            continue
        succ = state.by_seq.get(r.seq + 1)
        if succ is not None and succ.prev != link.hash:
            out.rejected.append((s, Rejected(
                FORK, f"gateway {gw} seq {r.seq}: the stored seq {succ.seq} follows another body "
                f"({succ.prev[:12]}…), not this one ({link.hash[:12]}…)", gw, r.seq)))
            continue
        if link.carries_energy and link.regs:
            before, after = state.energy_neighbours(r.dev, r.seq)
            problem = None
            if before is not None and not _replaced(link, before):
                problem = _backwards(link, before)
            if problem is None and after is not None and not _replaced(after, link):
                problem = _backwards(after, link)
            if problem is not None:
                out.rejected.append((s, Rejected(
                    COUNTER_BACKWARDS, f"gateway {gw} device {r.dev}: {problem} (a replaced meter "
                    f"must be flagged meter_replaced or carry a new meter id)", gw, r.seq)))
                continue
        state.add(link)
        out.accepted.append(s)
    return out
