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


def decode_blocks(
    model_id: int, blocks: Sequence[Block], corrections: Corrections | None = None
) -> dict[str, int]:
    """Measurements from the responses of one poll of a model, in reading units."""
    if blocks and blocks[0][0] == 0:
        first = blocks[0][1]
        if not first or first[0] != model_id:
            got = first[0] if first else None
            raise SunSpecError(f"SunSpec model {model_id} expected, got ID {got}")
    points = raw_points(model_id, blocks, corrections, MEASURED_POINTS)
    out: dict[str, int] = {}

    def put(key: str, point: str, exponent: int) -> None:
        value = points.get(point)
        if value is not None:
            out[key] = _in_units(value, exponent)

    put("p_w", "W", 0)
    put("va", "VA", 0)
    put("f_mhz", "Hz", 3)
    put("i_ma", "A", 3)
    for phase, letter in (("1", "A"), ("2", "B"), ("3", "C")):
        put(f"v_dv_l{phase}", f"PhVph{letter}", 1)
        put(f"i_ma_l{phase}", f"Aph{letter}", 3)
    if model_id in INVERTER_INT or model_id in INVERTER_FLOAT:
        put("e_prod_wh", "WH", 0)
        st = points.get("St")
        if st is not None:
            out["st"] = _in_units(st, 0)
    else:
        put("e_imp_wh", "TotWhImp", 0)
        put("e_exp_wh", "TotWhExp", 0)
        for phase, letter in (("1", "A"), ("2", "B"), ("3", "C")):
            put(f"p_w_l{phase}", f"Wph{letter}", 0)
        put("v_dv", "PhV", 1)
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
