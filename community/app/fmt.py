"""Numbers, amounts and times as people read them, in French or English. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

from community.app.i18n import format_number

# Base units per display unit (DESIGN.md: KWH in Wh, HOUR in 0.01 h, goods in g).
SCALE = {"KWH": 1000, "HOUR": 100, "KG": 1000}
LABEL = {"KWH": "kWh", "HOUR": "h", "KG": "kg"}


def unit_scale(unit: str) -> int:
    return SCALE.get(unit.upper(), 1)


def to_base(unit: str, amount: float) -> int:
    return round(amount * unit_scale(unit))


class Formatter:
    def __init__(self, lang: str) -> None:
        self.lang = lang

    def num(self, value: float, decimals: int = 1) -> str:
        return format_number(value, self.lang, decimals)

    def kwh(self, wh: int | float, decimals: int = 1) -> str:
        return f"{format_number(wh / 1000, self.lang, decimals)}\u00a0kWh"

    def kw(self, w: int | float) -> str:
        return f"{format_number(w / 1000, self.lang, 2)}\u00a0kW"

    def pct(self, ratio: float | None) -> str:
        if ratio is None:
            return "—"
        return f"{format_number(100 * ratio, self.lang, 0)}\u00a0%"

    def amount(self, unit: str, base: int, signed: bool = False) -> str:
        scale = unit_scale(unit)
        decimals = 3 if scale == 1000 else 2 if scale == 100 else 0
        text = format_number(base / scale, self.lang, decimals)
        if signed and base > 0:
            text = "+" + text
        return f"{text}\u00a0{LABEL.get(unit.upper(), unit)}"

    def unit(self, unit: str) -> str:
        return LABEL.get(unit.upper(), unit)

    def dt(self, ts_s: int | float | None) -> str:
        if ts_s is None:
            return "—"
        return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%d %H:%M UTC")

    def hm(self, ts_s: int | float) -> str:
        return datetime.fromtimestamp(ts_s, UTC).strftime("%H:%M")

    def date(self, ts_s: int | float) -> str:
        return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%d")
