"""SunSpec Modbus register maps: a pure decoder, registers in, values out.

References: SunSpec Information Model Specification 1.x, models 1, 101–103, 111–113,
201–204, 211–214 (point offsets checked against pysunspec2's model definitions in the
tests). The map starts with the marker "SunS" (0x5375 0x6E53) at 40000, 0 or 50000 and
is a chain of models, each `ID, L, L registers of points`, ended by ID 0xFFFF.

Points are decoded with the scale factor from the same block of registers (never a cached
one): a scale factor that changes between two reads cannot mix with the other read's value.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
    "WH": (24, "acc32", "WH_SF"),
    "WH_SF": (26, "sf", None),
    "St": (38, "u16", None),
}
_INVERTER_FLOAT_POINTS: dict[str, Point] = {
    "A": (2, "f32", None),
    "AphA": (4, "f32", None),
    "AphB": (6, "f32", None),
    "AphC": (8, "f32", None),
    "PhVphA": (16, "f32", None),
    "PhVphB": (18, "f32", None),
    "PhVphC": (20, "f32", None),
    "W": (22, "f32", None),
    "Hz": (24, "f32", None),
    "VA": (26, "f32", None),
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


def _raw(regs: Sequence[int], offset: int, kind: str) -> float | int | None:
    """A point's raw value, or None when the device marks it not implemented."""
    if offset >= len(regs) or (kind in ("acc32", "f32") and offset + 1 >= len(regs)):
        return None
    r = regs[offset]
    if kind == "u16":
        return None if r == 0xFFFF else r
    if kind in ("s16", "sf"):
        if r == 0x8000:
            return None
        value = r - 0x10000 if r & 0x8000 else r
        if kind == "sf" and not -10 <= value <= 10:
            raise SunSpecError(f"SunSpec scale factor {value} outside -10..10")
        return value
    pair = (r << 16) | regs[offset + 1]
    if kind == "acc32":
        return pair
    (f,) = struct.unpack(">f", struct.pack(">I", pair))
    return None if math.isnan(f) or math.isinf(f) else f


def _scaled(value: float | int, sf: int, exponent: int) -> int:
    """value × 10^(sf + exponent) as an exact integer (round half to even)."""
    if isinstance(value, float):
        return round(value * 10**exponent)
    e = sf + exponent
    if e >= 0:
        return value * 10**e
    d = 10**-e
    q, r = divmod(value, d)
    if r * 2 > d or (r * 2 == d and q % 2):
        q += 1
    return q


def decode_points(model_id: int, regs: Sequence[int]) -> dict[str, int | float]:
    """Raw point values (scale factors not applied) of a model block from its ID register."""
    if not regs or regs[0] != model_id:
        raise SunSpecError(f"SunSpec model {model_id} expected, got ID {regs[0] if regs else None}")
    table = POINTS.get(model_id)
    if table is None:
        raise SunSpecError(f"SunSpec model {model_id} is not supported")
    out: dict[str, int | float] = {}
    for name, (offset, kind, _sf) in table.items():
        value = _raw(regs, offset, kind)
        if value is not None:
            out[name] = value
    return out


def _get(
    points: dict[str, int | float], name: str, sf_name: str | None, exponent: int
) -> int | None:
    value = points.get(name)
    if value is None:
        return None
    sf = 0
    if sf_name is not None and not isinstance(value, float):
        sf_value = points.get(sf_name)
        if sf_value is None:
            return None  # a value without its scale factor is meaningless
        sf = int(sf_value)
    return _scaled(value, sf, exponent)


def decode_model(model_id: int, regs: Sequence[int]) -> dict[str, int]:
    """Measurements from one model block (ID register first), in reading units."""
    points = decode_points(model_id, regs)
    table = POINTS[model_id]
    sf = {name: p[2] for name, p in table.items()}
    out: dict[str, int] = {}

    def put(key: str, point: str, exponent: int) -> None:
        value = _get(points, point, sf.get(point), exponent)
        if value is not None:
            out[key] = value

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
            out["st"] = int(st)
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
    check the map did not move), the points only when that fits, else chunks.
    """
    total = model.length + 2
    if total <= MAX_READ:
        return [(model.address, total)]
    if model.length <= MAX_READ:
        return [(model.address + 2, model.length)]
    plan = []
    addr, remaining = model.address + 2, model.length
    while remaining > 0:
        n = min(MAX_READ, remaining)
        plan.append((addr, n))
        addr += n
        remaining -= n
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
