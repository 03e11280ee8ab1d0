"""Small line charts drawn as inline SVG on the server: no JavaScript, no network, readable
by screen readers through a title, a description and the data table beside each chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float]
    css_class: str  # colour comes from the stylesheet, so it follows the contrast theme


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude


def line_chart(series: Sequence[Series], x_labels: Sequence[str], *, title: str, desc: str,
               unit: str, width: int = 640, height: int = 220, ticks: int = 6) -> str:
    """An SVG document fragment; x_labels has one label per point (a few are shown)."""
    n = max((len(s.values) for s in series), default=0)
    left, right, top, bottom = 48, 8, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max((max(s.values, default=0.0) for s in series), default=0.0))

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * (v / top_value)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart-title chart-desc" preserveAspectRatio="none">',
        f'<title id="chart-title">{escape(title)}</title><desc id="chart-desc">{escape(desc)}</desc>',
    ]
    for k in range(5):
        value = top_value * k / 4
        yy = y(value)
        parts.append(f'<line class="grid" x1="{left}" y1="{yy:.1f}" x2="{width - right}" y2="{yy:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end">'
                     f"{value:g}</text>")
    parts.append(f'<text class="axis" x="4" y="{top + 8}">{escape(unit)}</text>')
    if n:
        every = max(1, (n - 1) // max(1, ticks - 1))
        for i in range(0, n, every):
            if i < len(x_labels):
                # Labels at the ends align inwards so they are not cut by the frame.
                anchor = "start" if i == 0 else "end" if i >= n - 1 - every // 2 else "middle"
                parts.append(f'<text class="axis" x="{x(i):.1f}" y="{height - 8}" '
                             f'text-anchor="{anchor}">{escape(x_labels[i])}</text>')
    for s in series:
        if not s.values:
            continue
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        parts.append(f'<polyline class="{escape(s.css_class)}" fill="none" points="{points}"/>')
    parts.append("</svg>")
    return "".join(parts)
