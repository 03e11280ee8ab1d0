"""The SunSpec register image of a simulated inverter (models 1 + 103) or meter (1 + 203).

Pure: state in, registers out. Offsets come from the same tables the gateway's decoder
uses; pysunspec2 (an independent implementation) checks both ends in the tests.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from gateway.drivers import sunspec

BASE = 40000
COMMON_LEN = 66
INVERTER_LEN = 50
METER_LEN = 105

# SunSpec operating states (model 103 St)
ST_SLEEPING = 2
ST_MPPT = 4

NOT_IMPLEMENTED_U16 = 0xFFFF
NOT_IMPLEMENTED_S16 = 0x8000


@dataclass(frozen=True)
class Electrical:
    """What the simulated device measures right now, in reading units."""

    p_w: int
    e_wh: int  # inverter: produced; meter: imported
    e_exp_wh: int = 0  # meter only
    v_dv: int = 2300
    f_mhz: int = 50000
    asleep: bool = False


def _str_regs(text: str, count: int) -> list[int]:
    raw = text.encode("ascii")[: count * 2].ljust(count * 2, b"\x00")
    return list(struct.unpack(f">{count}H", raw))


def _s16(value: int) -> int:
    return value & 0xFFFF


def _phase_current_ma(p_w: int, v_dv: int) -> int:
    """Current per phase of a balanced three-phase load, in 10 mA steps (exact at sf -2)."""
    return p_w * 10_000 // max(v_dv, 1) // 3 // 10 * 10


def common_model(manufacturer: str, model: str, version: str, serial: str, unit: int) -> list[int]:
    regs = [1, COMMON_LEN]
    regs += _str_regs(manufacturer, 16)
    regs += _str_regs(model, 16)
    regs += _str_regs("", 8)  # Opt
    regs += _str_regs(version, 8)
    regs += _str_regs(serial, 16)
    regs += [unit, 0x8000]  # DA, Pad
    return regs


def _exact(value: int, sf: int, exponent: int = 0, limit: int = 1 << 32) -> bool:
    e = sf + exponent
    raw = value // 10**e if e >= 0 else value * 10**-e
    back = raw * 10**e if e >= 0 else raw // 10**-e
    return back == value and -limit <= raw < limit


def _pick_sf(
    value: int, exponent: int, candidates: tuple[int, ...], limit: int, rng: random.Random | None
) -> tuple[int, int]:
    """(raw, sf) for a value; with `rng`, any scale factor that encodes it exactly."""
    exact = []
    for sf in candidates:
        e = sf + exponent
        raw = value // 10**e if e >= 0 else value * 10**-e
        back = raw * 10**e if e >= 0 else raw // 10**-e
        if back == value and -limit <= raw < limit:
            exact.append((raw, sf))
    if not exact:
        sf = candidates[0]
        e = sf + exponent
        raw = value // 10**e if e >= 0 else value * 10**-e
        return max(-limit, min(limit - 1, raw)), sf
    return rng.choice(exact) if rng else exact[0]


def inverter_model(s: Electrical, rng: random.Random | None = None) -> list[int]:
    """Model 103 (three-phase inverter), values on phase A (and B, C equal)."""
    regs = [NOT_IMPLEMENTED_U16] * (INVERTER_LEN + 2)
    regs[0], regs[1] = 103, INVERTER_LEN
    amps_ma = _phase_current_ma(s.p_w, s.v_dv)
    a_raw, a_sf = _pick_sf(amps_ma, 3, (-2, -3), 32768, rng)
    total_raw, _ = _pick_sf(amps_ma * 3, 3, (a_sf,), 32768, None)
    v_raw, v_sf = _pick_sf(s.v_dv, 1, (-1, -2), 32768, rng)
    w_raw, w_sf = _pick_sf(s.p_w, 0, (0, -1, 1), 32768, rng)
    hz_raw, hz_sf = _pick_sf(s.f_mhz, 3, (-2, -3), 32768, rng)
    p = sunspec.POINTS[103]

    def put(name: str, raw: int) -> None:
        regs[p[name][0]] = raw & 0xFFFF

    put("A", total_raw)
    put("AphA", a_raw)
    put("AphB", a_raw)
    put("AphC", a_raw)
    put("A_SF", a_sf)
    put("PhVphA", v_raw)
    put("PhVphB", v_raw)
    put("PhVphC", v_raw)
    put("V_SF", v_sf)
    put("W", _s16(w_raw))
    put("W_SF", w_sf)
    put("Hz", hz_raw)
    put("Hz_SF", hz_sf)
    put("VA", _s16(w_raw))
    put("VA_SF", w_sf)
    regs[20], regs[21] = 0, 0  # VAr, VAr_SF
    regs[22], regs[23] = _s16(1000), _s16(-3)  # PF 1.000
    # the energy counter's scale factor changes too: readers that keep one from an earlier
    # read see the counter jump tenfold (the field reports of readings jumping at sunrise)
    wh_raw, wh_sf = _pick_sf(s.e_wh, 0, (0, -1, 1), 1 << 32, rng)
    wh = wh_raw & 0xFFFFFFFF
    regs[24], regs[25] = wh >> 16, wh & 0xFFFF
    put("WH_SF", wh_sf)
    for off in range(27, 38):  # DC and temperatures: not implemented
        regs[off] = NOT_IMPLEMENTED_S16 if off in (31, 33, 34, 35, 36) else NOT_IMPLEMENTED_U16
    regs[28] = regs[30] = regs[32] = regs[37] = NOT_IMPLEMENTED_S16  # their scale factors
    put("St", ST_SLEEPING if s.asleep else ST_MPPT)
    regs[39] = 0  # StVnd
    for off in range(40, 52):
        regs[off] = 0  # event bitfields: none
    return regs


def meter_model(s: Electrical, rng: random.Random | None = None) -> list[int]:
    """Model 203 (three-phase wye meter), p_w > 0 = import."""
    regs = [NOT_IMPLEMENTED_S16] * (METER_LEN + 2)
    regs[0], regs[1] = 203, METER_LEN
    amps_ma = _phase_current_ma(abs(s.p_w), s.v_dv)
    sign = -1 if s.p_w < 0 else 1
    a_raw, a_sf = _pick_sf(amps_ma, 3, (-2, -3), 32768, rng)
    v_raw, v_sf = _pick_sf(s.v_dv, 1, (-1, -2), 32768, rng)
    w_raw, w_sf = _pick_sf(s.p_w, 0, (0, -1, 1), 32768, rng)
    ph_w_raw, _ = _pick_sf(s.p_w // 3, 0, (w_sf,), 32768, None)
    hz_raw, hz_sf = _pick_sf(s.f_mhz, 3, (-2, -3), 32768, rng)
    total_a_raw, _ = _pick_sf(amps_ma * 3, 3, (a_sf,), 32768, None)
    p = sunspec.POINTS[203]

    def put(name: str, raw: int) -> None:
        regs[p[name][0]] = raw & 0xFFFF

    put("A", sign * total_a_raw)
    for ph in "ABC":
        put(f"Aph{ph}", sign * a_raw)
        put(f"PhVph{ph}", v_raw)
    put("A_SF", a_sf)
    put("PhV", v_raw)
    put("V_SF", v_sf)
    put("Hz", hz_raw)
    put("Hz_SF", hz_sf)
    put("W", w_raw)
    put("WphA", ph_w_raw)
    put("WphB", ph_w_raw)
    put("WphC", ph_w_raw)
    put("W_SF", w_sf)
    put("VA", abs(w_raw))
    put("VA_SF", w_sf)
    # one scale factor for both counters: one that encodes both exactly
    both = [sf for sf in (0, -1, 1) if _exact(s.e_wh, sf) and _exact(s.e_exp_wh, sf)]
    tot_sf = rng.choice(both) if rng and both else 0
    for name, value in (("TotWhExp", s.e_exp_wh), ("TotWhImp", s.e_wh)):
        off = p[name][0]
        raw, _ = _pick_sf(value, 0, (tot_sf,), 1 << 32, None)
        v = raw & 0xFFFFFFFF
        regs[off], regs[off + 1] = v >> 16, v & 0xFFFF
    put("TotWh_SF", tot_sf)
    for off in (40, 42, 44, 48, 50, 52):  # per-phase energies: not accumulated
        regs[off] = regs[off + 1] = 0
    for off in range(55, 105):  # VAh, VArh: not accumulated, their scale factors
        regs[off] = 0
    regs[71] = regs[104] = NOT_IMPLEMENTED_S16
    regs[105] = regs[106] = 0  # Evt
    return regs


def image(device: str, common: list[int], model: list[int]) -> list[int]:
    """The whole map from BASE: marker, common model, device model, end marker."""
    return [*sunspec.MARKER, *common, *model, sunspec.END_ID, 0]


def model_offset(device: str) -> int:
    """Offset of the device model's ID register from BASE."""
    return 2 + COMMON_LEN + 2
