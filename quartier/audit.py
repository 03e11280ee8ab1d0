"""Audit a log of envelopes: every signature, and each gateway's chain.

Used by `quartier verify`. Pure: lines in, a report out. Readings are taken in the order
given; each gateway's chain is then checked over the seqs seen:

- a *gap* is a run of missing seqs between two readings that arrived;
- a *fork* is two different bodies for one seq, or a reading whose `prev` is not the
  hash of the body at seq - 1;
- *out_of_order* lists readings that arrived after a higher seq of the same gateway
  (a reordered log; informational, since the chain itself may still be whole);
- an identical body seen twice is a *duplicate* (harmless: QoS 1 redelivers).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from quartier.reading import GENESIS_PREV, ReadingError, SignedReading, verify_envelope


@dataclass
class AuditReport:
    readings: int = 0
    valid: int = 0
    duplicates: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    forks: list[dict[str, Any]] = field(default_factory=list)
    out_of_order: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.invalid and not self.gaps and not self.forks

    def as_dict(self) -> dict[str, Any]:
        return {
            "readings": self.readings,
            "valid": self.valid,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "gaps": self.gaps,
            "forks": self.forks,
            "out_of_order": self.out_of_order,
            "ok": self.ok,
        }


def audit(lines: Iterable[str | bytes]) -> AuditReport:
    report = AuditReport()
    # gateway -> seq -> (body hash, prev, line)
    chains: dict[str, dict[int, tuple[str, str, int]]] = {}
    highest: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        report.readings += 1
        try:
            sr: SignedReading = verify_envelope(line)
        except ReadingError as exc:
            report.invalid.append({"line": lineno, "reason": f"{exc.reason}: {exc}"})
            continue
        report.valid += 1
        r = sr.reading
        seen = chains.setdefault(r.gw, {})
        if r.seq in seen:
            if seen[r.seq][0] == sr.body_hash:
                report.duplicates += 1
            else:
                report.forks.append(
                    {"gw": r.gw, "seq": r.seq, "lines": [seen[r.seq][2], lineno],
                     "reason": "two different bodies for one seq"}
                )
            continue
        if r.seq < highest.get(r.gw, 0):
            report.out_of_order.append({"gw": r.gw, "seq": r.seq, "line": lineno,
                                        "after_seq": highest[r.gw]})
        highest[r.gw] = max(highest.get(r.gw, 0), r.seq)
        seen[r.seq] = (sr.body_hash, r.prev, lineno)

    for gw, seen in chains.items():
        seqs = sorted(seen)
        if seqs[0] == 1 and seen[1][1] != GENESIS_PREV:
            report.forks.append({"gw": gw, "seq": 1, "lines": [seen[1][2]],
                                 "reason": "first reading does not start from the genesis prev"})
        for a, b in itertools.pairwise(seqs):
            if b != a + 1:
                report.gaps.append({"gw": gw, "after_seq": a, "next_seq": b})
            elif seen[b][1] != seen[a][0]:
                report.forks.append({"gw": gw, "seq": b, "lines": [seen[a][2], seen[b][2]],
                                     "reason": f"prev of seq {b} is not the hash of seq {a}"})
    return report
