"""Non-SunSpec Modbus devices described by a register-map profile (a TOML file).

A profile is data, not code: adding a device is adding a file in `profiles/` and a test.
Each point gives an address, a type, the word order and an exact integer scaling
(`raw * mul / div`) to a reading unit. See docs/devices.md for the format.
"""

from __future__ import annotations

import math
import struct
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from gateway.drivers.base import DeviceError, Measurement
from gateway.drivers.modbus_line import ModbusLine

MAX_READ = 125
_WIDTH = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2, "uint64": 4}


class ProfileError(ValueError):
    """A profile file that cannot be used (names the file and the point)."""


@dataclass(frozen=True)
class ProfilePoint:
    name: str
    address: int
    type: str
    mul: int = 1
    div: int = 1
    count: int = 1  # strings: registers

    @property
    def width(self) -> int:
        return self.count if self.type == "string" else _WIDTH[self.type]


@dataclass(frozen=True)
class Profile:
    name: str
    manufacturer: str
    model: str
    table: str
    word_order: str
    points: tuple[ProfilePoint, ...]
    identity: dict[str, ProfilePoint] = field(default_factory=dict)
    merge_gap: int = 0


def _point(where: str, name: str, raw: dict[str, object]) -> ProfilePoint:
    try:
        address = int(raw["address"])  # type: ignore[call-overload]
        kind = str(raw["type"])
    except KeyError as exc:
        raise ProfileError(f"{where}: point {name!r} lacks {exc.args[0]!r}") from None
    if kind not in _WIDTH and kind != "string":
        raise ProfileError(f"{where}: point {name!r} has unknown type {kind!r}")
    return ProfilePoint(
        name=name,
        address=address,
        type=kind,
        mul=int(raw.get("mul", 1)),  # type: ignore[call-overload]
        div=int(raw.get("div", 1)),  # type: ignore[call-overload]
        count=int(raw.get("count", 1)),  # type: ignore[call-overload]
    )


def parse_profile(name: str, text: str) -> Profile:
    where = f"profile {name}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{where}: {exc}") from None
    dev = data.get("device", {})
    points = tuple(
        _point(where, str(p.get("name", f"#{i}")), p) for i, p in enumerate(data.get("point", []))
    )
    if not points:
        raise ProfileError(f"{where}: no [[point]]")
    identity = {k: _point(where, k, v) for k, v in data.get("identity", {}).items()}
    table = dev.get("table", "holding")
    if table not in ("holding", "input"):
        raise ProfileError(f"{where}: table must be 'holding' or 'input', not {table!r}")
    word_order = dev.get("word_order", "big")
    if word_order not in ("big", "little"):
        raise ProfileError(f"{where}: word_order must be 'big' or 'little', not {word_order!r}")
    return Profile(
        name=name,
        manufacturer=str(dev.get("manufacturer", "")),
        model=str(dev.get("model", "")),
        table=table,
        word_order=word_order,
        points=points,
        identity=identity,
        merge_gap=int(dev.get("merge_gap", 0)),
    )


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (e.g. "huawei-sun2000") or a TOML file path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        return parse_profile(path.stem, path.read_text())
    shipped = resources.files("gateway.drivers") / "profiles" / f"{name_or_path}.toml"
    if not shipped.is_file():
        raise ProfileError(
            f"no profile {name_or_path!r}: shipped profiles are {', '.join(shipped_profiles())}"
        )
    return parse_profile(name_or_path, shipped.read_text())


def shipped_profiles() -> list[str]:
    folder = resources.files("gateway.drivers") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def plan_reads(points: list[ProfilePoint], merge_gap: int) -> list[tuple[int, int]]:
    """Contiguous (address, count) requests covering the points, each ≤ 125 registers."""
    spans = sorted((p.address, p.address + p.width) for p in points)
    plan: list[list[int]] = []
    for start, end in spans:
        if plan and start - plan[-1][1] <= merge_gap and end - plan[-1][0] <= MAX_READ:
            plan[-1][1] = max(plan[-1][1], end)
        else:
            plan.append([start, end])
    return [(s, e - s) for s, e in plan]


def decode_point(point: ProfilePoint, regs: list[int], word_order: str) -> int | str | None:
    words = regs[: point.width]
    if point.type == "string":
        raw = b"".join(struct.pack(">H", w) for w in words)
        return raw.split(b"\x00", 1)[0].decode("latin-1").strip() or None
    if word_order == "little":
        words = list(reversed(words))
    raw_int = 0
    for w in words:
        raw_int = (raw_int << 16) | (w & 0xFFFF)
    if point.type == "float32":
        (f,) = struct.unpack(">f", struct.pack(">I", raw_int))
        if math.isnan(f) or math.isinf(f):
            return None
        return round(f * point.mul / point.div)
    if point.type.startswith("int"):
        bits = 16 * point.width
        if raw_int & (1 << (bits - 1)):
            raw_int -= 1 << bits
    q, r = divmod(raw_int * point.mul, point.div)
    return q + (1 if r * 2 >= point.div and point.div > 1 else 0)


def decode_block(
    profile: Profile, points: tuple[ProfilePoint, ...], start: int, regs: list[int]
) -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for p in points:
        off = p.address - start
        if off >= 0 and off + p.width <= len(regs):
            value = decode_point(p, regs[off : off + p.width], profile.word_order)
            if value is not None:
                out[p.name] = value
    return out


class ProfileDevice:
    """Implements `Device` for a profile on a Modbus line."""

    def __init__(self, name: str, line: ModbusLine, unit: int, profile: Profile) -> None:
        self.name = name
        self.line = line
        self.unit = unit
        self.profile = profile
        self.plan = plan_reads(list(profile.points), profile.merge_gap)
        self.serial: str | None = None
        self._identified = False

    def _read_points(
        self, points: tuple[ProfilePoint, ...], plan: list[tuple[int, int]]
    ) -> dict[str, int | str]:
        out: dict[str, int | str] = {}
        for address, count in plan:
            regs = self.line.read_registers(self.profile.table, address, count, self.unit)
            out.update(decode_block(self.profile, points, address, regs))
        return out

    def identify(self) -> dict[str, int | str]:
        ident = tuple(self.profile.identity.values())
        found = self._read_points(ident, plan_reads(list(ident), 0)) if ident else {}
        serial = found.get("serial")
        self.serial = str(serial) if serial is not None else None
        self._identified = True
        return found

    def read(self) -> Measurement:
        if not self._identified:
            try:
                self.identify()
            except DeviceError:
                self._identified = True  # identity is optional; the values are what matter
        values = self._read_points(self.profile.points, self.plan)
        ints = {k: v for k, v in values.items() if isinstance(v, int)}
        if not ints:
            raise DeviceError(
                f"{self.name}: profile {self.profile.name} gave no value", kind="frame"
            )
        return Measurement(values=ints, meter_id=self.serial)

    def close(self) -> None:
        self.line.release()
