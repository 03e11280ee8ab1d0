"""SunSpec Modbus register maps: a pure decoder, registers in, values out.

References: SunSpec Information Model Specification 1.x, models 1, 101–103, 111–113,
201–204, 211–214 (point offsets checked against pysunspec2's model definitions in the
tests). The map starts with the marker "SunS" (0x5375 0x6E53) at 40000, 0 or 50000 and
is a chain of models, each `ID, L, L registers of points`, ended by ID 0xFFFF.

Points are decoded with the scale factor from the same block of registers (never a cached
one): a scale factor that changes between two reads cannot mix with the other read's value.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from gateway.drivers.base import DeviceError, Measurement

MARKER = (0x5375, 0x6E53)  # "SunS"
BASE_ADDRESSES = (40000, 0, 50000)
END_ID = 0xFFFF
MAX_READ = 125  # Modbus: at most 125 registers per read holding registers request

INVERTER_INT = (101, 102, 103)
INVERTER_FLOAT = (111, 112, 113)
METER_INT = (201, 202, 203, 204)
METER_FLOAT = (211, 212, 213, 214)

# Operating states of inverter models (St): 1 off, 2 sleeping (night), 3 starting, 4 MPPT…
ST_OFF, ST_SLEEPING = 1, 2


class SunSpecError(DeviceError):
    kind = "sunspec"


# Point tables: name → (offset from the model's ID register, type, scale factor point).
# Types: u16, s16, acc32 (uint32), sf (int16 scale factor), f32, str (with length).
Point = tuple[int, str, str | None]

COMMON: dict[str, tuple[int, int]] = {  # name → (offset, length in registers)
    "Mn": (2, 16),
    "Md": (18, 16),
    "Opt": (34, 8),
    "Vr": (42, 8),
    "SN": (50, 16),
}

_INVERTER_INT_POINTS: dict[str, Point] = {
    "A": (2, "u16", "A_SF"),
    "AphA": (3, "u16", "A_SF"),
    "AphB": (4, "u16", "A_SF"),
    "AphC": (5, "u16", "A_SF"),
    "A_SF": (6, "sf", None),
    "PPVphAB": (7, "u16", "V_SF"),
    "PhVphA": (10, "u16", "V_SF"),
    "PhVphB": (11, "u16", "V_SF"),
    "PhVphC": (12, "u16", "V_SF"),
    "V_SF": (13, "sf", None),
    "W": (14, "s16", "W_SF"),
    "W_SF": (15, "sf", None),
    "Hz": (16, "u16", "Hz_SF"),
    "Hz_SF": (17, "sf", None),
    "VA": (18, "s16", "VA_SF"),
    "VA_SF": (19, "sf", None),
    "PF": (22, "s16", "PF_SF"),
    "PF_SF": (23, "sf", None),
    "WH": (24, "acc32", "WH_SF"),
    "WH_SF": (26, "sf", None),
    "St": (38, "u16", None),
}
_INVERTER_FLOAT_POINTS: dict[str, Point] = {
    "A": (2, "f32", None),
    "AphA": (4, "f32", None),
    "AphB": (6, "f32", None),
    "AphC": (8, "f32", None),
    "PPVphAB": (10, "f32", None),
    "PhVphA": (16, "f32", None),
    "PhVphB": (18, "f32", None),
    "PhVphC": (20, "f32", None),
    "W": (22, "f32", None),
    "Hz": (24, "f32", None),
    "VA": (26, "f32", None),
    "PF": (30, "f32", None),
    "WH": (32, "f32", None),
    "St": (48, "u16", None),
}
_METER_INT_POINTS: dict[str, Point] = {
    "A": (2, "s16", "A_SF"),
    "AphA": (3, "s16", "A_SF"),
    "AphB": (4, "s16", "A_SF"),
    "AphC": (5, "s16", "A_SF"),
    "A_SF": (6, "sf", None),
    "PhV": (7, "s16", "V_SF"),
    "PhVphA": (8, "s16", "V_SF"),
    "PhVphB": (9, "s16", "V_SF"),
    "PhVphC": (10, "s16", "V_SF"),
    "V_SF": (15, "sf", None),
    "Hz": (16, "s16", "Hz_SF"),
    "Hz_SF": (17, "sf", None),
    "W": (18, "s16", "W_SF"),
    "WphA": (19, "s16", "W_SF"),
    "WphB": (20, "s16", "W_SF"),
    "WphC": (21, "s16", "W_SF"),
    "W_SF": (22, "sf", None),
    "VA": (23, "s16", "VA_SF"),
    "VA_SF": (27, "sf", None),
    "PF": (33, "s16", "PF_SF"),
    "PF_SF": (37, "sf", None),
    "TotWhExp": (38, "acc32", "TotWh_SF"),
    "TotWhImp": (46, "acc32", "TotWh_SF"),
    "TotWh_SF": (54, "sf", None),
}
_METER_FLOAT_POINTS: dict[str, Point] = {
    "A": (2, "f32", None),
    "AphA": (4, "f32", None),
    "AphB": (6, "f32", None),
    "AphC": (8, "f32", None),
    "PhV": (10, "f32", None),
    "PhVphA": (12, "f32", None),
    "PhVphB": (14, "f32", None),
    "PhVphC": (16, "f32", None),
    "Hz": (26, "f32", None),
    "W": (28, "f32", None),
    "WphA": (30, "f32", None),
    "WphB": (32, "f32", None),
    "WphC": (34, "f32", None),
    "VA": (36, "f32", None),
    "PF": (52, "f32", None),
    "TotWhExp": (60, "f32", None),
    "TotWhImp": (68, "f32", None),
}

POINTS: dict[int, dict[str, Point]] = {}
for _mid in INVERTER_INT:
    POINTS[_mid] = _INVERTER_INT_POINTS
for _mid in INVERTER_FLOAT:
    POINTS[_mid] = _INVERTER_FLOAT_POINTS
for _mid in METER_INT:
    POINTS[_mid] = _METER_INT_POINTS
for _mid in METER_FLOAT:
    POINTS[_mid] = _METER_FLOAT_POINTS

# Lengths (L) from the specification, to recognise a model that lies about its length.
LENGTHS: dict[int, int] = {
    1: 66,
    **{m: 50 for m in INVERTER_INT},
    **{m: 60 for m in INVERTER_FLOAT},
}
LENGTHS.update({m: 105 for m in METER_INT})
LENGTHS.update({m: 124 for m in METER_FLOAT})

# Integer and float variants of the same model, to fall back when a device answers the other.
FLOAT_TWIN = {101: 111, 102: 112, 103: 113, 201: 211, 202: 212, 203: 213, 204: 214}
FLOAT_TWIN.update({v: k for k, v in list(FLOAT_TWIN.items())})


@dataclass(frozen=True)
class ModelRef:
    """Where a model sits in the map: address of its ID register and its length L."""

    id: int
    address: int
    length: int


@dataclass(frozen=True)
class Identity:
    manufacturer: str | None
    model: str | None
    version: str | None
    serial: str | None


def is_marker(regs: Sequence[int]) -> bool:
    return len(regs) >= 2 and (regs[0], regs[1]) == MARKER


def decode_string(regs: Sequence[int]) -> str | None:
    raw = b"".join(struct.pack(">H", r & 0xFFFF) for r in regs)
    text = raw.split(b"\x00", 1)[0].decode("latin-1").strip()
    return text or None


def decode_common(regs: Sequence[int]) -> Identity:
    """Model 1 from its ID register on (at least 66 registers)."""
    if len(regs) < 66 or regs[0] != 1:
        raise SunSpecError(f"SunSpec common model expected at ID 1, got {list(regs[:2])}")
    fields = {name: decode_string(regs[o : o + n]) for name, (o, n) in COMMON.items()}
    return Identity(fields["Mn"], fields["Md"], fields["Vr"], fields["SN"])


@dataclass(frozen=True)
class Correction:
    """How to read one point of a device that bends SunSpec (a vendor quirk, see quirk.py).

    Register-level corrections (`offset`, `word_order`, `sf`) change how the point is taken
    from the response; value-level ones (`mul`/`div`, `absolute`) are applied after scaling.
    """

    point: str
    offset: int = 0  # the device puts the point this many registers away from the model's place
    sf: int | None = None  # ignore the device's scale factor register for this point, use this
    word_order: str = "big"  # "little": a 32-bit point comes low word first
    mul: int = 1  # value x mul / div after scaling: a wrong unit, a power factor as a fraction
    div: int = 1
    absolute: bool = False  # a counter the device reports negative


Corrections = Mapping[str, Correction]
# One response: (offset of its first register from the model's ID register, its registers).
Block = tuple[int, Sequence[int]]


def _width(kind: str) -> int:
    return 2 if kind in ("acc32", "f32") else 1


def _raw(regs: Sequence[int], at: int, kind: str, word_order: str = "big") -> float | int | None:
    """A point's raw value at index `at`, or None when the device marks it not implemented."""
    if at < 0 or at + _width(kind) > len(regs):
        return None
    r = regs[at]
    if kind == "u16":
        return None if r == 0xFFFF else r
    if kind in ("s16", "sf"):
        if r == 0x8000:
            return None
        value = r - 0x10000 if r & 0x8000 else r
        if kind == "sf" and not -10 <= value <= 10:
            raise SunSpecError(f"SunSpec scale factor {value} outside -10..10")
        return value
    hi, lo = (regs[at + 1], r) if word_order == "little" else (r, regs[at + 1])
    pair = (hi << 16) | lo
    if kind == "acc32":
        return pair
    (f,) = struct.unpack(">f", struct.pack(">I", pair))
    return None if math.isnan(f) or math.isinf(f) else f


