"""Vendor quirks as data: SunSpec devices that bend the specification, corrected per point.

One TOML file per known deviation in `gateway/drivers/quirks/`, each citing its public
source in a comment; adding a quirk is adding a file and a test. A quirk matches a device
by its common model (manufacturer `Mn`, model `Md` as a shell pattern, firmware `Vr`
within a range) and the SunSpec model read, and gives corrections for named points:

```toml
[match]
manufacturer = "KOSTAL"        # Mn, case-insensitive
model = "PLENTICORE*"          # Md, shell pattern, case-insensitive (default "*")
firmware = ">=1.0, <2.0"       # Vr, optional; comma-separated bounds, numeric compare
models = [103]                 # SunSpec models the quirk applies to

[[correct]]
point = "PF"                   # a SunSpec point name of that model
mul = 100                      # and/or: div, sf, offset, word_order = "little", absolute
```

Parsing is pure (text in, `Quirk` out); `load_quirks()` reads the shipped files once.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gateway.drivers.sunspec import POINTS, Correction, Identity

_OPS = ("<=", ">=", "==", "<", ">")


class QuirkError(ValueError):
    """A quirk file that cannot be used (names the file and the key)."""


def version_key(text: str) -> tuple[int, ...]:
    """'0004.001' → (4, 1); 'V100R001C00SPC133' → (100, 1, 0, 133): the numbers in order."""
    return tuple(int(n) for n in re.findall(r"\d+", text))


@dataclass(frozen=True)
class FirmwareRange:
    bounds: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @classmethod
    def parse(cls, where: str, text: str) -> FirmwareRange:
        bounds = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            op = next((o for o in _OPS if part.startswith(o)), None)
            if op is None or not version_key(part[len(op) :]):
                raise QuirkError(f"{where}: firmware bound {part!r} is not like '>=1.2'")
            bounds.append((op, version_key(part[len(op) :])))
        return cls(tuple(bounds))

    def contains(self, version: str | None) -> bool:
        if not self.bounds:
            return True
        if version is None:
            return False  # a bounded quirk never applies to a device that hides its firmware
        v = version_key(version)
        checks = {
            "<": lambda b: v < b,
            "<=": lambda b: v <= b,
            ">": lambda b: v > b,
            ">=": lambda b: v >= b,
            "==": lambda b: v == b,
        }
        return all(checks[op](b) for op, b in self.bounds)


@dataclass(frozen=True)
class Quirk:
    name: str
    manufacturer: str
    model: str
    firmware: FirmwareRange
    models: tuple[int, ...]
    corrections: tuple[Correction, ...]

    def matches(self, identity: Identity | None, model_id: int) -> bool:
        if identity is None or model_id not in self.models:
            return False
        return (
            (identity.manufacturer or "").strip().lower() == self.manufacturer.lower()
            and fnmatch.fnmatchcase((identity.model or "").strip().lower(), self.model.lower())
            and self.firmware.contains(identity.version)
        )


_CORRECTION_KEYS = {"point", "offset", "sf", "word_order", "mul", "div", "absolute"}


def _int(where: str, raw: dict[str, object], key: str, default: int | None) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise QuirkError(f"{where}: {key} must be an integer, not {value!r}")
    return value


def parse_quirk(name: str, text: str) -> Quirk:
    where = f"quirk {name}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise QuirkError(f"{where}: {exc}") from None
    match = data.get("match")
    if not isinstance(match, dict) or "manufacturer" not in match or "models" not in match:
        raise QuirkError(f"{where}: needs [match] with manufacturer and models")
    models = tuple(int(m) for m in match["models"])
    unknown = [m for m in models if m not in POINTS]
    if unknown:
        raise QuirkError(f"{where}: models {unknown} are not SunSpec models the driver reads")
    corrections = []
    for i, raw in enumerate(data.get("correct", [])):
        at = f"{where}, correction #{i + 1}"
        extra = set(raw) - _CORRECTION_KEYS
        if extra:
            raise QuirkError(f"{at}: unknown keys {sorted(extra)}")
        point = str(raw.get("point", ""))
        if not all(point in POINTS[m] for m in models):
            raise QuirkError(f"{at}: point {point!r} is not in every model of {list(models)}")
        order = str(raw.get("word_order", "big"))
        if order not in ("big", "little"):
            raise QuirkError(f"{at}: word_order must be 'big' or 'little', not {order!r}")
        mul, div = _int(at, raw, "mul", 1), _int(at, raw, "div", 1)
        if not div:
            raise QuirkError(f"{at}: div must not be 0")
        corrections.append(
            Correction(
                point=point,
                offset=_int(at, raw, "offset", 0) or 0,
                sf=_int(at, raw, "sf", None),
                word_order=order,
                mul=mul if mul is not None else 1,
                div=div if div is not None else 1,
                absolute=bool(raw.get("absolute", False)),
            )
        )
    if not corrections:
        raise QuirkError(f"{where}: no [[correct]] entry")
    return Quirk(
        name=name,
        manufacturer=str(match["manufacturer"]),
        model=str(match.get("model", "*")),
        firmware=FirmwareRange.parse(where, str(match.get("firmware", ""))),
        models=models,
        corrections=tuple(corrections),
    )


@functools.cache
def load_quirks() -> tuple[Quirk, ...]:
    """The quirk files shipped in gateway/drivers/quirks/, parsed once."""
    folder = resources.files("gateway.drivers") / "quirks"
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            out.append(parse_quirk(Path(entry.name).stem, entry.read_text(encoding="utf-8")))
    return tuple(out)


def corrections_for(
    identity: Identity | None, model_id: int, quirks: tuple[Quirk, ...] | None = None
) -> tuple[dict[str, Correction], list[str]]:
    """The corrections that apply to this device and model, and the names of their quirks."""
    found: dict[str, Correction] = {}
    names = []
    for q in load_quirks() if quirks is None else quirks:
        if q.matches(identity, model_id):
            names.append(q.name)
            for c in q.corrections:
                found[c.point] = c
    return found, names
