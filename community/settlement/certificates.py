"""Hourly production certificates (EnergyTag-style granular certificates).

A certificate is one JSON file per producing meter point and hour. It carries everything
needed to check it against the chain alone, without the community's database:

- the gateway's signed period claim (EIP-712) and its signature;
- the hour's interval values and, for each, its Merkle proof to the claim's
  `intervalsRoot` (quartier.claim leaves);
- the proof of the gateway's record `leaf(gateway, intervalsRoot)` to the period's
  on-chain root, and the proofs of the member's allocation records of the hour (given
  locally, to grid, to whom), see `batch.py`;
- the ledger address, period id, and settlement transaction.

`verify_certificate` checks, and names each failure: the claim's signature is the
gateway's; the certified Wh are the sum of the hour's exports; each interval value proves
to the signed root; the gateway record proves to the root stored on chain for the period;
the allocation records prove too and add up; the gateway was registered and active at
that hour, for the certified account.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

from community.settlement.batch import allocation_leaf, gateway_leaf
from quartier import merkle
from quartier.claim import ClaimError, IntervalValues, PeriodClaim, verify_claim
from quartier.hashing import to_checksum_address

VERSION = 1
TECHNOLOGY = "solar-pv"
HOUR = 3600


class ChainView(Protocol):
    """What verification reads from the chain (the chain client provides it)."""

    def intervals_root(self, period_id: int) -> bytes | None: ...

    def gateway_at(self, gateway: str, ts: int) -> Any: ...


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def build_certificates(
    record: Mapping[str, Any],
    meter_point: str,
    start: int,
    end: int,
    *,
    period_start: int,
    ledger: str,
    tx_hash: str | None,
    chain_id: int | None = None,
) -> list[dict[str, Any]]:
    """Certificates of `meter_point` for the hours of [start, end) in one settled period,
    from the period's stored record (run.batch_record)."""
    leaves = [bytes.fromhex(x[2:]) for x in record["leaves"]]
    index = record["index"]
    accounts = record.get("accounts", {})
    out = []
    for g in record["gateways"]:
        if g["meter_point"] != meter_point:
            continue
        claim = PeriodClaim.from_dict(g["claim"])
        ivs = [IntervalValues(*iv) for iv in g["intervals"]]
        claim_leaves = [iv.leaf() for iv in ivs]
        gw_proof = merkle.proof(leaves, index[f"gateway|{g['gateway']}"])
        hours = sorted({iv.start - iv.start % HOUR for iv in ivs})
        for hour in hours:
            if not (start <= hour < end):
                continue
            picked = [(k, iv) for k, iv in enumerate(ivs) if hour <= iv.start < hour + HOUR]
            wh = sum(iv.exported_wh for _, iv in picked)
            if wh <= 0:
                continue
            allocations = []
            for _, iv in picked:
                key = f"allocation|{g['member']}|{iv.start}"
                if key not in index:
                    continue
                a = record["allocations"][key]
                allocations.append(
                    {
                        "interval_start": iv.start,
                        "given_wh": a["given"],
                        "to_grid_wh": a["to_grid"],
                        "consumers": a["flows"],
                        "proof": [_hex(p) for p in merkle.proof(leaves, index[key])],
                    }
                )
            body = {
                "version": VERSION,
                "meter_point": meter_point,
                "gateway": g["gateway"],
                "member": g["member"],
                "account": accounts.get(g["member"]),
                "community": claim.community,
                "technology": TECHNOLOGY,
                "hour_start": hour,
                "hour_end": hour + HOUR,
                "wh": wh,
                "produced_wh": sum(iv.produced_wh for _, iv in picked),
                "intervals": [
                    {
                        "start": iv.start,
                        "imported_wh": iv.imported_wh,
                        "exported_wh": iv.exported_wh,
                        "produced_wh": iv.produced_wh,
                        "proof": [_hex(p) for p in merkle.proof(claim_leaves, k)],
                    }
                    for k, iv in picked
                ],
                "allocations": allocations,
                "claim": claim.as_dict(),
                "claim_signature": g["sig"],
                "gateway_record_proof": [_hex(p) for p in gw_proof],
                "ledger": ledger,
                "chain_id": chain_id,
                "period_id": period_start,
                "settlement_tx": tx_hash,
            }
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            body["id"] = f"QGC-{meter_point}-{hour}-{digest[:12]}"
            out.append(body)
    return out