def _scale_int(raw: int, exponent: int) -> int:
    """raw x 10^exponent as an exact integer, rounding half to even.

    Integer points are scaled with integer arithmetic: exact, and about twenty times
    cheaper than going through Fraction on a path taken for every point of every poll.
    """
    if exponent >= 0:
        return raw * 10**exponent
    div = 10**-exponent
    q, r = divmod(raw, div)
    twice = 2 * r
    if twice > div or (twice == div and q % 2):
        q += 1
    return q


def _locate(
    blocks: Sequence[Block], offset: int, width: int, sf_offset: int | None = None
) -> int | None:
    """Index of the first response holding registers [offset, offset + width) and, when
    given, the scale factor register too; None if no response has both."""
    for i, (start, regs) in enumerate(blocks):
        inside = start <= offset and offset + width <= start + len(regs)
        if inside and (sf_offset is None or start <= sf_offset < start + len(regs)):
            return i
    return None


# A point as read: its raw value, the power of ten of its scale factor (0 when it has
# none) and the vendor correction that applies to it, if any.
RawPoint = tuple[int | float, int, "Correction | None"]


def raw_points(
    model_id: int,
    blocks: Sequence[Block],
    corrections: Corrections | None = None,
    names: Iterable[str] | None = None,
) -> dict[str, RawPoint]:
    """The points the responses cover (all, or only `names`), unscaled, each with the
    scale factor register **of the same response** (never one read earlier): a point
    whose scale factor is not in its response, or not implemented, is left out rather
    than guessed."""
    corr = corrections or {}
    out: dict[str, RawPoint] = {}
    for name, offset, kind, sf_offset in _plan(model_id, None if names is None else tuple(names)):
        c = corr.get(name)
        where = offset + (c.offset if c else 0)
        width = 2 if kind in ("acc32", "f32") else 1
        needs_sf = sf_offset is not None and kind != "f32" and (c is None or c.sf is None)
        i = _locate(blocks, where, width, sf_offset if needs_sf else None)
        if i is None and needs_sf:
            i = _locate(blocks, where, width)  # present, but not with its factor
            if i is not None:
                continue
        if i is None:
            continue
        start, regs = blocks[i]
        raw = _raw(regs, where - start, kind, c.word_order if c else "big")
        if raw is None:
            continue
        sf_power = 0
        if sf_offset is not None and not isinstance(raw, float):
            if c is not None and c.sf is not None:
                sf: int | float | None = c.sf
            else:
                sf_at = sf_offset - start
                sf = _raw(regs, sf_at, "sf") if 0 <= sf_at < len(regs) else None
            if sf is None:
                continue  # a value without its scale factor is meaningless
            sf_power = int(sf)
        out[name] = (raw, sf_power, c)
    return out


