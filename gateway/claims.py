"""Period claims: at the end of every settlement period, the gateway signs its totals.

The totals and the intervals root come from `quartier.intervals.gateway_period` over the
gateway's own readings, the very function the community server runs on the readings it
received, so both sides get the same integers. The gateway keeps the bodies of its
energy readings (the outbox's `energy` table) until the period they belong to is claimed.

A period is claimed once it has ended plus a grace time, so that every device has a
reading past the boundary to interpolate to (`select_period_readings` takes the first
reading at or after the end). A claim is stored in the outbox before it is published and
leaves it after PUBACK, like a reading; a period is never signed twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.config import ClaimsConfig
from gateway.outbox import Outbox
from quartier import intervals
from quartier import reading as rd
from quartier.claim import PeriodClaim, encode_claim_message, sign_claim
from quartier.keys import GatewayKey

log = logging.getLogger("quartier.gateway.claims")


def period_bounds(ts_s: int, period: str, timezone: str = "local") -> tuple[int, int]:
    """[start, end) in Unix seconds of the period containing `ts_s`.

    "daily" runs from local midnight to the next (23 or 25 hours on DST days: both are
    whole numbers of 15-minute intervals); "hourly" from one local hour to the next.
    """
    if timezone == "local":
        # Naive datetimes go through the C library's localtime/mktime, which know the
        # Pi's zone and its DST rules.
        dt = datetime.fromtimestamp(ts_s)
        tz = None
    else:
        tz = ZoneInfo(timezone)
        dt = datetime.fromtimestamp(ts_s, tz)
    if period == "daily":
        start = datetime.combine(dt.date(), time(0), tzinfo=tz)
        end = datetime.combine(dt.date() + timedelta(days=1), time(0), tzinfo=tz)
        return int(start.timestamp()), int(end.timestamp())
    if period == "hourly":
        start_s = int(dt.replace(minute=0, second=0, microsecond=0).timestamp())
        return start_s, start_s + 3600
    raise ValueError(f"unknown claim period {period!r} (daily or hourly)")


@dataclass(frozen=True)
class SignedClaim:
    claim: PeriodClaim
    signature: bytes
    payload: bytes


def make_claim(key: GatewayKey, community: str, bodies: list[bytes], start_s: int, end_s: int,
               step_s: int) -> SignedClaim | None:
    """The signed claim of a period from the bodies of the gateway's energy readings
    around it, or None when no reading covers the period."""
    readings = [rd.decode(b) for b in bodies]
    chosen = intervals.select_period_readings(readings, start_s, end_s)
    if not chosen:
        return None
    totals = intervals.gateway_period(chosen, start_s, end_s, step_s)
    claim = totals.claim(community, key.address, start_s, end_s)
    sig = sign_claim(key.private, claim)
    return SignedClaim(claim, sig, encode_claim_message(claim, sig))


class ClaimMaker:
    """Decides which periods are due and claims them. Used from the outbox's thread."""

    def __init__(self, cfg: ClaimsConfig, key: GatewayKey, community: str, grace_ms: int) -> None:
        self.cfg = cfg
        self.key = key
        self.community = community
        self.grace_ms = grace_ms

    def run(self, outbox: Outbox, now_ms: int) -> list[SignedClaim]:
        """Claim every period that has ended (plus grace) and is not claimed yet."""
        if not self.cfg.enabled:
            return []
        made: list[SignedClaim] = []
        while True:
            last_end_s = outbox.last_claim_end()
            if last_end_s is None:
                oldest = outbox.oldest_energy_ts()
                if oldest is None:
                    return made
                start_s, end_s = period_bounds(oldest // 1000, self.cfg.period, self.cfg.timezone)
            else:
                start_s, end_s = period_bounds(last_end_s, self.cfg.period, self.cfg.timezone)
            if end_s * 1000 + self.grace_ms > now_ms:
                return made
            rows = outbox.energy_rows(start_s * 1000, end_s * 1000)
            signed = make_claim(self.key, self.community, [r.body for r in rows],
                                start_s, end_s, self.cfg.interval_s)
            if signed is None:
                # Nothing covers this period (the gateway was off): record an empty marker
                # so that the next period follows; the server sees no claim for it.
                outbox.add_claim(start_s, end_s, b"")
                outbox.claim_acked([start_s])
            else:
                outbox.add_claim(start_s, end_s, signed.payload)
                made.append(signed)
                c = signed.claim
                log.info("event=claim_signed period_start=%d period_end=%d first_seq=%d "
                         "last_seq=%d imported_wh=%d exported_wh=%d produced_wh=%d",
                         c.period_start, c.period_end, c.first_seq, c.last_seq,
                         c.imported_wh, c.exported_wh, c.produced_wh)
            outbox.prune_energy(end_s * 1000)