def verify_certificate(cert: Mapping[str, Any], chain: ChainView) -> dict[str, Any]:
    """A verdict `{"valid": bool, "reasons": [...], "checks": {...}}`."""
    reasons: list[str] = []
    checks: dict[str, bool] = {}

    def check(name: str, ok: bool, why: str) -> None:
        checks[name] = ok
        if not ok:
            reasons.append(why)

    try:
        claim = PeriodClaim.from_dict(dict(cert["claim"]))
        sig = bytes.fromhex(str(cert["claim_signature"])[2:])
        gateway = to_checksum_address(str(cert["gateway"]))
        period_id = int(cert["period_id"])
        hour = int(cert["hour_start"])
        intervals = list(cert["intervals"])
    except (KeyError, TypeError, ValueError, ClaimError) as exc:
        return {"valid": False, "reasons": [f"malformed certificate: {exc}"], "checks": {}}

    try:
        verify_claim(claim, sig)
        signed = True
    except ClaimError:
        signed = False
    check("claim_signature", signed and claim.gateway == gateway,
          f"the claim is not signed by the certificate's gateway {gateway}")  # fmt: skip
    check("period", claim.period_start == period_id and claim.period_start <= hour < claim.period_end,
          "the hour is not in the claim's period")  # fmt: skip

    ok_proofs = True
    exported = 0
    for iv in intervals:
        values = IntervalValues(
            iv["start"], iv["imported_wh"], iv["exported_wh"], iv["produced_wh"]
        )
        proof = [bytes.fromhex(p[2:]) for p in iv["proof"]]
        if not (hour <= values.start < hour + HOUR) or not merkle.verify(
            proof, claim.intervals_root, values.leaf()
        ):
            ok_proofs = False
        exported += values.exported_wh
    check("interval_proofs", ok_proofs and bool(intervals),
          "an interval value does not prove to the gateway's signed intervals root")  # fmt: skip
    check("wh", exported == cert.get("wh"),
          f"certified {cert.get('wh')} Wh but the hour's signed exports add up to {exported} Wh")  # fmt: skip

    root = chain.intervals_root(period_id)
    check("settled_on_chain", root is not None, f"period {period_id} is not settled on the ledger")
    if root is not None:
        proof = [bytes.fromhex(p[2:]) for p in cert.get("gateway_record_proof", [])]
        check("gateway_record_proof", merkle.verify(proof, root, gateway_leaf(gateway, claim.intervals_root)),
              "the gateway's claim is not in the period's on-chain root")  # fmt: skip
        ok_alloc = True
        for a in cert.get("allocations", []):
            flows = [(str(c), int(w)) for c, w in a["consumers"]]
            leaf = allocation_leaf(str(cert["member"]), int(a["interval_start"]),
                                   int(a["given_wh"]), int(a["to_grid_wh"]), flows)  # fmt: skip
            p = [bytes.fromhex(x[2:]) for x in a["proof"]]
            if not merkle.verify(p, root, leaf) or sum(w for _, w in flows) != a["given_wh"]:
                ok_alloc = False
        check("allocation_proofs", ok_alloc,
              "an allocation record does not prove to the period's on-chain root")  # fmt: skip

    info = chain.gateway_at(gateway, hour)
    registered = bool(getattr(info, "active", False))
    account = cert.get("account")
    if registered and account:
        registered = to_checksum_address(str(info.member)) == to_checksum_address(str(account))
    check("gateway_registered", registered,
          f"gateway {gateway} was not registered and active for the certified account at {hour}")  # fmt: skip
    return {"valid": not reasons, "id": cert.get("id"), "reasons": reasons, "checks": checks}