@functools.lru_cache(maxsize=256)
def _plan(model_id: int, names: tuple[str, ...] | None) -> tuple[tuple[str, int, str, int | None], ...]:
    """(name, offset, kind, offset of its scale factor) of the points to decode, worked
    out once per model: decoding runs on every poll."""
    table = POINTS.get(model_id)
    if table is None:
        raise SunSpecError(f"SunSpec model {model_id} is not supported")
    wanted = table.keys() if names is None else [n for n in names if n in table]
    return tuple(
        (name, table[name][0], table[name][1],
         table[table[name][2]][0] if table[name][2] is not None else None)  # type: ignore[index]
        for name in wanted if table[name][1] != "sf"
    )


def _exact(point: RawPoint) -> Fraction:
    raw, sf_power, c = point
    value = Fraction(raw) * Fraction(10) ** sf_power
    if c is not None:
        value = value * c.mul / c.div
        if c.absolute:
            value = abs(value)
    return value


def scaled_points(
    model_id: int, blocks: Sequence[Block], corrections: Corrections | None = None
) -> dict[str, Fraction]:
    """Every point the responses cover, in SunSpec units (W, Wh, V, A, Hz, Pct), exactly."""
    return {name: _exact(p) for name, p in raw_points(model_id, blocks, corrections).items()}


