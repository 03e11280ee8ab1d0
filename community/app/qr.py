"""QR codes as inline SVG, drawn on the server (segno): no script, no CDN."""

from __future__ import annotations

import segno


def svg(text: str, title: str, scale: int = 4) -> str:
    """An SVG QR code of `text` (error correction M: readable when a phone's screen is
    scratched or dim), with a light quiet zone so any camera finds it."""
    code = segno.make(text, error="m")
    # A viewBox instead of a fixed size: the page scales it to the phone's width.
    return str(code.svg_inline(scale=scale, title=title, dark="#000", light="#fff", border=4, omitsize=True))
