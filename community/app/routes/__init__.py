"""The app's areas, one module each, every one with a `router` (pages) and an `api`
(JSON under /api). A new area (payment requests, monthly statements...) is a new module
added to AREAS."""

from __future__ import annotations

AREAS = (
    "auth",
    "home",
    "energy",
    "wallet",
    "market",
    "give",
    "vote",
    "statements",
    "certificates",
    "board",
    "requests",
    "helpers",
    "account",
    "controls",
)