def _in_units(point: RawPoint, exponent: int) -> int:
    """A point in reading units (x 10^exponent), exactly, rounding half to even."""
    raw, sf_power, c = point
    if c is None and not isinstance(raw, float):
        return _scale_int(raw, sf_power + exponent)
    return round(_exact(point) * 10**exponent)


def decode_points(model_id: int, regs: Sequence[int]) -> dict[str, Fraction]:
    """Scaled points of one model block read from its ID register."""
    if not regs or regs[0] != model_id:
        raise SunSpecError(f"SunSpec model {model_id} expected, got ID {regs[0] if regs else None}")
    return scaled_points(model_id, [(0, regs)])


# The points decode_blocks turns into measurements: only these are read on each poll.
MEASURED_POINTS = (
    "W", "VA", "Hz", "A", "PhVphA", "PhVphB", "PhVphC", "AphA", "AphB", "AphC", "WH", "St",
    "TotWhImp", "TotWhExp", "WphA", "WphB", "WphC", "PhV",
)


# Where each measured point goes in a reading: (key, power of ten of the reading unit).
_COMMON_KEYS: dict[str, tuple[str, int]] = {
    "W": ("p_w", 0), "VA": ("va", 0), "Hz": ("f_mhz", 3), "A": ("i_ma", 3),
    "PhVphA": ("v_dv_l1", 1), "PhVphB": ("v_dv_l2", 1), "PhVphC": ("v_dv_l3", 1),
    "AphA": ("i_ma_l1", 3), "AphB": ("i_ma_l2", 3), "AphC": ("i_ma_l3", 3),
}
_INVERTER_KEYS = {**_COMMON_KEYS, "WH": ("e_prod_wh", 0), "St": ("st", 0)}
_METER_KEYS = {
    **_COMMON_KEYS, "TotWhImp": ("e_imp_wh", 0), "TotWhExp": ("e_exp_wh", 0),
    "WphA": ("p_w_l1", 0), "WphB": ("p_w_l2", 0), "WphC": ("p_w_l3", 0), "PhV": ("v_dv", 1),
}

# One compiled point: (reading key, exponent, response index, register index, kind,
# little-endian words, scale factor register index or None, fixed scale factor or None,
# correction). Points that no response holds (or not with their factor) are left out.
_Step = tuple[str, int, int, int, str, bool, int | None, int | None, "Correction | None"]
_steps_cache: dict[tuple[object, ...], tuple[_Step, ...]] = {}


def _compile(model_id: int, layout: tuple[tuple[int, int], ...],
             corrections: Corrections) -> tuple[_Step, ...]:
    """The decoding of one poll worked out from where its responses lie, as `raw_points`
    does point by point: done once per model, response layout and corrections."""
    keys = _INVERTER_KEYS if model_id in INVERTER_INT or model_id in INVERTER_FLOAT \
        else _METER_KEYS
    blocks = [(start, range(n)) for start, n in layout]  # lengths only, for _locate
    steps: list[_Step] = []
    for name, offset, kind, sf_offset in _plan(model_id, MEASURED_POINTS):
        c = corrections.get(name)
        where = offset + (c.offset if c else 0)
        width = 2 if kind in ("acc32", "f32") else 1
        needs_sf = sf_offset is not None and kind != "f32" and (c is None or c.sf is None)
        i = _locate(blocks, where, width, sf_offset if needs_sf else None)
        if i is None:
            continue
        start = blocks[i][0]
        sf_at: int | None = None
        fixed: int | None = None
        if sf_offset is not None and kind != "f32":
            if c is not None and c.sf is not None:
                fixed = c.sf
            else:
                sf_at = sf_offset - start
        key, exponent = keys.get(name, (name, 0))
        steps.append((key, exponent, i, where - start, kind,
                      c is not None and c.word_order == "little", sf_at, fixed, c))
    return tuple(steps)


def decode_blocks(
    model_id: int, blocks: Sequence[Block], corrections: Corrections | None = None
) -> dict[str, int]:
    """Measurements from the responses of one poll of a model, in reading units.

    The same values as scaling `raw_points` of the measured points, with the work that
    does not depend on the registers' values (where each point and its factor lie) done
    once: decoding runs on every poll of every device.
    """
    if blocks and blocks[0][0] == 0:
        first = blocks[0][1]
        if not first or first[0] != model_id:
            got = first[0] if first else None
            raise SunSpecError(f"SunSpec model {model_id} expected, got ID {got}")
    corr = corrections or {}
    ck = (model_id, tuple((start, len(regs)) for start, regs in blocks),
          tuple(corr.items()) if corr else ())
    steps = _steps_cache.get(ck)
    if steps is None:
        steps = _compile(model_id, ck[1], corr)  # type: ignore[arg-type]
        if len(_steps_cache) < 256:
            _steps_cache[ck] = steps
    out: dict[str, int] = {}
    for key, exponent, bi, at, kind, little, sf_at, fixed, c in steps:
        regs = blocks[bi][1]
        r = regs[at]
        if kind == "u16":
            if r == 0xFFFF:
                continue
        elif kind == "s16":
            if r == 0x8000:
                continue
            if r & 0x8000:
                r -= 0x10000
        elif kind == "acc32":
            r = (regs[at + 1] << 16) | r if little else (r << 16) | regs[at + 1]
        else:  # f32: no scale factor
            f = _raw(regs, at, kind, "little" if little else "big")
            if f is not None:
                out[key] = _in_units((f, 0, c), exponent)
            continue
        if sf_at is not None:
            sf = regs[sf_at]
            if sf == 0x8000:
                continue  # a value without its scale factor is meaningless
            if sf & 0x8000:
                sf -= 0x10000
            if not -10 <= sf <= 10:
                raise SunSpecError(f"SunSpec scale factor {sf} outside -10..10")
        else:
            sf = fixed or 0
        if c is None:
            e = sf + exponent
            out[key] = _scale_int(r, e) if e else r
        else:
            out[key] = _in_units((r, sf, c), exponent)
    if "v_dv" not in out and "v_dv_l1" in out:
        out["v_dv"] = out["v_dv_l1"]
    # phases B and C of a single-phase model are "not implemented": dropped above
    return out


def decode_model(
    model_id: int, regs: Sequence[int], corrections: Corrections | None = None
) -> dict[str, int]:
    """Measurements from one model block (ID register first), in reading units."""
    if not regs or regs[0] != model_id:
        raise SunSpecError(f"SunSpec model {model_id} expected, got ID {regs[0] if regs else None}")
    return decode_blocks(model_id, [(0, regs)], corrections)


def to_measurement(
    values: dict[str, int], identity: Identity | None, role_hint: str | None = None
) -> Measurement:
    """Wrap decoded values; an inverter's operating state becomes a flag, not a value."""
    vals = dict(values)
    flags: tuple[str, ...] = ()
    st = vals.pop("st", None)
    if st in (ST_OFF, ST_SLEEPING):
        flags = ("asleep",)
    return Measurement(values=vals, meter_id=identity.serial if identity else None, flags=flags)


def read_plan(model: ModelRef) -> list[tuple[int, int]]:
    """(address, count) requests to read one model with as few requests as possible.

    The whole block with its header when it fits in 125 registers (the ID lets the reader
    check the map did not move), the points only when that fits, else requests split so
    that every point travels with its scale factor (`split_points`).
    """
    total = model.length + 2
    if total <= MAX_READ:
        return [(model.address, total)]
    if model.length <= MAX_READ:
        return [(model.address + 2, model.length)]
    table = POINTS.get(model.id)
    if table is not None:
        return [(model.address + lo, n) for lo, n in split_points(table, total)]
    plan = []
    addr, remaining = model.address + 2, model.length
    while remaining > 0:
        n = min(MAX_READ, remaining)
        plan.append((addr, n))
        addr += n
        remaining -= n
    return plan


def split_points(table: Mapping[str, Point], end: int) -> list[tuple[int, int]]:
    """(offset, count) requests covering a point table, none over 125 registers, each
    point in the same request as its scale factor.

    A point and its scale factor form one unbreakable span; spans are packed greedily in
    address order. Requests may overlap when a span starts inside the previous request
    but does not fit in it: a few registers read twice, never a point without its factor.
    """
    spans: list[tuple[int, int]] = []
    for offset, kind, sf_name in table.values():
        lo, hi = offset, offset + _width(kind)
        if sf_name is not None:
            sf_offset = table[sf_name][0]
            lo, hi = min(lo, sf_offset), max(hi, sf_offset + 1)
        if hi <= end:
            spans.append((lo, hi))
    plan: list[tuple[int, int]] = []
    cur: list[int] | None = None
    for lo, hi in sorted(spans):
        if hi - lo > MAX_READ:
            raise SunSpecError(f"points at {lo}..{hi} and their scale factor span over 125 registers")
        if cur is not None and max(cur[1], hi) - cur[0] <= MAX_READ:
            cur[1] = max(cur[1], hi)
            continue
        if cur is not None:
            plan.append((cur[0], cur[1] - cur[0]))
        cur = [lo, hi]
    if cur is not None:
        plan.append((cur[0], cur[1] - cur[0]))
    return plan


def walk(read: Callable[[int, int], list[int]], base: int, limit: int = 64) -> list[ModelRef]:
    """Follow the model chain from a base address whose marker has been checked."""
    models: list[ModelRef] = []
    addr = base + 2
    for _ in range(limit):
        head = read(addr, 2)
        if len(head) < 2 or head[0] == END_ID or head[0] == 0:
            return models
        models.append(ModelRef(head[0], addr, head[1]))
        addr += 2 + head[1]
    raise SunSpecError(f"SunSpec model chain at {base} does not end after {limit} models")


def encode_scaled(value: int, exponent: int, sf: int) -> int:
    """Inverse of the decoder for the simulator: reading units → raw register at scale sf."""
    e = sf + exponent
    return value // 10**e if e >= 0 else value * 10**-e
